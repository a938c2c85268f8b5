"""SES feedback on forwarded mail: bounces and complaints, one row per (feedback, recipient)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models import tables
from models.base import Base
from models.tables import DETAIL_MAX_LENGTH as DETAIL_MAX_LENGTH

#: What a feedback row records.
FEEDBACK_KINDS = ("bounce-permanent", "bounce-transient", "complaint")


class FeedbackEvent(Base):
    """One bounce or complaint SES reported for one recipient of a forwarded copy.

    The unique ``(feedback_id, recipient)`` makes applying feedback idempotent: SNS delivers at
    least once, and a second delivery of the same notification inserts nothing and changes no
    counter. ``alias_id`` and ``destination_id`` are what the forwarded copy's delivery row names
    (NULL when no delivery has that SES message id: mail the service sent itself, or old).
    """

    __table__ = tables.feedback_events

    id: Mapped[int]
    feedback_id: Mapped[str]
    #: The bounced or complaining address, lowercase.
    recipient: Mapped[str]
    kind: Mapped[str]
    sub_type: Mapped[str]
    provider_message_id: Mapped[str | None]
    alias_id: Mapped[int | None]
    destination_id: Mapped[int | None]
    detail: Mapped[str]
    occurred_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<FeedbackEvent id={self.id} kind={self.kind!r} destination_id={self.destination_id}>"
