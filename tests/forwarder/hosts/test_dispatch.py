"""The dispatcher forwards spooled mail once, retries what failed for now, never drops silently."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.senders import MemorySender
from forwarder.adapters.stores import MemoryStore
from forwarder.core import Outcome
from forwarder.errors import SendRetryable
from forwarder.flows.forward import Forwarder
from forwarder.hosts.dispatch import Dispatcher, backoff
from tests.forwarder.flows.test_forward import ALIAS, RAW, forwarder  # noqa: F401  (fixture)


class Flaky(MemorySender):
    """Fails the first ``failures`` sends with a retryable error."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise SendRetryable("relay said 451")
        return super().send(raw, sender=sender, recipient=recipient)


def make(forwarder: Forwarder, tmp_path: Path, sender: MemorySender | None = None) -> Dispatcher:  # noqa: F811
    if sender is not None:
        forwarder.sender = sender
    return Dispatcher(Spool(tmp_path / "spool", MemoryStore()), forwarder, workers=2, retry_base=0.01, retry_cap=0.05)


def test_a_spooled_message_is_forwarded_once_and_leaves_the_spool(forwarder: Forwarder, tmp_path: Path) -> None:  # noqa: F811
    dispatcher = make(forwarder, tmp_path)
    entry = dispatcher.spool.accept(RAW, "jane@example.net", (ALIAS,))
    dispatcher.submit(entry.spool_id)
    assert dispatcher.wait_idle(10)
    assert dispatcher.spool.pending() == []
    assert [m.recipient for m in forwarder.sender.sent] == ["me@real.example"]
    dispatcher.submit(entry.spool_id)  # a second hand-off of the same entry: gone, set aside, nothing sent
    assert dispatcher.wait_idle(10)
    assert len(forwarder.sender.sent) == 1 and dispatcher.counts["skipped:spool-entry-missing"] == 1
    dispatcher.close()


def test_transient_failures_are_retried_until_delivered(
    forwarder: Forwarder,
    tmp_path: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="othermail.dispatch")
    sender = Flaky(failures=3)
    dispatcher = make(forwarder, tmp_path, sender)
    entry = dispatcher.spool.accept(RAW, "", (ALIAS,))
    dispatcher.submit(entry.spool_id)
    done = threading.Event()
    for _ in range(200):
        if not dispatcher.spool.pending():
            done.set()
            break
        threading.Event().wait(0.02)
    assert done.is_set(), "the message never left the spool"
    assert sender.attempts == 4 and len(sender.sent) == 1
    retries = [json.loads(r.getMessage()) for r in caplog.records if "retry" in r.getMessage()]
    assert [r["attempt"] for r in retries] == [1, 2, 3] and "relay said 451" in retries[0]["error"]
    dispatcher.close()


def test_recover_forwards_what_a_dead_process_left_and_sends_nothing_twice(
    forwarder: Forwarder, tmp_path: Path
) -> None:  # noqa: F811
    spool = Spool(tmp_path / "spool", MemoryStore())
    first = spool.accept(RAW, "", (ALIAS,))
    dispatcher = Dispatcher(spool, forwarder, workers=2)
    dispatcher.submit(first.spool_id)
    assert dispatcher.wait_idle(10)
    dispatcher.close()
    # the process "died" after sending but before removing the entry, and another was accepted
    spool._write_envelope(first)
    second = spool.accept(RAW.replace(b"hi", b"again"), "", (ALIAS,))
    restarted = Dispatcher(spool, forwarder, workers=2)
    assert restarted.recover() == 2
    assert restarted.wait_idle(10)
    assert spool.pending() == []
    assert len(forwarder.sender.sent) == 2  # the first once, the second once
    assert restarted.counts == {"duplicate": 1, Outcome.FORWARDED.value: 1}
    restarted.close()
    assert second.spool_id > first.spool_id


def test_close_leaves_unfinished_mail_spooled(forwarder: Forwarder, tmp_path: Path) -> None:  # noqa: F811
    dispatcher = make(forwarder, tmp_path, Flaky(failures=10_000))
    entry = dispatcher.spool.accept(RAW, "", (ALIAS,))
    dispatcher.submit(entry.spool_id)
    assert dispatcher.wait_idle(10)
    assert dispatcher.close(timeout=5)
    assert dispatcher.spool.pending() == [entry.spool_id]
    dispatcher.submit(entry.spool_id)  # after close: ignored, stays for the next start
    assert dispatcher.spool.pending() == [entry.spool_id]


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    assert backoff(1, 1.0, 300.0, rng=lambda: 0.0) == 0.5
    assert backoff(1, 1.0, 300.0, rng=lambda: 1.0) == 1.0
    assert backoff(4, 1.0, 300.0, rng=lambda: 1.0) == 8.0
    assert backoff(30, 1.0, 300.0, rng=lambda: 1.0) == 300.0


class Held(MemorySender):
    """Holds every send until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = threading.Event()
        self.release = threading.Event()

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        self.sending.set()
        assert self.release.wait(30)
        return super().send(raw, sender=sender, recipient=recipient)


def test_the_backlog_counts_what_was_handed_in_and_not_finished(forwarder: Forwarder, tmp_path: Path) -> None:  # noqa: F811
    sender = Held()
    dispatcher = make(forwarder, tmp_path, sender)
    assert dispatcher.backlog() == 0
    entry = dispatcher.spool.accept(RAW, "jane@example.net", (ALIAS,))
    dispatcher.submit(entry.spool_id)
    assert sender.sending.wait(30)
    assert dispatcher.backlog() == 1  # the listener's in-flow delay reads this
    sender.release.set()
    assert dispatcher.wait_idle(30)
    assert dispatcher.backlog() == 0 and len(sender.sent) == 1
    dispatcher.close()
