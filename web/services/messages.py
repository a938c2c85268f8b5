"""One received message as its owner sees it: what happened, its headers, the raw message while
the store keeps it, and the quarantine (release to the destinations).

The raw message stays in the mail store for ``OTHERMAIL_KEEP_DAYS`` days: S3 (the receipt rule's
bucket, whose lifecycle rule deletes it after ``RetentionDays``), or the one box's local store
(pruned hourly). Keys of the one box's spool (``smtp/...``) are in the configured store; the
others are in ``OTHERMAIL_S3_BUCKET``.

Quarantined are the messages dropped as spam, for DMARC, or over a limit: the owner can release one
to the alias's destinations. A virus is never released, whatever is asked. A release forwards the
stored message again under its own message id (``<id>/released``), so releasing twice, or a retry
after a failure, sends nothing twice (the delivery claims, as for any message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from forwarder.core import Outcome, Verdicts
from forwarder.core.headers import display_fields
from forwarder.errors import MessageNotFound, RetryableError
from forwarder.flows.forward import Inbound
from forwarder.flows.outcome_log import Report
from forwarder.ports import MailStore
from forwarder.runtime import Runtime
from models import Alias, Delivery, User, utcnow
from web.services.errors import ServiceError, not_found

#: Outcomes whose message the owner may release.
QUARANTINED = (Outcome.DROPPED_SPAM.value, Outcome.DROPPED_DMARC.value, Outcome.DROPPED_RATE_LIMITED.value)
#: Headers shown on a message's page, in this order.
SHOWN_HEADERS = (
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Return-Path",
    "Authentication-Results",
    "Received-SPF",
    "X-SES-Spam-Verdict",
    "X-SES-Virus-Verdict",
)
QUARANTINE_PAGE = 100
#: Longest header value shown on a message's page (the whole message is one download away).
HEADER_CHARS = 2000


def owned(db: Session, user: User, delivery_id: int) -> Delivery:
    """The delivery row, if it belongs to one of ``user``'s aliases (deleted ones included)."""
    row = db.scalar(
        select(Delivery)
        .join(Alias, Alias.id == Delivery.alias_id)
        .where(Delivery.id == delivery_id, Alias.user_id == user.id)
    )
    if row is None:
        raise not_found("message")
    return row


def kept_until(row: Delivery, keep_days: int) -> datetime | None:
    """Until when the raw message can be had (None: it was never kept); the store keeps raw mail
    ``keep_days`` days (``OTHERMAIL_KEEP_DAYS``)."""
    if not row.raw_key:
        return None
    return row.created_at + timedelta(days=keep_days)


def is_kept(row: Delivery, keep_days: int, now: datetime | None = None) -> bool:
    until = kept_until(row, keep_days)
    return until is not None and (now or utcnow()) < until


def releasable(row: Delivery, keep_days: int, now: datetime | None = None) -> bool:
    return row.outcome in QUARANTINED and row.released_at is None and is_kept(row, keep_days, now)


def quarantine(db: Session, user: User, keep_days: int, now: datetime | None = None) -> list[Delivery]:
    """``user``'s messages that can still be released, newest first."""
    since = (now or utcnow()) - timedelta(days=keep_days)
    return list(
        db.scalars(
            select(Delivery)
            .join(Alias, Alias.id == Delivery.alias_id)
            .where(
                Alias.user_id == user.id,
                Delivery.outcome.in_(QUARANTINED),
                Delivery.raw_key.is_not(None),
                Delivery.released_at.is_(None),
                Delivery.created_at >= since,
            )
            .order_by(Delivery.created_at.desc(), Delivery.id.desc())
            .limit(QUARANTINE_PAGE)
        )
    )


def _store_for(runtime: Runtime, key: str) -> MailStore:
    """The store holding ``key`` (see the module's docstring)."""
    if key.startswith("smtp/"):
        return runtime.store
    if not runtime.settings.s3_bucket:
        raise ServiceError("gone", "This service keeps no copy of received mail.", 410)
    return runtime.ses_bucket


def download(runtime: Runtime, row: Delivery, now: datetime | None = None) -> bytes:
    """The original message for its owner to download; never one with a virus."""
    if row.outcome == Outcome.DROPPED_VIRUS.value:
        raise ServiceError("not_downloadable", "A message with a virus cannot be downloaded.", 403)
    return raw(runtime, row, now)


def raw(runtime: Runtime, row: Delivery, now: datetime | None = None) -> bytes:
    keep_days = runtime.settings.keep_days
    if not is_kept(row, keep_days, now):
        raise ServiceError("gone", f"The original message is kept for {keep_days} days only.", 410)
    try:
        return bytes(_store_for(runtime, row.raw_key or "").get(row.raw_key or ""))
    except MessageNotFound:
        raise ServiceError("gone", "The original message is no longer kept.", 410) from None
    except RetryableError:
        raise ServiceError(
            "store_unavailable", "The original message cannot be read just now. Try again later.", 503
        ) from None


def headers(data: bytes) -> list[tuple[str, str]]:
    """The shown headers of a raw message, decoded on one line each, addresses as written (the
    core's :func:`~forwarder.core.headers.display_fields` never parses them, so a From of thousands
    of nested comments cannot make this page fail). Each value is cut at :data:`HEADER_CHARS`."""
    return [(name, _shown(text)) for name, text in display_fields(data, SHOWN_HEADERS)]


def _shown(text: str) -> str:
    text = " ".join(text[: HEADER_CHARS * 2].split())
    return text if len(text) <= HEADER_CHARS else text[:HEADER_CHARS] + " …"


@dataclass(frozen=True)
class Released:
    forwarded: int
    other: list[Report]


def release(runtime: Runtime, db: Session, row: Delivery, now: datetime | None = None) -> Released:
    """Forward a quarantined message to the alias's destinations; raises :class:`ServiceError`."""
    if row.outcome == Outcome.DROPPED_VIRUS.value:
        raise ServiceError("not_releasable", "A message with a virus is never released.", 403)
    if row.outcome not in QUARANTINED:
        raise ServiceError("not_releasable", "Only quarantined messages can be released.", 409)
    if row.released_at is not None:
        raise ServiceError("not_releasable", "This message was released already.", 409)
    data = raw(runtime, row, now)
    inbound = Inbound(
        f"{row.inbound_message_id}/released", (row.recipient,), Verdicts(), row.mail_from, raw_key=row.raw_key
    )
    try:
        reports = runtime.forwarder.process(data, inbound)
    except RetryableError:
        raise ServiceError("send_failed", "The message could not be sent just now. Try again later.", 503) from None
    row.released_at = now or utcnow()
    db.commit()
    forwarded = [r for r in reports if r.outcome is Outcome.FORWARDED]
    return Released(len(forwarded), [r for r in reports if r.outcome is not Outcome.FORWARDED])
