"""One structured JSON line per message outcome.

The line names the message, the alias and the destination by id, the outcome and its reason,
sizes and duration. It never holds the body, and never a destination address in clear: the
destination id is enough to find it, for whoever may.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forwarder.core import Outcome

if TYPE_CHECKING:
    from forwarder.adapters.sql.feedback_store import Applied
    from forwarder.ops.metrics import Metrics

logger = logging.getLogger("othermail.outcome")


@dataclass(frozen=True, slots=True)
class Report:
    """One outcome of one message: for an alias, and for a destination when it was sent."""

    message_id: str
    recipient: str
    alias_id: int | None
    destination_id: int | None
    outcome: Outcome
    reason: str
    bytes_in: int
    bytes_out: int | None = None
    duplicate: bool = False
    resent: bool = False
    provider_message_id: str | None = None
    repairs: tuple[str, ...] = ()


class OutcomeLog:
    def __init__(self, log: logging.Logger = logger, metrics: Metrics | None = None) -> None:
        self._logger = log
        self.counts: Counter[str] = Counter()
        self.metrics = metrics  # thread-safe totals for /metrics (one box); the Lambda uses ``counts``

    def _count(self, key: str) -> None:
        self.counts[key] += 1
        if self.metrics is not None:
            self.metrics.count(key)

    def outcome(self, report: Report, duration_ms: float) -> None:
        key = "duplicate" if report.duplicate else report.outcome.value
        self._count(key)
        if not self._logger.isEnabledFor(logging.INFO):
            return  # the line would be dropped: do not build it
        line = {
            "event": "message",
            "message_id": report.message_id,
            "alias_id": report.alias_id,
            "destination_id": report.destination_id,
            "outcome": report.outcome.value,
            "reason": report.reason,
            "duplicate": report.duplicate,
            "resent": report.resent,
            "bytes_in": report.bytes_in,
            "bytes_out": report.bytes_out,
            "duration_ms": round(duration_ms, 2),
            "repairs": list(report.repairs),
        }
        self._logger.info(json.dumps(line, sort_keys=True))

    def feedback(self, applied: Applied) -> None:
        """One line per SES bounce or complaint applied (forwarder/adapters/sql/feedback_store.py); counted as
        ``feedback:<kind>``, or ``feedback:duplicate`` for a redelivered one. The bounced address
        is never in it: the diagnostic names the destination by id instead."""
        item = applied.feedback
        self._count("feedback:duplicate" if applied.duplicate else f"feedback:{item.kind}")
        if not self._logger.isEnabledFor(logging.INFO):
            return
        line = {
            "event": "feedback",
            "kind": item.kind,
            "sub_type": item.sub_type,
            "feedback_id": item.feedback_id,
            "provider_message_id": item.message_id,
            "alias_id": applied.alias_id,
            "destination_id": applied.destination_id,
            "duplicate": applied.duplicate,
            "known_message": applied.known,
            "paused_destination": applied.paused,
            "disabled_alias": applied.alias_disabled,
            "detail": _hide(item.detail, item.recipient, applied.destination_id)[:500],
        }
        self._logger.info(json.dumps(line, sort_keys=True))

    def skipped(self, reason: str, detail: str) -> None:
        self._count(f"skipped:{reason}")
        self._logger.info(json.dumps({"event": "skipped", "reason": reason, "detail": detail}, sort_keys=True))


def redact(text: str, address: str, destination_id: int | None) -> str:
    """``text`` with every spelling of ``address`` replaced by the destination's id.

    SES and SMTP relays quote the recipient in their refusals ("... identities failed the check:
    me@real.example", "550 5.1.1 <me@real.example>: unknown"); such a text becomes a reason in the
    outcome line, and the line must never hold a destination address in clear.
    """
    if not address or not text:
        return text
    return re.sub(re.escape(address), f"destination #{destination_id}", text, flags=re.IGNORECASE)


def _hide(text: str, address: str, destination_id: int | None) -> str:
    if destination_id is not None:
        return redact(text, address, destination_id)
    return re.sub(re.escape(address), "[recipient]", text, flags=re.IGNORECASE) if address and text else text
