"""One structured JSON line per message outcome.

The line names the message, the alias and the destination by id, the outcome and its reason,
sizes and duration. It never holds the body, and never a destination address in clear: the
destination id is enough to find it, for whoever may.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forwarder.pipeline import Report

logger = logging.getLogger("othermail.outcome")


class OutcomeLog:
    def __init__(self, log: logging.Logger = logger) -> None:
        self._logger = log
        self.counts: Counter[str] = Counter()

    def outcome(self, report: "Report", duration_ms: float) -> None:
        key = "duplicate" if report.duplicate else report.outcome.value
        self.counts[key] += 1
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

    def skipped(self, reason: str, detail: str) -> None:
        self.counts[f"skipped:{reason}"] += 1
        self._logger.info(json.dumps({"event": "skipped", "reason": reason, "detail": detail}, sort_keys=True))
