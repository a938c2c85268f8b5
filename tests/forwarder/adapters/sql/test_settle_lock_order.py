"""MariaDB: the settle of a message's first claim locks the alias row before the claim's row, the
order of every other transaction writing both (forwarder/adapters/sql/directory/'s docstring;
issue 15 review, finding 4). Its multiple-table UPDATE used to lock the delivery row first, so it
deadlocked with a settle that counts the alias first and then finishes the same row.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

import forwarder.adapters.sql.directory.sql_directory as directory_module
from forwarder.adapters.sql.directory import DeliveryKey, Finished, MessageMeta, SqlDirectory
from forwarder.core import Outcome
from models import Alias, Destination, User, make_engine, make_session_factory
from tests.conftest import fresh_database
from tests.forwarder.adapters.sql.test_late_settle import ALIAS, FORWARD, START, _row

WAIT_SECONDS = 20


def _wait_for_a_lock_wait(engine: Any, errors: list[BaseException]) -> None:
    """Until the settle in its thread runs its UPDATE, which waits for the alias row."""
    deadline = time.monotonic() + WAIT_SECONDS
    with engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND info LIKE 'UPDATE%' AND id <> CONNECTION_ID()"
                )
            ).scalar()
            probe.rollback()
            if waiting:
                return
            assert errors == []
            time.sleep(0.02)
    raise AssertionError("the settle never waited for the alias row")  # pragma: no cover


@pytest.mark.mariadb
def test_a_first_settle_waits_for_the_alias_row_holding_no_delivery_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    deadlocks: list[object] = []
    original = directory_module._deadlock

    def seen(exc: Any) -> bool:
        found = original(exc)
        if found:
            deadlocks.append(exc)
        return found

    monkeypatch.setattr(directory_module, "_deadlock", seen)
    with fresh_database("mariadb", migrated=True) as url:
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            with sessions() as db:
                user = User(email="owner@example.org")
                db.add(user)
                db.flush()
                alias = Alias(address=ALIAS, user_id=user.id)
                alias.destinations.append(Destination(user_id=user.id, email="home@real.example", verified_at=START))
                db.add(alias)
                db.commit()
            sql = SqlDirectory(sessions, clock=lambda: START)
            a = sql.begin("m1", ALIAS, MessageMeta("jane@example.net", "hi", 100, START), lambda _r: FORWARD)
            assert a.first and a.resolved is not None
            key = DeliveryKey("m1", ALIAS, a.claims[0][0].destination_id)
            late = Finished(key, Outcome.FORWARDED, "forwarded", 100, "provider-a", a.resolved.alias_id, first=True)

            # another settle of the same copy, the way _finish_in does it: the alias row, then the claim
            with engine.connect() as other:
                other.execute(
                    text("UPDATE aliases SET forwarded_count = forwarded_count + 1 WHERE id = :id"),
                    {"id": a.resolved.alias_id},
                )
                errors: list[BaseException] = []

                def settle() -> None:
                    try:
                        sql.settle([late])
                    except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                        errors.append(exc)

                waiting = threading.Thread(target=settle)
                waiting.start()
                _wait_for_a_lock_wait(engine, errors)
                other.execute(
                    text(
                        "UPDATE deliveries SET outcome = 'forwarded', provider_message_id = 'provider-b' "
                        "WHERE inbound_message_id = 'm1' AND destination_key = :key AND outcome = 'pending'"
                    ),
                    {"key": key.destination_id},
                )
                other.commit()
                waiting.join(WAIT_SECONDS)
            assert not waiting.is_alive()
            assert errors == [] and deadlocks == []
            assert _row(sql)[:3] == (1, "provider-b", "forwarded")
        finally:
            engine.dispose()
