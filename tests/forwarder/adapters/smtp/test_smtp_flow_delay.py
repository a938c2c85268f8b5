"""In-flow delay: while more accepted messages wait to be forwarded than the limit, DATA waits
before spooling (senders slow to the forwarding pace), and after the longest wait it is accepted
anyway: never refused, never spooled twice."""

from __future__ import annotations

import smtplib
from pathlib import Path

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.stores import MemoryStore
from forwarder.ops.metrics import SMTP_EVENT, Metrics

ALIAS = "shop@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nbody\r\n"


def listener(tmp_path: Path, backlog: list[int], limit: int) -> tuple[SmtpListener, IngressHandler, list[str]]:
    """``backlog`` holds the figures the backlog reports, one per look (the last one repeats)."""
    looks: list[int] = []

    def current() -> int:
        looks.append(1)
        return backlog[min(len(looks), len(backlog)) - 1]

    dispatched: list[str] = []
    handler = IngressHandler(
        ("othermail.example",),
        Spool(tmp_path / "spool", MemoryStore()),
        lambda address: address == ALIAS,
        dispatched.append,
        metrics=Metrics(),
        backlog=current,
        backlog_limit=limit,
    )
    handler.looks = looks  # type: ignore[attr-defined]
    return SmtpListener(handler, "127.0.0.1", 0, 100_000), handler, dispatched


def test_data_waits_while_the_backlog_is_over_the_limit_then_spools_once(tmp_path: Path) -> None:
    server, handler, dispatched = listener(tmp_path, [9, 9, 9, 3], limit=4)
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail("jane@example.net", [ALIAS], RAW) == {}
    finally:
        server.stop()
    assert len(handler.looks) == 4  # type: ignore[attr-defined]  # looked again until it was under the limit
    assert len(dispatched) == 1 and handler.spool.pending() == dispatched
    assert handler.metrics is not None and handler.metrics.snapshot()[SMTP_EVENT + "data-flow-delayed"] == 1


def test_a_backlog_that_stays_high_delays_data_at_most_the_longest_wait_and_accepts(tmp_path: Path) -> None:
    server, handler, dispatched = listener(tmp_path, [100], limit=4)
    handler.flow_delay_seconds = 0.05
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail("jane@example.net", [ALIAS], RAW) == {}
    finally:
        server.stop()
    assert len(handler.looks) > 1 and len(dispatched) == 1  # type: ignore[attr-defined]


def test_under_the_limit_data_does_not_wait(tmp_path: Path) -> None:
    server, handler, dispatched = listener(tmp_path, [4], limit=4)
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail("jane@example.net", [ALIAS], RAW) == {}
    finally:
        server.stop()
    assert len(handler.looks) == 1 and len(dispatched) == 1  # type: ignore[attr-defined]
    assert handler.metrics is not None and handler.metrics.snapshot()[SMTP_EVENT + "data-flow-delayed"] == 0
