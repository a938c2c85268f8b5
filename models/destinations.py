"""A user's real mailbox, where alias mail is forwarded to."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import MYSQL_TABLE_OPTIONS, Base, UTCDateTime, utcnow
from models.users import EMAIL_MAX_LENGTH, normalize_email

if TYPE_CHECKING:
    from models.aliases import Alias
    from models.users import User


PAUSE_REASON_MAX_LENGTH = 500


class Destination(Base):
    """A mailbox owned by a user; mail is only forwarded to verified ones.

    ``email`` is normalized with :func:`models.users.normalize_email`, so a
    user cannot register the same mailbox twice in different letter case.
    """

    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("user_id", "email"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set when SES feedback (a hard bounce, repeated soft bounces) stops forwarding here; the
    #: owner sees why and resumes it (forwarder/flows/feedback.py).
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str] = mapped_column(String(PAUSE_REASON_MAX_LENGTH), default="", server_default="")
    #: SES feedback counted for this mailbox: permanent bounces, transient bounces since the last
    #: pause or resume (the threshold counts these), complaints.
    bounce_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    soft_bounce_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_soft_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    complaint_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

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
