"""The delivery log: one row per (inbound message, alias, destination)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Mapped, relationship, validates

from models import tables
from models.base import Base
from models.limits import (  # defined without the ORM, re-exported from here
    EMAIL_MAX_LENGTH,
    REASON_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
    clip,
)
from models.limits import RAW_KEY_MAX_LENGTH as RAW_KEY_MAX_LENGTH
from models.tables import MESSAGE_LEVEL as MESSAGE_LEVEL

_clip = clip  # the name the SQL adapters import

if TYPE_CHECKING:
    from models.aliases import Alias
    from models.destinations import Destination


class Delivery(Base):
    """Outcome of delivering one inbound message for one alias to one destination.

    The unique constraint on ``(inbound_message_id, recipient,
    destination_key)`` is what makes forwarding idempotent: a redelivered
    inbound message cannot produce a second row, so a forwarder that inserts
    the row before sending (or upserts it) never sends twice.

    ``destination_key`` duplicates ``destination_id`` (or is
    :data:`MESSAGE_LEVEL`, 0) because NULLs never collide in a unique
    constraint, and because ``destination_id`` becomes NULL when the
    destination is deleted while the log row, and its uniqueness, must stay.
    If ``destination_key`` is not passed to the constructor it is taken from
    ``destination_id`` or ``destination``; otherwise it defaults to 0.

    ``subject``, ``reason`` and ``mail_from`` come from untrusted mail and
    are silently clipped to their column sizes.
    """

    __table__ = tables.deliveries

    id: Mapped[int]
    inbound_message_id: Mapped[str]
    #: The alias address as received, normalized to lowercase.
    recipient: Mapped[str]
    alias_id: Mapped[int | None]
    # Indexed so that deleting a destination (SET NULL) does not scan the log.
    destination_id: Mapped[int | None]
    destination_key: Mapped[int]
    outcome: Mapped[str]
    reason: Mapped[str]
    mail_from: Mapped[str | None]
    subject: Mapped[str | None]
    bytes_in: Mapped[int | None]
    bytes_out: Mapped[int | None]
    #: The message id SES or the SMTP relay returned for the forwarded copy.
    provider_message_id: Mapped[str | None]
    attempts: Mapped[int]
    #: Where the raw inbound message is kept (a key of the mail store, S3 or local), for the
    #: owner to download it or release it from quarantine while the store keeps it.
    raw_key: Mapped[str | None]
    #: When the owner released this quarantined message to its destinations.
    released_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    alias: Mapped[Alias | None] = relationship()
    destination: Mapped[Destination | None] = relationship()

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("destination_key") is None:
            kwargs.pop("destination_key", None)
            destination = kwargs.get("destination")
            if kwargs.get("destination_id") is not None:
                kwargs["destination_key"] = kwargs["destination_id"]
            elif destination is not None:
                if destination.id is None:
                    raise ValueError("destination has no id yet (flush it first) or pass destination_key")
                kwargs["destination_key"] = destination.id
        super().__init__(**kwargs)

    @validates("recipient")
    def _normalize_recipient(self, _key: str, value: str) -> str:
        return value.strip().lower()

    @validates("subject", "reason", "mail_from")
    def _clip_free_text(self, key: str, value: str | None) -> str | None:
        limit = {"subject": SUBJECT_MAX_LENGTH, "reason": REASON_MAX_LENGTH}.get(key, EMAIL_MAX_LENGTH)
        return _clip(value, limit)

    def __repr__(self) -> str:
        return (
            f"<Delivery id={self.id} message={self.inbound_message_id!r} "
            f"recipient={self.recipient!r} destination_key={self.destination_key} "
            f"outcome={self.outcome!r}>"
        )
