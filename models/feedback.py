"""SES feedback on forwarded mail: bounces and complaints, one row per (feedback, recipient)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_OPTIONS, Base, BigIntId, UTCDateTime, utcnow
from models.users import EMAIL_MAX_LENGTH

#: What a feedback row records.
FEEDBACK_KINDS = ("bounce-permanent", "bounce-transient", "complaint")
DETAIL_MAX_LENGTH = 500


class FeedbackEvent(Base):
    """One bounce or complaint SES reported for one recipient of a forwarded copy.

    The unique ``(feedback_id, recipient)`` makes applying feedback idempotent: SNS delivers at
    least once, and a second delivery of the same notification inserts nothing and changes no
    counter. ``alias_id`` and ``destination_id`` are what the forwarded copy's delivery row names
    (NULL when no delivery has that SES message id: mail the service sent itself, or old).
    """

    __tablename__ = "feedback_events"
    __table_args__ = (
        UniqueConstraint("feedback_id", "recipient"),
        CheckConstraint("kind IN ('bounce-permanent', 'bounce-transient', 'complaint')", name="kind"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    feedback_id: Mapped[str] = mapped_column(String(255))
    #: The bounced or complaining address, lowercase.
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    kind: Mapped[str] = mapped_column(String(20))
    sub_type: Mapped[str] = mapped_column(String(100), default="", server_default="")
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    alias_id: Mapped[int | None] = mapped_column(ForeignKey("aliases.id", ondelete="SET NULL"), index=True)
    destination_id: Mapped[int | None] = mapped_column(ForeignKey("destinations.id", ondelete="SET NULL"), index=True)
    detail: Mapped[str] = mapped_column(String(DETAIL_MAX_LENGTH), default="", server_default="")
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<FeedbackEvent id={self.id} kind={self.kind!r} destination_id={self.destination_id}>"
