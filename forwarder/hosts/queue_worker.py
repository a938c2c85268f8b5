"""The queue worker (EC2 mode): SES stores mail in S3 and notifies SNS, which feeds an SQS queue.

One loop: long-poll the queue, hand each message body to :meth:`LambdaRuntime.handle` (the same
parsing and pipeline as the Lambda), then decide the queue message's fate:

============================================  ===============================================
what happened                                 the queue message
============================================  ===============================================
forwarded, dropped with a reason, duplicate,  deleted (``DeleteMessageBatch``)
SES bounces and complaints applied (or found
applied before), skipped (SNS confirmation,
the other SES events), an event of unknown
shape (``invalid-event``)
a body that is not JSON                       logged whole as skipped ``invalid-queue-message``
                                              and deleted: no retry can make it JSON
:class:`RetryableError` (SES throttling, S3,  left; made visible again after a backoff that
the database, a delivery another worker       doubles with ``ApproximateReceiveCount``
holds)                                        (``ChangeMessageVisibility``), so the queue's
                                              redrive policy moves it to the dead-letter queue
                                              after ``maxReceiveCount`` receives
any other exception (a bug)                   left the same way, logged with its traceback;
                                              the loop goes on
============================================  ===============================================

A message is deleted only after every delivery it asked for is recorded, so a redelivered queue
message (SQS is at-least-once, and so is SNS) finds the recorded deliveries and sends nothing
twice; two workers holding copies of one message race on the delivery claim, and one sends.

Each queue message logs through the runtime's :class:`OutcomeLog` (one line per outcome); a message
left for redelivery logs one JSON line on ``othermail.queue``, and so does each non-empty batch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from forwarder.errors import RetryableError
from forwarder.flows.outcome_log import OutcomeLog

logger = logging.getLogger("othermail.queue")

#: SQS limits: at most 10 messages a receive, 20 s of long poll, 12 h of visibility.
MAX_BATCH = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_SECONDS = 12 * 3600


class EventHandler(Protocol):
    """What the worker hands each event to: :class:`~forwarder.hosts.lambda_handler.LambdaRuntime`."""

    outcome_log: OutcomeLog

    def handle(self, event: Any) -> dict[str, Any]: ...


@dataclass
class BatchResult:
    """What one :meth:`QueueWorker.run_once` did; ``QueueWorker.totals`` adds them up."""

    received: int = 0
    deleted: int = 0
    left: int = 0
    delete_failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        self.received += other.received
        self.deleted += other.deleted
        self.left += other.left
        self.delete_failed += other.delete_failed
        self.outcomes.update(other.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "deleted": self.deleted,
            "left": self.left,
            "delete_failed": self.delete_failed,
            "outcomes": dict(self.outcomes),
        }


def backoff_seconds(receive_count: int, base: int, cap: int) -> int:
    """How long a failed message stays invisible: ``base * 2**(receives - 1)``, at most ``cap``."""
    if base <= 0:
        return 0
    exponent = min(max(receive_count, 1) - 1, 30)
    return min(cap, base * 2**exponent, MAX_VISIBILITY_SECONDS)


class QueueWorker:
    """Receives from ``queue_url`` and forwards through ``runtime`` until ``stop_event`` is set.

    ``visibility_timeout`` (seconds a received message stays hidden while it is worked on) is the
    queue's own setting when ``None``. ``backoff_base``/``backoff_cap`` shape the retry delay of a
    failed message; a base of 0 makes it visible again at once.
    """

    def __init__(
        self,
        runtime: EventHandler,
        sqs_client: Any,
        queue_url: str,
        wait_seconds: int = MAX_WAIT_SECONDS,
        batch: int = MAX_BATCH,
        visibility_timeout: int | None = None,
        stop_event: threading.Event | None = None,
        backoff_base: int = 30,
        backoff_cap: int = 900,
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be between 1 and {MAX_BATCH}, not {batch}")
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS}, not {wait_seconds}")
        self.runtime = runtime
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.batch = batch
        self.visibility_timeout = visibility_timeout
        self.stop_event = stop_event or threading.Event()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.totals = BatchResult()
        self.batches = 0

    # -- one batch -------------------------------------------------------------------------------

    def receive(self) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": self.batch,
            "WaitTimeSeconds": self.wait_seconds,
            "AttributeNames": ["ApproximateReceiveCount"],
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        return list(self.sqs.receive_message(**kwargs).get("Messages", []))

    def run_once(self) -> BatchResult:
        """Receive one batch (long poll), process every message in it, delete the finished ones.

        Errors of the receive itself propagate (:meth:`run` logs them and waits); errors of a
        message never do.
        """
        messages = self.receive()
        result = BatchResult(received=len(messages))
        finished: list[dict[str, Any]] = []
        for message in messages:
            if self._process(message, result):
                finished.append(message)
        self._delete(finished, result)
        self.batches += 1
        self.totals.add(result)
        if messages:
            logger.info(json.dumps({"event": "queue-batch", **result.as_dict()}, sort_keys=True))
        return result

    def _process(self, message: dict[str, Any], result: BatchResult) -> bool:
        """Handle one queue message; True when it is finished and may be deleted."""
        body = message.get("Body", "")
        try:
            event = json.loads(body)
        except (TypeError, ValueError):
            # not logged: it may be a raw message (issue 12.26)
            detail = (
                f"queue message {str(message.get('MessageId'))[:100]}: body is not JSON ({len(str(body))} characters)"
            )
            self.runtime.outcome_log.skipped("invalid-queue-message", detail)
            result.outcomes["skipped:invalid-queue-message"] += 1
            return True
        try:
            summary = self.runtime.handle(_unwrap_raw_delivery(event, body))
        except RetryableError as exc:
            self._leave(message, result, exc, logging.WARNING)
            return False
        except Exception as exc:  # a bug: keep the message for redelivery and the DLQ, keep looping
            self._leave(message, result, exc, logging.ERROR)
            return False
        result.outcomes.update(summary.get("outcomes", {}))
        return True

    def _leave(self, message: dict[str, Any], result: BatchResult, exc: Exception, level: int) -> None:
        result.left += 1
        receives = _receive_count(message)
        delay = backoff_seconds(receives, self.backoff_base, self.backoff_cap)
        line = {
            "event": "queue-retry" if level < logging.ERROR else "queue-error",
            "queue_message_id": message.get("MessageId"),
            "receive_count": receives,
            "error": exc.__class__.__name__,
            "detail": str(exc),
            "retry_in_seconds": delay,
        }
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
            )
        except Exception as change_exc:  # the queue's own visibility timeout applies instead
            line["retry_in_seconds"] = None
            line["visibility_error"] = f"{change_exc.__class__.__name__}: {change_exc}"
        logger.log(level, json.dumps(line, sort_keys=True), exc_info=exc if level >= logging.ERROR else None)

    def _delete(self, finished: list[dict[str, Any]], result: BatchResult) -> None:
        if not finished:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(finished)]
        try:
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as exc:  # they come back and are found already handled
            result.delete_failed += len(entries)
            logger.warning(
                json.dumps(
                    {
                        "event": "queue-delete-failed",
                        "count": len(entries),
                        "error": f"{exc.__class__.__name__}: {exc}",
                    },
                    sort_keys=True,
                )
            )
            return
        failed = response.get("Failed", [])
        result.deleted += len(response.get("Successful", []))
        result.delete_failed += len(failed)
        for entry in failed:
            message = finished[int(entry["Id"])]
            logger.warning(
                json.dumps(
                    {
                        "event": "queue-delete-failed",
                        "queue_message_id": message.get("MessageId"),
                        "code": entry.get("Code"),
                        "detail": entry.get("Message"),
                    },
                    sort_keys=True,
                )
            )

    # -- the loop --------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> BatchResult:
        """Receive and process batches until the stop event is set; a batch under way finishes.

        A failing receive (the queue unreachable, throttled) is logged and retried after a pause
        that doubles up to a minute.
        """
        stop = stop_event or self.stop_event
        failures = 0
        while not stop.is_set():
            try:
                self.run_once()
                failures = 0
            except Exception as exc:
                failures += 1
                pause = min(60, 2 ** min(failures - 1, 6))
                logger.error(
                    json.dumps(
                        {
                            "event": "queue-receive-failed",
                            "error": exc.__class__.__name__,
                            "detail": str(exc),
                            "retry_in_seconds": pause,
                        },
                        sort_keys=True,
                    ),
                    exc_info=exc,
                )
                stop.wait(pause)
        return self.totals


def _unwrap_raw_delivery(event: Any, body: str) -> Any:
    """An SNS subscription with raw message delivery on puts the SES notification itself in the
    queue, without the SNS envelope: give it the envelope the parser knows (raw delivery off is the
    documented setup; this keeps mail from being dropped as ``invalid-event`` when it is on)."""
    if (
        isinstance(event, dict)
        and "Type" not in event
        and "Records" not in event
        and ("notificationType" in event or "eventType" in event)
    ):
        return {"Type": "Notification", "Message": body}
    return event


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1
