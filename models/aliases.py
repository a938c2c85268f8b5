"""Throwaway addresses and the alias -> destination association."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Mapped, relationship, validates

from models import tables
from models.base import Base
from models.tables import DISABLED_REASON_MAX_LENGTH as DISABLED_REASON_MAX_LENGTH
from models.users import normalize_email

if TYPE_CHECKING:
    from models.destinations import Destination
    from models.users import User

#: What happens to mail for an expired alias: ``drop`` accepts and discards
#: it silently, ``reject`` refuses it (the sender gets a bounce).
EXPIRED_ACTIONS = ("drop", "reject")

#: Which destinations an alias forwards to (defined with the Core tables, models/tables.py).
alias_destinations = tables.alias_destinations


class Alias(Base):
    """A throwaway address.

    Rows are never hard-deleted in normal operation: a deleted alias gets
    ``deleted_at`` and keeps its row so the address is never issued again,
    and an alias whose user is deleted keeps its row with ``user_id`` NULL.

    Expiry is expressed by any combination of ``expires_at`` (a point in
    time), ``idle_days`` (days without mail) and ``max_messages`` (compared
    with ``message_count``); NULL means "no such limit".  ``expired_action``
    (one of :data:`EXPIRED_ACTIONS`, enforced by a CHECK constraint) says
    what becomes of mail for an expired alias.
    """

    __table__ = tables.aliases

    id: Mapped[int]
    #: Always lowercase (see :meth:`normalize_address`); that is what makes the
    #: unique constraint case-insensitive on every backend.
    address: Mapped[str]
    user_id: Mapped[int | None]
    enabled: Mapped[bool]
    #: Why the service (not the owner) switched the alias off, e.g. after a spam complaint.
    disabled_reason: Mapped[str | None]
    expires_at: Mapped[datetime | None]
    idle_days: Mapped[int | None]
    max_messages: Mapped[int | None]
    #: Messages accepted for this alias; counts toward ``max_messages``.
    message_count: Mapped[int]
    forwarded_count: Mapped[int]
    blocked_count: Mapped[int]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    #: Free text chosen by the owner ("newsletter from shop X").
    label: Mapped[str | None]
    note: Mapped[str | None]
    expired_action: Mapped[str]
    #: Who may write to the alias: ``any`` or ``allow-only`` (models.contacts.SENDER_MODES).
    sender_mode: Mapped[str]
    #: The alias's name on replies and write-first mail; empty: the address alone.
    display_name: Mapped[str]

    user: Mapped[User | None] = relationship(back_populates="aliases")
    destinations: Mapped[list[Destination]] = relationship(
        secondary=alias_destinations,
        back_populates="aliases",
        passive_deletes=True,  # association rows go via ON DELETE CASCADE
    )

    @staticmethod
    def normalize_address(address: str) -> str:
        """Return the stored (stripped, lowercase) form of ``address``.

        Use it for lookups too: ``Alias.address == Alias.normalize_address(x)``.
        """
        return normalize_email(address)

    @validates("address")
    def _normalize_address(self, _key: str, value: str) -> str:
        return self.normalize_address(value)

    def __repr__(self) -> str:
        return f"<Alias id={self.id} address={self.address!r}>"
