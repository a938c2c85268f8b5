"""What one forwarded message costs the database (issue 15 point 4), counted on every backend, so
that the count cannot grow back unnoticed: statements (SQLAlchemy's ``before_cursor_execute``),
transactions the server saw and pool checkouts, for the first message of a rate-limit window and for
the next one. ``pytest -s`` prints them; bench/statements.py prints the same table outside the tests.

On PostgreSQL a transaction is counted by the BEGIN psycopg sends (each BEGIN, COMMIT or ROLLBACK is
one more round trip): SQLAlchemy's ``begin`` event also fires on an autocommit connection, where
nothing is sent. Elsewhere it is SQLAlchemy's ``begin`` event (MariaDB sends no BEGIN, but a COMMIT).

Also: the pool no longer pings every checkout, so a pooled connection the server killed is replaced
when the forwarder's first statement meets it, and the message still goes through; psycopg prepares
the hot path's statements on the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

import models.engine
from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.mail_limits import window_start
from forwarder.settings import DEFAULT_MAIL_LIMITS
from models import Alias, Delivery, Destination, RateLimitHit, User, make_engine, make_session_factory
from tests.conftest import BACKEND_PARAMS, _admin_sql, fresh_database
from tests.support.round_trips import psycopg_commands

ALIAS = "shop-7hq2@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"
START = datetime(2030, 1, 2, 11, 30, tzinfo=UTC)

#: The bounds this module holds the hot path to (one-way alias, one destination, the default limits),
#: by dialect: SQLite cannot write two tables in one statement (forwarder/adapters/sql/directory/).
#: Before issue 15: 33 statements in 7 transactions on the first message of a day, 12 in 2 after;
#: then 5 statements in 2 transactions on PostgreSQL (4 more round trips: BEGIN and COMMIT twice).
#: PostgreSQL now: each step one statement on an autocommit connection (read, claim, settle), the
#: first message of a window too (the claim opens the windows without a row). MariaDB: the same
#: three, the claim a stored procedure's CALL (migration 0010; four statements before), each step's
#: transaction ended by a COMMIT (the claim's is empty: the procedure commits its own).
MAX_STATEMENTS = {"sqlite": 6, "postgresql": 3, "mysql": 3}
MAX_TRANSACTIONS = {"sqlite": 2, "postgresql": 0, "mysql": 2}
#: Pool checkouts: the flow holds one connection per message (Directory.one_connection) that every
#: step reuses (two before: the claim's and the settle's), on every backend.
MAX_CHECKOUTS = 1


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0
    checkouts: int = 0
    #: psycopg's BEGIN, COMMIT and ROLLBACK (PostgreSQL only): each one round trip.
    commands: list[str] = field(default_factory=list)


@dataclass
class Box:
    engine: Engine
    forwarder: Forwarder
    sender: MemorySender
    now: list[datetime]

    def forward(self, message_id: str) -> Counted:
        """Forward ``message_id`` to the alias, counting what the engine did meanwhile."""
        counted = Counted()

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            counted.statements.append(" ".join(sql.split()))

        def begin(_conn: Any) -> None:
            counted.transactions += 1

        def checkout(*_args: Any) -> None:
            counted.checkouts += 1

        postgresql = self.engine.dialect.name == "postgresql"
        event.listen(self.engine, "before_cursor_execute", statement)
        if not postgresql:
            event.listen(self.engine, "begin", begin)
        event.listen(self.engine.pool, "checkout", checkout)
        try:
            with psycopg_commands(counted.commands) if postgresql else nullcontext():
                reports = self.forwarder.process(RAW, Inbound(message_id, (ALIAS,)))
        finally:
            event.remove(self.engine, "before_cursor_execute", statement)
            if not postgresql:
                event.remove(self.engine, "begin", begin)
            event.remove(self.engine.pool, "checkout", checkout)
        assert [r.outcome for r in reports] == [Outcome.FORWARDED]
        if postgresql:
            counted.transactions = counted.commands.count("BEGIN")
        return counted


def _box(url: str) -> Box:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = [START]
    with sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email="home@real.example", verified_at=START))
        db.add(alias)
        db.commit()
    sender = MemorySender()
    directory = SqlDirectory(sessions, clock=lambda: now[0], limits=DEFAULT_MAIL_LIMITS)
    forwarder = Forwarder(directory, sender, Policy(), lambda: now[0])
    forwarder.process(RAW, Inbound("warm-up", (ALIAS,)))  # the user domains are read once, then cached
    return Box(engine, forwarder, sender, now)


@pytest.fixture
def box(migrated_url: str) -> Iterator[Box]:
    made = _box(migrated_url)
    yield made
    made.engine.dispose()


def _show(backend: str, name: str, counted: Counted) -> None:
    print(
        f"\n{backend:<10} {name:<16} {len(counted.statements)} statements, {counted.transactions} transactions,"
        f" {counted.checkouts} checkouts" + (f", sent {' '.join(counted.commands)}" if counted.commands else "")
    )


def test_a_forwarded_message_costs_as_few_statements_first_in_its_windows_as_after(box: Box) -> None:
    backend = box.engine.dialect.name
    box.now[0] += timedelta(days=1)  # a new day: none of its four windows has a row yet
    first = box.forward("m1")
    steady = box.forward("m2")
    _show(backend, "first of window", first)
    _show(backend, "steady", steady)
    for counted in (first, steady):
        assert len(counted.statements) <= MAX_STATEMENTS[backend], counted.statements
        assert counted.transactions <= MAX_TRANSACTIONS[backend], counted.commands
        if backend == "postgresql":  # no BEGIN, COMMIT or ROLLBACK round trip at all
            assert counted.commands == []
        assert counted.checkouts == MAX_CHECKOUTS
        # the four windows are counted by one statement (MariaDB: the CALL), nothing is deleted per message
        windows = [
            s for s in counted.statements if "rate_limit_hits" in s or s.startswith("CALL othermail_first_claim")
        ]
        assert len(windows) == 1, counted.statements
        assert not any(s.startswith("DELETE") for s in counted.statements)
    assert len(box.sender.sent) == 3
    with make_session_factory(box.engine)() as db:
        today = select(RateLimitHit.key, RateLimitHit.count).where(
            RateLimitHit.window_start >= window_start(box.now[0], "day")
        )
        assert sorted(tuple(row) for row in db.execute(today)) == [
            (f"mail:{key}", 2) for key in ("alias:1:day", "alias:1:hour", "user:1:day", "user:1:hour")
        ]
        assert db.scalar(select(func.count()).select_from(RateLimitHit)) == 8  # yesterday's 4 kept until the prune
        assert db.get(Alias, 1).forwarded_count == 3  # type: ignore[union-attr]
        assert db.scalar(select(func.count()).where(Delivery.outcome == "forwarded")) == 3


def test_a_redelivery_costs_one_statement_and_sends_nothing(box: Box) -> None:
    box.forward("m1")
    box.sender.sent.clear()
    counted = box.forward("m1")
    transactions = 0 if box.engine.dialect.name == "postgresql" else 1
    assert (len(counted.statements), counted.transactions, counted.checkouts) == (1, transactions, 1)
    assert box.sender.sent == []


def test_no_hot_path_statement_is_compiled_again_message_after_message(box: Box) -> None:
    """Every statement of the hot path is served by SQLAlchemy's compiled cache once it has run:
    the rate-limit upsert, a multi-row INSERT built with ``values([...])``, had no cache key
    (``NO_CACHE_KEY``) and was compiled again for every message."""
    missed: list[str] = []

    def after(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: bool) -> None:
        if context.cache_hit != context.dialect.CACHE_HIT:
            missed.append(f"{context.cache_hit}: {' '.join(sql.split())[:80]}")

    box.forward("m0")  # the first message of its hour: the same statements as the next ones
    event.listen(box.engine, "after_cursor_execute", after)
    try:
        for n in range(1, 5):
            box.forward(f"m{n}")
    finally:
        event.remove(box.engine, "after_cursor_execute", after)
    assert missed == []


def test_the_message_connection_holds_no_transaction_across_the_send(box: Box) -> None:
    """The one connection a message holds (Directory.one_connection) is idle while the copy is sent:
    no transaction, no row lock, waits on the send."""
    backend = box.engine.dialect.name
    held: list[Any] = []
    seen: list[object] = []
    event.listen(box.engine.pool, "checkout", lambda dbapi_connection, *_args: held.append(dbapi_connection))
    send = box.sender.send

    def send_and_look(*args: Any, **kwargs: Any) -> str:
        (connection,) = held
        if backend == "sqlite":
            seen.append(connection.in_transaction)
        else:
            with box.engine.connect() as other:
                if backend == "postgresql":
                    query = "SELECT state FROM pg_stat_activity WHERE pid = %s" % connection.info.backend_pid
                else:
                    query = "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s" % (
                        connection.thread_id()
                    )
                seen.append(other.exec_driver_sql(query).scalar())
        return send(*args, **kwargs)

    box.sender.send = send_and_look  # type: ignore[method-assign]
    box.forward("m1")
    assert seen == [{"sqlite": False, "postgresql": "idle", "mysql": 0}[backend]]


SERVERS = [p for p in BACKEND_PARAMS if p.id != "sqlite"]


def _kill(backend: str, engine: Engine) -> None:
    """Kill, from another session, the server side of the connection the pool holds."""
    with engine.connect() as connection:
        query = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
        pid = connection.exec_driver_sql(query).scalar()
    assert engine.pool.checkedin() == 1
    _admin_sql(backend, f"SELECT pg_terminate_backend({pid})" if backend == "postgresql" else f"KILL {pid}")


@pytest.mark.parametrize("backend", SERVERS)
def test_a_message_goes_through_after_the_server_killed_the_pooled_connection(backend: str) -> None:
    with fresh_database(backend, migrated=True) as url:
        box = _box(url)
        try:
            box.forward("m1")
            _kill(backend, box.engine)
            reconnects: list[object] = []
            event.listen(box.engine.pool, "connect", lambda *args: reconnects.append(args))
            counted = box.forward("m2")  # no ping: the first statement meets the dead connection, once
            assert len(reconnects) == 1
            assert counted.statements[0] == counted.statements[1]  # the first statement, run again
            assert len(counted.statements) <= MAX_STATEMENTS[box.engine.dialect.name] + 1
            assert [m.recipient for m in box.sender.sent][-1] == "home@real.example"
            assert len(box.sender.sent) == 3
        finally:
            box.engine.dispose()


@pytest.mark.parametrize("backend", SERVERS)
def test_a_connection_killed_during_the_send_does_not_leave_the_claim_pending(backend: str) -> None:
    """The copy was sent: what the send did is recorded on a new connection, not lost with the old
    one (a claim left pending would be sent again after the claim timeout). The connection killed is
    the one the message holds across its send (Directory.one_connection)."""
    with fresh_database(backend, migrated=True) as url:
        box = _box(url)
        send = box.sender.send
        held: list[Any] = []
        event.listen(box.engine.pool, "checkout", lambda dbapi_connection, *_args: held.append(dbapi_connection))

        def send_then_kill(*args: Any, **kwargs: Any) -> str:
            sent = send(*args, **kwargs)
            (connection,) = held  # the message's one checkout, still out
            assert box.engine.pool.checkedout() == 1
            pid = connection.info.backend_pid if backend == "postgresql" else connection.thread_id()
            _admin_sql(backend, f"SELECT pg_terminate_backend({pid})" if backend == "postgresql" else f"KILL {pid}")
            return sent

        try:
            box.sender.send = send_then_kill  # type: ignore[method-assign]
            box.forward("m1")
            with make_session_factory(box.engine)() as db:
                outcome = db.scalar(select(Delivery.outcome).where(Delivery.inbound_message_id == "m1"))
                forwarded = db.get(Alias, 1).forwarded_count  # type: ignore[union-attr]
            assert (outcome, forwarded) == ("forwarded", 2)  # the warm-up's and m1
        finally:
            box.engine.dispose()


@pytest.mark.parametrize("backend", SERVERS)
def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_when_dead(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other users of the engine (the web app) have no retry: a connection that sat idle longer than
    PING_AFTER_IDLE_SECONDS is pinged at checkout, and a dead one replaced before it is used."""
    monkeypatch.setattr(models.engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    with fresh_database(backend, migrated=True) as url:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            _kill(backend, engine)
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", SERVERS)
def test_no_ping_round_trip_on_a_busy_pool(backend: str) -> None:
    """A connection checked in moments ago is handed out as it is: the dead one is found by the
    first statement (which the forwarder runs again), not by a ping before every transaction."""
    with fresh_database(backend, migrated=True) as url:
        engine = make_engine(url)
        pings: list[object] = []
        original = engine.dialect.do_ping
        engine.dialect.do_ping = lambda dbapi_connection: pings.append(dbapi_connection) or original(dbapi_connection)  # type: ignore[method-assign]
        try:
            for _ in range(3):
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
            assert pings == []
        finally:
            engine.dispose()


def test_psycopg_prepares_the_hot_path_statements() -> None:
    with fresh_database("postgresql", migrated=True) as url:
        box = _box(url)
        try:
            for n in range(3):
                box.forward(f"m{n}")
            with box.engine.connect() as connection:  # the same pooled connection
                prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
            assert any("rate_limit_hits" in s for s in prepared)
            assert any("UPDATE deliveries" in s for s in prepared)
        finally:
            box.engine.dispose()
