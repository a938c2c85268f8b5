"""SQLite lets one writer in at a time. The forwarder's threads queue for it on a lock of their
own instead of sleeping in SQLite's busy handler, so even with no busy timeout at all, many threads
forwarding at once never meet "database is locked"."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import event

from forwarder.core import Outcome
from forwarder.flows.forward import Forwarder, Inbound
from tests.forwarder.flows.test_forward import ALIAS, RAW, forwarder  # noqa: F401  (fixture)
from tests.support.races import race

THREADS = 8
MESSAGES = 25


def test_threads_forwarding_at_once_never_meet_a_locked_sqlite(forwarder: Forwarder) -> None:  # noqa: F811
    engine = forwarder.directory._engine  # type: ignore[attr-defined]
    engine.dispose()

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection: Any, _record: Any) -> None:  # after models' own: it wins
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    outcomes: list[Outcome] = []

    def work(thread: int) -> None:
        for n in range(MESSAGES):
            reports = forwarder.process(RAW, Inbound(f"m-{thread}-{n}", (ALIAS,)))
            outcomes.extend(report.outcome for report in reports)

    race([partial(work, t) for t in range(THREADS)], within=120)
    assert outcomes.count(Outcome.FORWARDED) == THREADS * MESSAGES
    assert len(forwarder.sender.sent) == THREADS * MESSAGES  # type: ignore[attr-defined]
