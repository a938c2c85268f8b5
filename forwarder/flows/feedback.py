"""Read SES sending feedback: which recipient of which forwarded copy bounced or complained.

Pure parsing (standard library only, no I/O): a notification in, frozen values out.
:mod:`forwarder.adapters.sql.feedback_store` applies them to the database.

SES publishes feedback in two shapes, both accepted:

- configuration-set event publishing (what ``deploy/aws/othermail.yaml`` sets up):
  ``{"eventType": "Bounce" | "Complaint" | ..., "mail": {...}, "bounce": {...}}``;
- identity notifications: the same members under ``notificationType`` instead of ``eventType``
  (the corpus samples of Firefox Relay are of this kind).

Each bounced or complaining recipient becomes one :class:`Feedback`. The other event types
(Delivery, Send, Reject, DeliveryDelay, Open, Click, Rendering Failure, Subscription) are
recognised and become :class:`Ignored` with a named reason: they say nothing about a mailbox
that a forwarder acts on. A bounce of type ``Undetermined`` counts as transient: SES could not
tell why, and one such bounce must not stop a mailbox (enough of them still pause it, see
``forwarder/adapters/sql/feedback_store.py``). Anything malformed raises :class:`~forwarder.errors.InvalidFeedback`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from forwarder.errors import InvalidFeedback

BOUNCE_PERMANENT = "bounce-permanent"
BOUNCE_TRANSIENT = "bounce-transient"
COMPLAINT = "complaint"

#: Event types that carry no feedback the forwarder acts on, and the named reason each is skipped under.
IGNORED_TYPES = {
    "Delivery": "ses-delivery",
    "Send": "ses-send",
    "Reject": "ses-reject",
    "DeliveryDelay": "ses-delivery-delay",
    "Open": "ses-open",
    "Click": "ses-click",
    "Rendering Failure": "ses-rendering-failure",
    "Subscription": "ses-subscription",
    # SES's test message when an identity's notification topic is set
    "AmazonSnsSubscriptionSucceeded": "ses-subscription-succeeded",
}
UNKNOWN_TYPE = "ses-unknown-event"


@dataclass(frozen=True, slots=True)
class Feedback:
    """One recipient's bounce or complaint about one message SES sent for the forwarder."""

    #: ``bounce.feedbackId`` / ``complaint.feedbackId``: the same for every recipient of one report.
    feedback_id: str
    #: :data:`BOUNCE_PERMANENT`, :data:`BOUNCE_TRANSIENT` or :data:`COMPLAINT`.
    kind: str
    #: ``bounceSubType`` (General, NoEmail, MailboxFull, Suppressed...) or ``complaintFeedbackType``
    #: (abuse, fraud...); "" when SES gives none.
    sub_type: str
    #: ``mail.messageId``: the id SES returned when the forwarded copy was sent.
    message_id: str
    #: The bounced or complaining address, lowercase.
    recipient: str
    #: The remote server's diagnostic (or status and action), or what the complaint says; may be "".
    detail: str
    occurred_at: datetime | None

    @property
    def is_bounce(self) -> bool:
        return self.kind != COMPLAINT


@dataclass(frozen=True, slots=True)
class Ignored:
    """An SES event that is not a bounce or complaint; ``reason`` is one of :data:`IGNORED_TYPES`'s."""

    reason: str
    detail: str


def event_type(message: dict[str, Any]) -> str | None:
    """``eventType`` (configuration sets) or ``notificationType`` (identities), or None."""
    kind = message.get("eventType") or message.get("notificationType")
    return kind if isinstance(kind, str) and kind else None


def parse_feedback(message: Any) -> tuple[Feedback, ...] | Ignored:
    """The feedback in one SES notification: a dict, or its JSON text (an SNS ``Message``).

    Returns one :class:`Feedback` per recipient of a Bounce or Complaint, or :class:`Ignored`;
    raises :class:`InvalidFeedback` for anything malformed.
    """
    if isinstance(message, (str, bytes)):
        try:
            message = json.loads(message)
        except ValueError as exc:
            raise InvalidFeedback("SES notification is not JSON") from exc
    if not isinstance(message, dict):
        raise InvalidFeedback(f"SES notification must be a JSON object, not {type(message).__name__}")
    kind = event_type(message)
    if kind is None:
        raise InvalidFeedback("SES notification without eventType or notificationType")
    if kind in IGNORED_TYPES:
        return Ignored(IGNORED_TYPES[kind], f"SES {kind} notification")
    if kind == "Bounce":
        return _bounces(message)
    if kind == "Complaint":
        return _complaints(message)
    return Ignored(UNKNOWN_TYPE, f"SES {kind[:100]} notification")


def _section(message: dict[str, Any], name: str) -> dict[str, Any]:
    value = message.get(name)
    if not isinstance(value, dict):
        raise InvalidFeedback(f"SES notification without a {name!r} object")
    return value


def _text(section: dict[str, Any], name: str, where: str, required: bool = False) -> str:
    value = section.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidFeedback(f"SES notification whose {where}.{name} is not a non-empty string")
    return value.strip()


def _message_id(message: dict[str, Any]) -> str:
    return _text(_section(message, "mail"), "messageId", "mail", required=True)


def _timestamp(*candidates: Any) -> datetime | None:
    for value in candidates:
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def _recipients(section: dict[str, Any], name: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    entries = section.get(name)
    if not isinstance(entries, list) or not entries:
        raise InvalidFeedback(f"SES notification whose {where}.{name} is not a non-empty list")
    found: list[tuple[str, dict[str, Any]]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidFeedback(f"SES notification with a {where}.{name} entry that is not an object")
        raw = _text(entry, "emailAddress", f"{where}.{name}[]", required=True)
        address = parseaddr(raw)[1].strip().lower()  # a DSN's Final-Recipient may carry a name
        if "@" not in address:
            raise InvalidFeedback(f"SES notification with a {where}.{name} entry that is not an address")
        found.append((address, entry))
    return found


def _bounces(message: dict[str, Any]) -> tuple[Feedback, ...]:
    bounce = _section(message, "bounce")
    message_id = _message_id(message)
    feedback_id = _text(bounce, "feedbackId", "bounce", required=True)
    bounce_type = _text(bounce, "bounceType", "bounce", required=True)
    kind = BOUNCE_PERMANENT if bounce_type == "Permanent" else BOUNCE_TRANSIENT
    sub_type = _text(bounce, "bounceSubType", "bounce")
    at = _timestamp(bounce.get("timestamp"), message["mail"].get("timestamp"))
    items = []
    for address, entry in _recipients(bounce, "bouncedRecipients", "bounce"):
        detail = _text(entry, "diagnosticCode", "bounce.bouncedRecipients[]") or " ".join(
            part for part in (_text(entry, "status", "bounce"), _text(entry, "action", "bounce")) if part
        )
        items.append(Feedback(feedback_id, kind, sub_type, message_id, address, detail, at))
    return tuple(items)


def _complaints(message: dict[str, Any]) -> tuple[Feedback, ...]:
    complaint = _section(message, "complaint")
    message_id = _message_id(message)
    feedback_id = _text(complaint, "feedbackId", "complaint", required=True)
    sub_type = _text(complaint, "complaintFeedbackType", "complaint") or _text(
        complaint, "complaintSubType", "complaint"
    )
    user_agent = _text(complaint, "userAgent", "complaint")
    detail = f"reported through {user_agent}" if user_agent else ""
    at = _timestamp(complaint.get("timestamp"), message["mail"].get("timestamp"))
    return tuple(
        Feedback(feedback_id, COMPLAINT, sub_type, message_id, address, detail, at)
        for address, _entry in _recipients(complaint, "complainedRecipients", "complaint")
    )
