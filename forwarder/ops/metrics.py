"""Counters of message outcomes, and their two renderings: CloudWatch EMF and Prometheus text.

The counters are the keys :class:`forwarder.flows.outcome_log.OutcomeLog` counts: an outcome value
(``forwarded``, ``dropped-spam``, ...), ``duplicate`` for a redelivered message that sent nothing,
``skipped:<reason>`` for an event or spool entry nobody can process, and ``retry`` for a temporary
failure that is tried again. The Lambda prints one EMF document per invocation with that
invocation's counts (:func:`emf_line`); the one-box process serves the running totals as
Prometheus text on ``/metrics`` (:func:`prometheus_text`).

Why no ``prometheus_client`` at run time: the counters already exist (OutcomeLog, Dispatcher), the
exposition format is a few lines of text, and the Lambda package stays one dependency lighter.
The tests parse the output back with ``prometheus_client``'s own parser (a dev dependency).
No label ever holds a reason text, an address or an id: ``outcome`` and ``reason`` (of a skip)
come from fixed, small sets, so the number of series stays bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from forwarder.core import Outcome

NAMESPACE = "Othermail"
#: Every outcome key a message can end in; /metrics shows each, zero until it happens.
OUTCOME_KEYS: tuple[str, ...] = tuple(o.value for o in Outcome) + ("duplicate",)
SKIPPED = "skipped:"
RETRY = "retry"
#: Metric keys of the one box's SMTP listener (forwarder.adapters.smtp.ingress and .limits), shown
#: as ``othermail_smtp_events_total{event}``.
SMTP_EVENT = "smtp:"
SMTP_EVENTS: tuple[str, ...] = (
    "rcpt-unknown",  # 550: no such alias
    "rcpt-relay-denied",  # 550: not a domain of ours
    "rcpt-expired-reject",  # 550: an expired alias whose expired_action is reject
    "rcpt-disconnected",  # 421 and closed: the miss that reached a cap
    "rcpt-throttled",  # 421 and closed: an RCPT from an IP over its cap
    "rcpt-tarpit-global",  # an RCPT answered late: over the global failed-RCPT budget
    "session-refused",  # 421 at the greeting: too many sessions
    "session-timeout",  # 421 and closed: the session's or its DATA's absolute deadline
    "data-spilled",  # a DATA body written to a file instead of kept in memory
    "data-reply-refused",  # 550 after DATA: mail to reverse addresses its sender may not use
)


class Metrics:
    """Thread-safe counters keyed by outcome (the forwarder threads of one box all count here)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.started_at = clock()

    def count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


# ----------------------------------------------------------------------------- CloudWatch EMF


def emf_document(
    counts: Mapping[str, int],
    *,
    namespace: str = NAMESPACE,
    dimensions: Mapping[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> dict:
    """One CloudWatch Embedded Metric Format document: one metric per counter key, unit Count.

    Each key (``forwarded``, ``dropped-spam``, ``skipped:invalid-event``, ``retry``...) is a metric
    of its own in ``namespace``, its value a top-level member, so one document (one log line)
    carries all of an invocation's counts. ``dimensions`` (name -> value, at most 30) form the one
    dimension set; without any, the set is empty and the metrics have no dimensions (the
    specification allows it: "A DimensionSet MAY be empty").
    """
    dims = dict(dimensions or {})
    if len(dims) > 30:
        raise ValueError("an EMF dimension set holds at most 30 dimensions")
    metrics = sorted(key for key, value in counts.items() if value)
    if len(metrics) > 100:
        raise ValueError("an EMF metric directive holds at most 100 metrics")
    clash = set(metrics) & (set(dims) | {"_aws"})
    if clash:
        raise ValueError(f"metric names clash with dimension names: {sorted(clash)}")
    document: dict = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dims)],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                }
            ],
        }
    }
    document.update({name: str(value) for name, value in dims.items()})
    document.update({name: int(counts[name]) for name in metrics})
    return document


def emf_line(counts: Mapping[str, int], **options: object) -> str:
    """:func:`emf_document` as the single line CloudWatch Logs reads (no prefix, no newline)."""
    return json.dumps(emf_document(counts, **options), separators=(",", ":"), sort_keys=True)  # type: ignore[arg-type]  # options are emf_document's keyword arguments, passed through


# ----------------------------------------------------------------------------- Prometheus text

#: What ``/metrics`` answers with: the text exposition format, version 0.0.4.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed escaped, as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{escape_label_value(str(val))}"' for key, val in labels.items())
        number = repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else str(int(value))
        lines.append(f"{name}{{{rendered}}} {number}" if rendered else f"{name} {number}")
    return lines


def prometheus_text(
    counts: Mapping[str, int], *, spool_pending: int | None = None, start_time: float | None = None
) -> str:
    """The counters as Prometheus text (format 0.0.4), ready to serve on ``/metrics``.

    ``othermail_messages_total{outcome}`` has a series for every known outcome (zero until it
    happens, so ``rate()`` and alerts see it from the start) and for any other outcome counted;
    ``othermail_skipped_total{reason}``, ``othermail_retries_total``,
    ``othermail_smtp_events_total{event}`` (the one box's listener, :mod:`forwarder.adapters.smtp.limits`), the
    ``othermail_spool_pending`` gauge and ``process_start_time_seconds`` follow.
    """
    outcomes = {key: 0 for key in OUTCOME_KEYS}
    skipped: dict[str, int] = {}
    smtp = {event: 0 for event in SMTP_EVENTS}
    for key, value in counts.items():
        if key.startswith(SMTP_EVENT):
            smtp[key[len(SMTP_EVENT) :]] = smtp.get(key[len(SMTP_EVENT) :], 0) + value
        elif key.startswith(SKIPPED):
            skipped[key[len(SKIPPED) :]] = skipped.get(key[len(SKIPPED) :], 0) + value
        elif key != RETRY:
            outcomes[key] = outcomes.get(key, 0) + value
    lines = _family(
        "othermail_messages_total",
        "counter",
        "Message outcomes, one per (message, alias, destination); duplicate: a redelivery that sent nothing.",
        [({"outcome": key}, outcomes[key]) for key in sorted(outcomes)],
    )
    lines += _family(
        "othermail_skipped_total",
        "counter",
        "Events or spool entries nobody can process, by reason.",
        [({"reason": reason}, skipped[reason]) for reason in sorted(skipped)],
    )
    lines += _family(
        "othermail_retries_total",
        "counter",
        "Temporary forwarding failures scheduled for another try.",
        [({}, counts.get(RETRY, 0))],
    )
    lines += _family(
        "othermail_smtp_events_total",
        "counter",
        "SMTP listener events: failed recipients by kind, disconnections and refusals at the caps, "
        "DATA bodies spilled to a file.",
        [({"event": event}, smtp[event]) for event in sorted(smtp)],
    )
    if spool_pending is not None:
        lines += _family(
            "othermail_spool_pending",
            "gauge",
            "Messages accepted over SMTP and not yet forwarded.",
            [({}, spool_pending)],
        )
    if start_time is not None:
        lines += _family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            [({}, float(start_time))],
        )
    return "\n".join(lines) + "\n"
