"""One pooled connection per message (forwarder/adapters/sql/connections.py): the steps of a
message share it, it holds no transaction between them (nor across a send), and it belongs to one
thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from forwarder.adapters.sql.connections import connect, one_connection
from models import make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = make_engine(database_url)
    yield made
    made.dispose()


def _checkouts(engine: Engine) -> list[object]:
    seen: list[object] = []
    event.listen(engine.pool, "checkout", lambda *args: seen.append(args))
    return seen


def test_the_steps_of_a_message_share_one_checkout_and_no_transaction(engine: Engine) -> None:
    checkouts = _checkouts(engine)
    used: list[Connection] = []
    with one_connection(engine):
        for _ in range(3):
            with connect(engine) as connection:
                connection.execute(text("SELECT 1"))
                used.append(connection)
            # the step left without commit: rolled back, nothing held open until the next one
            assert not connection.in_transaction()
    assert len(checkouts) == 1
    assert used[0] is used[1] is used[2]
    assert engine.pool.checkedout() == 0


def test_a_step_inside_a_step_takes_a_connection_of_its_own(engine: Engine) -> None:
    with one_connection(engine), connect(engine) as outer, connect(engine) as inner:
        assert inner is not outer


def test_a_failed_step_gives_its_connection_back_and_the_next_takes_another(engine: Engine) -> None:
    with one_connection(engine):
        with pytest.raises(ZeroDivisionError), connect(engine) as failed:
            failed.execute(text("SELECT 1"))
            1 / 0  # noqa: B018
        with connect(engine) as after:
            assert after is not failed
            assert after.execute(text("SELECT 1")).scalar() == 1


def test_each_thread_holds_its_own_connection(engine: Engine) -> None:
    both = threading.Barrier(2)
    used: dict[str, Any] = {}

    def message(name: str) -> None:
        with one_connection(engine):
            with connect(engine) as connection:
                connection.execute(text("SELECT 1"))
            both.wait(timeout=10)  # both threads hold their connection now
            with connect(engine) as again:
                assert again is connection
            used[name] = connection

    threads = [threading.Thread(target=message, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert used["a"] is not used["b"]


def test_autocommit_then_a_transaction_on_the_held_connection(engine: Engine) -> None:
    """PostgreSQL: a step in autocommit, then one that is a transaction, then autocommit again."""
    wanted = engine.dialect.name == "postgresql"
    with one_connection(engine):
        with connect(engine, autocommit=wanted) as first:
            assert (first.get_execution_options().get("isolation_level") == "AUTOCOMMIT") is wanted
        with connect(engine) as second:
            assert second is first
            assert second.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
        with connect(engine, autocommit=wanted) as third:
            assert (third.get_execution_options().get("isolation_level") == "AUTOCOMMIT") is wanted
