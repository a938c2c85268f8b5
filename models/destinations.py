"""A user's real mailbox, where alias mail is forwarded to."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Mapped, relationship, validates

from models import tables
from models.base import Base
from models.tables import PAUSE_REASON_MAX_LENGTH as PAUSE_REASON_MAX_LENGTH
from models.users import normalize_email

if TYPE_CHECKING:
    from models.aliases import Alias
    from models.users import User


class Destination(Base):
    """A mailbox owned by a user; mail is only forwarded to verified ones.

    ``email`` is normalized with :func:`models.users.normalize_email`, so a
    user cannot register the same mailbox twice in different letter case.
    """

    __table__ = tables.destinations

    id: Mapped[int]
    user_id: Mapped[int]
    email: Mapped[str]
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: Set when SES feedback (a hard bounce, repeated soft bounces) stops forwarding here; the
    #: owner sees why and resumes it (forwarder/flows/feedback.py).
    paused_at: Mapped[datetime | None]
    pause_reason: Mapped[str]
    #: SES feedback counted for this mailbox: permanent bounces, transient bounces since the last
    #: pause or resume (the threshold counts these), complaints.
    bounce_count: Mapped[int]
    soft_bounce_count: Mapped[int]
    last_soft_bounce_at: Mapped[datetime | None]
    complaint_count: Mapped[int]

    user: Mapped[User] = relationship(back_populates="destinations")
    aliases: Mapped[list[Alias]] = relationship(
        secondary="alias_destinations",
        back_populates="destinations",
        passive_deletes=True,  # association rows go via ON DELETE CASCADE
    )

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def is_verified(self) -> bool:
        """True once the owner has confirmed they control this mailbox."""
        return self.verified_at is not None

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return normalize_email(value)

    def __repr__(self) -> str:
        return f"<Destination id={self.id} email={self.email!r} verified={self.is_verified}>"
