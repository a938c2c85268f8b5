"""Turn the events AWS delivers into jobs: which raw message to read, and what SES said of it.

Accepted, each record on its own:

- the SES receipt event of a Lambda action (``eventSource: aws:ses``): the object is at the
  configured bucket under ``prefix + mail.messageId``, recipients are ``receipt.recipients``;
- an S3 ``ObjectCreated`` event (``eventSource: aws:s3``): recipients and verdicts are read from
  the stored message (see ``forwarder.core.envelope``);
- an SNS notification of an SES ``Received`` event, delivered to Lambda (``aws:sns``), inside an
  SQS message (``aws:sqs``), or as the bare SNS body: with an S3 action it names the bucket and key;
  with an SNS action it carries the message itself in ``content``.

SES sending-side notifications (through SNS, from the configuration set's topic or an identity's)
become a :class:`FeedbackJob` when they report bounces or complaints (parsed by
``forwarder.flows.feedback``; the runtime applies them with ``forwarder.adapters.sql.feedback_store``).

Skipped with a named reason (and logged): SNS subscription confirmations (never confirmed
automatically) and the sending-side events that are not feedback (Delivery, Send, Reject,
DeliveryDelay..., reasons in ``forwarder.flows.feedback.IGNORED_TYPES``). Anything else raises
:class:`InvalidEvent`; the Lambda handler logs such an event under the reason ``invalid-event`` (a
retry could not help it), as :func:`describe_event` renders it: without message content, cut to
:data:`INVALID_EVENT_LOG_CHARS`.

Where a job's object is, an event names (an S3 event, an S3 action's notification): the runtime
reads it only from the configured bucket under the configured prefix (:func:`outside_mail_bucket`,
issue 12.26). Anyone who can invoke the function, or publish to a topic it reads, could otherwise
make it read, forward and record any object its role can reach.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from forwarder.core import Verdicts
from forwarder.errors import InvalidEvent
from forwarder.flows.feedback import Feedback, Ignored, parse_feedback


@dataclass(frozen=True, slots=True)
class Job:
    message_id: str
    recipients: tuple[str, ...]
    verdicts: Verdicts
    mail_from: str | None
    received_at: datetime | None
    bucket: str | None = None
    key: str | None = None
    content: bytes | None = None

    @property
    def recipients_from_headers(self) -> bool:
        return not self.recipients


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class FeedbackJob:
    """An SES bounce or complaint notification: one :class:`Feedback` per recipient."""

    feedback: tuple[Feedback, ...]


Item = Job | Skipped | FeedbackJob

#: How much of an invalid event is logged (after :func:`describe_event` removed message content).
INVALID_EVENT_LOG_CHARS = 500
#: Members that hold message content or addresses, removed from a logged event at any depth.
_CONTENT_KEYS = frozenset(
    {
        "headers",
        "commonheaders",
        "content",
        "subject",
        "from",
        "to",
        "cc",
        "bcc",
        "replyto",
        "returnpath",
        "sender",
        "source",
        "destination",
        "recipients",
        "date",
    }
)
#: Members whose string value may itself be JSON (SNS Message, SQS body): redacted inside too.
_NESTED_JSON_KEYS = frozenset({"message", "body"})


def outside_mail_bucket(job: Job, bucket: str, prefix: str) -> Skipped | None:
    """A skip when ``job`` would read an object outside ``s3://bucket/prefix``, else None.

    A job carrying its message (an SNS action's inline copy) reads nothing and passes.
    """
    if job.content is not None:
        return None
    key = job.key or ""
    if bucket and job.bucket == bucket and key.startswith(prefix):
        return None
    where = f"s3://{job.bucket}/{key}"
    return Skipped("object-outside-bucket", f"{where[:200]} is not under s3://{bucket}/{prefix}: not read")


def _redacted(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return "[deeper]"
    if isinstance(value, dict):
        result = {}
        for name, item in value.items():
            lowered = str(name).lower()
            if lowered in _CONTENT_KEYS:
                result[name] = "[removed]"
            elif lowered in _NESTED_JSON_KEYS and isinstance(item, str):
                try:
                    result[name] = _redacted(json.loads(item), depth + 1)
                except ValueError:
                    result[name] = f"[{len(item)} characters removed]"
            else:
                result[name] = _redacted(item, depth + 1)
        return result
    if isinstance(value, list):
        return [_redacted(item, depth + 1) for item in value]
    if isinstance(value, str) and len(value) > 100:
        return value[:100] + "..."
    return value


def describe_event(event: Any, limit: int = INVALID_EVENT_LOG_CHARS) -> str:
    """``event`` as JSON for a log line: headers, content, subjects and addresses removed (also
    inside an SNS Message or SQS body that is JSON), cut to ``limit`` characters."""
    if isinstance(event, (bytes, bytearray)):
        return "<bytes>"
    try:
        text = json.dumps(_redacted(event), default=lambda o: f"<{type(o).__name__}>", sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(event).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _verdict(receipt: dict[str, Any], name: str) -> str:
    value = receipt.get(name)
    if isinstance(value, dict):
        return str(value.get("status") or "PASS")
    return "PASS"


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _from_ses(mail: dict[str, Any], receipt: dict[str, Any], bucket: str, prefix: str) -> Job:
    message_id = mail.get("messageId")
    if not isinstance(message_id, str) or not message_id or "/" in message_id:
        raise InvalidEvent(f"SES event without a usable mail.messageId: {message_id!r}")
    recipients = receipt.get("recipients") or mail.get("destination") or []
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise InvalidEvent("SES event whose receipt.recipients is not a list of addresses")
    verdicts = Verdicts(
        spam=_verdict(receipt, "spamVerdict"),
        virus=_verdict(receipt, "virusVerdict"),
        spf=_verdict(receipt, "spfVerdict"),
        dkim=_verdict(receipt, "dkimVerdict"),
        dmarc=_verdict(receipt, "dmarcVerdict"),
        dmarc_policy=receipt.get("dmarcPolicy"),
    )
    common: dict[str, Any] = dict(
        message_id=message_id,
        recipients=tuple(recipients),
        verdicts=verdicts,
        mail_from=mail.get("source"),
        received_at=_timestamp(mail.get("timestamp")),
    )
    action = receipt.get("action") or {}
    kind = action.get("type")
    if kind == "S3" and action.get("bucketName") and action.get("objectKey"):
        return Job(**common, bucket=action["bucketName"], key=action["objectKey"])
    if not bucket:
        raise InvalidEvent("an SES Lambda-action event needs OTHERMAIL_S3_BUCKET to find the message")
    return Job(**common, bucket=bucket, key=f"{prefix}{message_id}")


def _from_notification(body: dict[str, Any], bucket: str, prefix: str) -> Item:
    kind = body.get("Type")
    if kind == "SubscriptionConfirmation":
        return Skipped("sns-subscription-confirmation", f"topic {body.get('TopicArn', '?')}; not confirmed")
    if kind == "UnsubscribeConfirmation":
        return Skipped("sns-unsubscribe-confirmation", f"topic {body.get('TopicArn', '?')}")
    try:
        message = json.loads(body["Message"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEvent("SNS notification whose Message is not JSON") from exc
    if not isinstance(message, dict):
        raise InvalidEvent("SNS notification whose Message is not an object")
    if "Records" in message:
        items = _parse(message, bucket, prefix)
        if len(items) != 1:
            raise InvalidEvent("an S3 notification inside SNS must hold one record")
        return items[0]
    if message.get("Event") == "s3:TestEvent":  # S3 sends one when a bucket notification is configured
        return Skipped("s3-test-event", f"bucket {message.get('Bucket', '?')}")
    kind = message.get("notificationType") or message.get("eventType")
    if kind != "Received":
        parsed = parse_feedback(message)
        if isinstance(parsed, Ignored):
            return Skipped(parsed.reason, parsed.detail)
        return FeedbackJob(parsed)
    mail, receipt = message.get("mail"), message.get("receipt")
    if not isinstance(mail, dict) or not isinstance(receipt, dict):
        raise InvalidEvent("SES Received notification without mail and receipt")
    if "content" in message:
        job = _from_ses(mail, {**receipt, "action": {}}, bucket or "-", prefix)
        action = receipt.get("action") or {}
        content = message["content"]
        if not isinstance(content, str):
            raise InvalidEvent("SES SNS-action content is not a string")
        try:
            data = (
                base64.b64decode(content, validate=True)
                if str(action.get("encoding", "")).upper() == "BASE64"
                else content.encode("utf-8")
            )
        except (binascii.Error, ValueError) as exc:
            raise InvalidEvent("SES SNS-action content is not valid base64") from exc
        return Job(job.message_id, job.recipients, job.verdicts, job.mail_from, job.received_at, content=data)
    return _from_ses(mail, receipt, bucket, prefix)


def _from_s3(record: dict[str, Any]) -> Job:
    try:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
    except (KeyError, TypeError) as exc:
        raise InvalidEvent("S3 event without bucket name and object key") from exc
    if not str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
        raise InvalidEvent(f"S3 event {record.get('eventName')!r} is not an ObjectCreated event")
    return Job(
        message_id=key.rsplit("/", 1)[-1],
        recipients=(),
        verdicts=Verdicts(),
        mail_from=None,
        received_at=_timestamp(record.get("eventTime")),
        bucket=bucket,
        key=key,
    )


def parse_event(event: Any, *, bucket: str = "", prefix: str = "") -> list[Item]:
    """Every job and skip in ``event``; raises :class:`InvalidEvent` for anything unknown."""
    try:
        return _parse(event, bucket, prefix)
    except InvalidEvent:
        raise
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise InvalidEvent(f"malformed event ({exc.__class__.__name__}: {exc})") from exc


def _parse(event: Any, bucket: str, prefix: str) -> list[Item]:
    if not isinstance(event, dict):
        raise InvalidEvent(f"an event must be a JSON object, not {type(event).__name__}")
    if "Type" in event and ("Message" in event or "Token" in event):
        return [_from_notification(event, bucket, prefix)]
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise InvalidEvent("the event has no Records")
    items: list[Item] = []
    for record in records:
        if not isinstance(record, dict):
            raise InvalidEvent("a record must be a JSON object")
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:ses":
            ses = record.get("ses") or {}
            mail, receipt = ses.get("mail"), ses.get("receipt")
            if not isinstance(mail, dict) or not isinstance(receipt, dict):
                raise InvalidEvent("SES record without mail and receipt")
            items.append(_from_ses(mail, receipt, bucket, prefix))
        elif source == "aws:s3":
            items.append(_from_s3(record))
        elif source == "aws:sns":
            items.append(_from_notification(record.get("Sns") or {}, bucket, prefix))
        elif source == "aws:sqs":
            try:
                body = json.loads(record["body"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidEvent("SQS record whose body is not JSON") from exc
            items.extend(_parse(body, bucket, prefix))
        else:
            raise InvalidEvent(f"unknown event source {source!r}")
    return items
