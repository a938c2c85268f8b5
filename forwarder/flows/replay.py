"""Re-drive what failed: the dead-letter queue's events, or inbound messages named by id.

Both paths end where the Lambda does (:meth:`LambdaRuntime.invoke`, :meth:`Forwarder.process`), so
the delivery claims make a replay idempotent: a destination recorded as sent is not sent again,
and replaying the same thing twice sends nothing the second time.

- :class:`DlqReplay` receives the dead-letter queue's messages and runs each one's event in this
  process. A message is the invocation record that the Lambda's on-failure destination writes (its
  ``requestPayload`` is the event), or a bare event (a function's ``DeadLetterConfig``, the queue
  worker's dead-letter queue, which holds SNS notifications). It is deleted only when its event was
  handled; otherwise it is left, and made visible again at the end of the run.
- :class:`MessageReplay` reads a raw message from the mail store and forwards it to the recipients
  of the delivery rows recorded for its id, else to the addresses on the service's domains in its
  headers (as the S3-event path does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from forwarder.adapters.local.spool import KEY_PREFIX as SPOOL_KEY_PREFIX
from forwarder.core.envelope import recipients_from_headers, verdicts_from_headers
from forwarder.core.message import split_message
from forwarder.errors import DatabaseUnavailable, NotAnEvent, OthermailError
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.hosts.retry import RetryPolicy
from forwarder.ports import MailStore
from models import Delivery

logger = logging.getLogger("othermail.replay")

#: SQS allows at most 10 messages a receive.
MAX_BATCH = 10


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replaying one thing did: ``done`` when nothing about it is left to do."""

    label: str
    done: bool
    detail: str = ""
    outcomes: dict[str, int] = field(default_factory=dict)


class Invoker(Protocol):
    def invoke(
        self, event: Any, dimensions: Any = None, emit: Callable[[str], None] | None = None, context: Any = None
    ) -> dict[str, Any]: ...


def event_from_body(body: str) -> Any:
    """The event a dead-letter queue message holds (see the module docstring)."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise NotAnEvent("the message body is not JSON") from exc
    if not isinstance(document, dict):
        raise NotAnEvent("the message body is not a JSON object")
    if "requestContext" in document or "requestPayload" in document:
        if "requestPayload" not in document:
            raise NotAnEvent("an invocation record without its requestPayload")
        return document["requestPayload"]
    if "Records" in document or "Type" in document:
        return document
    raise NotAnEvent("neither an invocation record nor an event")


def _error_of(body: str) -> str:
    """The error an invocation record says the last attempt ended with, for the report."""
    try:
        payload = json.loads(body).get("responsePayload") or {}
        return f"{payload.get('errorType', '?')}: {payload.get('errorMessage', '')}".strip()
    except (AttributeError, TypeError, ValueError):
        return ""


def _emit_debug(line: str) -> None:
    logger.debug("metrics %s", line)


class DlqReplay:
    """Runs the events of the dead-letter queue ``queue_url`` through ``runtime``.

    A received message stays hidden for ``visibility_timeout`` seconds, so that one left during
    this run is not received again by it; :meth:`release_left` shows the left ones again at once.
    """

    def __init__(
        self, runtime: Invoker, sqs: Any, queue_url: str, wait_seconds: int = 2, visibility_timeout: int = 300
    ) -> None:
        self.runtime = runtime
        self.sqs = sqs
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self._left: list[str] = []

    def approximate_count(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        ).get("Attributes", {})
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def messages(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Receive until the queue answers empty (a long poll asks every SQS server) or ``limit``."""
        seen: set[str] = set()
        received = 0
        while limit is None or received < limit:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(MAX_BATCH, limit - received) if limit is not None else MAX_BATCH,
                WaitTimeSeconds=self.wait_seconds,
                VisibilityTimeout=self.visibility_timeout,
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                return
            for message in fresh:
                seen.add(message["MessageId"])
                received += 1
                yield message

    def replay(self, message: dict[str, Any]) -> Replayed:
        label = str(message.get("MessageId"))
        body = message.get("Body", "")
        try:
            event = event_from_body(body)
        except NotAnEvent as exc:
            return self._leave(message, f"{exc}; left for an operator")
        try:
            summary = self.runtime.invoke(event, emit=_emit_debug)
        except OthermailError as exc:
            earlier = _error_of(body)
            detail = f"still failing: {exc.__class__.__name__}: {exc}"
            return self._leave(message, detail + (f" (the Lambda's last error: {earlier})" if earlier else ""))
        except Exception as exc:  # a bug: say so, keep the message
            logger.exception("replaying dead-letter message %s failed unexpectedly", label)
            return self._leave(message, f"unexpected error: {exc.__class__.__name__}: {exc}")
        outcomes = dict(summary.get("outcomes", {}))
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:
            self._left.append(message["ReceiptHandle"])
            return Replayed(
                label,
                False,
                f"handled, but deleting it failed ({exc.__class__.__name__}: {exc}); replaying it again sends nothing",
                outcomes,
            )
        return Replayed(label, True, "handled", outcomes)

    def _leave(self, message: dict[str, Any], detail: str) -> Replayed:
        self._left.append(message["ReceiptHandle"])
        return Replayed(str(message.get("MessageId")), False, detail)

    def release_left(self) -> None:
        """Make the messages this run left visible again now, rather than after their timeout."""
        for handle in self._left:
            try:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
            except Exception as exc:  # they come back after the visibility timeout instead
                logger.warning(
                    json.dumps({"event": "replay-release-failed", "error": f"{exc.__class__.__name__}: {exc}"})
                )
        self._left.clear()


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the delivery log knows of an inbound message."""

    recipients: tuple[str, ...] = ()
    raw_key: str | None = None
    received_at: datetime | None = None


def recorded(engine: Engine, message_id: str) -> Recorded:
    """The recipients, raw-message key and arrival time recorded for ``message_id``."""
    query = (
        select(Delivery.recipient, Delivery.raw_key, Delivery.received_at)
        .where(Delivery.inbound_message_id == message_id)
        .order_by(Delivery.id)
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"reading the delivery log failed: {exc.orig.__class__.__name__}") from exc
    recipients = tuple(dict.fromkeys(row.recipient for row in rows))
    raw_key = next((row.raw_key for row in rows if row.raw_key), None)
    received_at = next((row.received_at for row in rows if row.received_at), None)
    return Recorded(recipients, raw_key, received_at)


def default_key(message_id: str, s3_prefix: str) -> str:
    """Where a message without a recorded key is kept: the one box's spool key for its
    ``smtp-<spool id>`` ids, else the SES receipt rule's ``prefix + message id``."""
    if message_id.startswith("smtp-"):
        return SPOOL_KEY_PREFIX + message_id[len("smtp-") :]
    return s3_prefix + message_id


class MessageReplay:
    """Forwards stored inbound messages again, by id, through ``forwarder``."""

    def __init__(
        self,
        forwarder: Forwarder,
        store: MailStore,
        engine: Engine,
        domains: tuple[str, ...],
        s3_prefix: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.store = store
        self.engine = engine
        self.domains = domains
        self.s3_prefix = s3_prefix
        self.retry = retry or RetryPolicy()

    def replay(self, message_id: str) -> Replayed:
        if not message_id or "/" in message_id:
            return Replayed(message_id, False, "not a message id")
        try:
            return self.retry.call(lambda: self._once(message_id), self.retry.deadline(), what=message_id)
        except OthermailError as exc:
            return Replayed(message_id, False, f"{exc.__class__.__name__}: {exc}")
        except Exception as exc:  # a bug: say so, go on with the next id
            logger.exception("replaying message %s failed unexpectedly", message_id)
            return Replayed(message_id, False, f"unexpected error: {exc.__class__.__name__}: {exc}")

    def _once(self, message_id: str) -> Replayed:
        known = recorded(self.engine, message_id)
        key = known.raw_key or default_key(message_id, self.s3_prefix)
        raw = self.store.get(key)
        split = split_message(raw)
        recipients = known.recipients
        if not recipients:
            domains = self.domains + self.forwarder.directory.user_domain_names()
            recipients = recipients_from_headers(split, domains)
        if not recipients:
            return Replayed(
                message_id,
                False,
                f"no recipient: no delivery row, and no address on the service's domains in its headers ({key})",
            )
        inbound = Inbound(message_id, recipients, verdicts_from_headers(split), None, known.received_at, raw_key=key)
        outcomes: dict[str, int] = {}
        for report in self.forwarder.process(raw, inbound):
            name = "duplicate" if report.duplicate else report.outcome.value
            outcomes[name] = outcomes.get(name, 0) + 1
        return Replayed(message_id, True, "handled", outcomes)
