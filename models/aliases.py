"""Throwaway addresses and the alias -> destination association."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import MYSQL_TABLE_OPTIONS, Base, UTCDateTime, utcnow
from models.limits import DISPLAY_NAME_MAX_LENGTH, LABEL_MAX_LENGTH
from models.users import EMAIL_MAX_LENGTH, normalize_email

if TYPE_CHECKING:
    from models.destinations import Destination
    from models.users import User

#: What happens to mail for an expired alias: ``drop`` accepts and discards
#: it silently, ``reject`` refuses it (the sender gets a bounce).
EXPIRED_ACTIONS = ("drop", "reject")

#: Which destinations an alias forwards to.  Rows disappear with either side.
alias_destinations = Table(
    "alias_destinations",
    Base.metadata,
    Column("alias_id", ForeignKey("aliases.id", ondelete="CASCADE"), primary_key=True),
    Column("destination_id", ForeignKey("destinations.id", ondelete="CASCADE"), primary_key=True),
    # The primary key only serves lookups by alias_id; this one serves
    # "which aliases use this destination" and the cascade on deleting one.
    Index(None, "destination_id"),
    **MYSQL_TABLE_OPTIONS,
)


DISABLED_REASON_MAX_LENGTH = 200


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

    __tablename__ = "aliases"
    __table_args__ = (
        CheckConstraint("expired_action IN ('drop', 'reject')", name="expired_action"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Always lowercase (see :meth:`normalize_address`); that is what makes the
    #: unique constraint case-insensitive on every backend.
    address: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Why the service (not the owner) switched the alias off, e.g. after a spam complaint.
    disabled_reason: Mapped[str | None] = mapped_column(String(DISABLED_REASON_MAX_LENGTH))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idle_days: Mapped[int | None] = mapped_column(Integer)
    max_messages: Mapped[int | None] = mapped_column(Integer)
    #: Messages accepted for this alias; counts toward ``max_messages``.
    message_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    forwarded_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    blocked_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Free text chosen by the owner ("newsletter from shop X").
    label: Mapped[str | None] = mapped_column(String(LABEL_MAX_LENGTH))
    note: Mapped[str | None] = mapped_column(Text)
    expired_action: Mapped[str] = mapped_column(String(10), default="drop", server_default="drop")
    #: Who may write to the alias: ``any`` or ``allow-only`` (models.contacts.SENDER_MODES).
    sender_mode: Mapped[str] = mapped_column(String(10), default="any", server_default="any")
    #: The alias's name on replies and write-first mail; empty: the address alone.
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH), default="", server_default="")

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
