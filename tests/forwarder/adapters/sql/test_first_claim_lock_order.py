"""PostgreSQL and MariaDB: every first claim locks the rate-limit windows in one order, whether its
alias has a paused destination or not, so two claims of one user's aliases never deadlock (a
deadlock costs the victim deadlock_timeout on PostgreSQL, 1 s by default, and a retry).

The other claim's wait is made certain: a third session holds the user's day window; the claim of
the alias without a paused destination waits on it first, the alias with one second. When the
window is let go, the first waiter takes it and then needs the user's hour window: a claim that
took the hour before the day (the transactional upsert's order, before the fix) holds it and waits
behind, a cycle PostgreSQL breaks by rolling one back (SQLSTATE 40P01; MariaDB: error 1213).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory, claiming
from forwarder.adapters.sql.directory.first_claim import claim_first
from forwarder.adapters.sql.directory.records import _ATTEMPTS, Claim, ClaimState
from forwarder.core import Outcome, Policy
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.mail_limits import MailLimits, window_start
from models import Alias, Delivery, Destination, RateLimitHit, User, make_engine, make_session_factory
from tests.conftest import fresh_database
from tests.forwarder.adapters.sql.test_first_claim import NOON, _raw

LIMITS = MailLimits(alias_per_hour=50, alias_per_day=50, user_per_hour=50, user_per_day=50)
PAUSED, ACTIVE = "paused@othermail.example", "active@othermail.example"


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    with _seeded(request.param) as url:
        yield url


@pytest.fixture
def postgresql_database() -> Iterator[str]:
    with _seeded("postgresql") as url:
        yield url


@contextmanager
def _seeded(backend: str) -> Iterator[str]:
    with fresh_database(backend, migrated=True) as url:
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as db:
                user = User(email="owner@example.org")
                db.add(user)
                db.flush()
                home = Destination(user_id=user.id, email="home@real.example", verified_at=NOON)
                away = Destination(
                    user_id=user.id, email="away@real.example", verified_at=NOON, paused_at=NOON, pause_reason="bounces"
                )
                with_paused = Alias(address=PAUSED, user_id=user.id)
                with_paused.destinations.extend([home, away])
                plain = Alias(address=ACTIVE, user_id=user.id)
                plain.destinations.append(home)
                db.add_all([with_paused, plain])
                db.flush()
                for window in (
                    *LIMITS.windows(with_paused.id, user.id, NOON),
                    *LIMITS.windows(plain.id, user.id, NOON),
                ):
                    db.merge(RateLimitHit(key=window.key, window_start=window.start, count=0))
                db.commit()
        finally:
            engine.dispose()
        yield url


def test_claims_with_and_without_a_paused_destination_lock_the_windows_in_one_order(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deadlocks: list[DBAPIError] = []
    seen = claiming._deadlock

    def spy(exc: DBAPIError) -> bool:
        if seen(exc):
            deadlocks.append(exc)
        return seen(exc)

    monkeypatch.setattr(claiming, "_deadlock", spy)
    engine = make_engine(database)
    holder = engine.connect()
    try:
        day = window_start(NOON, "day")
        holder.execute(
            select(RateLimitHit.count)
            .where(RateLimitHit.key == "mail:user:1:day", RateLimitHit.window_start == day)
            .with_for_update()
        )
        forwarder = Forwarder(
            SqlDirectory(make_session_factory(engine), clock=lambda: NOON, limits=LIMITS),
            MemorySender(),
            Policy(),
            lambda: NOON,
        )
        outcomes: list[Outcome] = []
        errors: list[BaseException] = []

        def send(alias: str, message_id: str) -> None:
            try:
                outcomes.extend(r.outcome for r in forwarder.process(_raw(alias, 1), Inbound(message_id, (alias,))))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        claims = [
            threading.Thread(target=send, args=(ACTIVE, "m-active")),
            threading.Thread(target=send, args=(PAUSED, "m-paused")),
        ]
        for waiters, claim in enumerate(claims, start=1):
            claim.start()
            _until_waiting(engine, waiters)
        holder.commit()
        for claim in claims:
            claim.join(60)
        assert errors == []
        assert deadlocks == []
        assert sorted(o.value for o in outcomes) == ["dropped-paused", "forwarded", "forwarded"]
        with make_session_factory(engine)() as db:
            hits = {h.key: h.count for h in db.scalars(select(RateLimitHit))}
            assert hits == {
                "mail:alias:1:hour": 1,
                "mail:alias:1:day": 1,
                "mail:alias:2:hour": 1,
                "mail:alias:2:day": 1,
                "mail:user:1:hour": 2,
                "mail:user:1:day": 2,
            }
            counts = {a.address: (a.message_count, a.blocked_count) for a in db.scalars(select(Alias))}
            assert counts == {PAUSED: (1, 1), ACTIVE: (1, 0)}
            paused_rows = db.scalars(select(Delivery.reason).where(Delivery.outcome == "dropped-paused")).all()
            assert len(paused_rows) == 1 and "bounces" in paused_rows[0]
    finally:
        holder.close()
        engine.dispose()


_WAITING = {
    "postgresql": (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ),
    "mysql": (
        "SELECT count(*) FROM information_schema.innodb_trx AS t JOIN information_schema.processlist AS p"
        " ON p.id = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()"
    ),
}


def _until_waiting(engine: object, waiters: int) -> None:
    """Return once ``waiters`` sessions of this database wait for a lock."""
    name = engine.dialect.name  # type: ignore[attr-defined]
    # InnoDB refreshes innodb_trx only when it was last read 0.1 s ago or more: polled faster, never
    pause = 0.15 if name == "mysql" else 0.01
    for _ in range(int(10 / pause)):
        with engine.connect() as connection:  # type: ignore[attr-defined]
            if connection.exec_driver_sql(_WAITING[name]).scalar() >= waiters:
                return
        time.sleep(pause)
    raise AssertionError(f"{waiters} claims never waited for the held window")


def test_a_claim_that_keeps_finding_a_window_opened_meanwhile_gives_up_after_its_attempts_and_says_why(
    postgresql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the deliberate division by zero (first_claim.py) is retried a bounded number of times, then
    the message is left for a later delivery (DatabaseUnavailable is retryable) naming the reason;
    nothing is written."""

    class _DivisionByZero(Exception):
        sqlstate = "22012"

    calls: list[int] = []

    def opened_meanwhile_every_time(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise DataError("WITH ...", {}, _DivisionByZero())

    monkeypatch.setattr(claiming, "claim_first", opened_meanwhile_every_time)
    engine = make_engine(postgresql_database)
    try:
        directory = SqlDirectory(make_session_factory(engine), clock=lambda: NOON, limits=LIMITS)
        forwarder = Forwarder(directory, MemorySender(), Policy(), lambda: NOON)
        with pytest.raises(DatabaseUnavailable, match="window opened by another claim"):
            forwarder.process(_raw(ACTIVE, 1), Inbound("m1", (ACTIVE,)))
        assert len(calls) == _ATTEMPTS
        with make_session_factory(engine)() as db:
            assert db.scalars(select(Delivery)).all() == []
    finally:
        engine.dispose()


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    with _seeded("mariadb") as url:
        yield url


def test_an_alias_at_its_message_limit_is_refused_before_a_window_row_is_touched(mariadb_database: str) -> None:
    """MariaDB: the procedure used to count the windows first and check the message limit after, then
    roll back: the window rows it opened left the claims waiting on them to deadlock over the gap
    (a review's stress run: 220 deadlocks in 960 messages to one exhausted alias). A claim for an
    exhausted alias now never waits for a window row another session holds. (The forwarder drops
    mail to an alias it reads at its limit before it claims; the claim meets one that reached it
    meanwhile, which is what this calls directly.)"""
    engine = make_engine(mariadb_database)
    holder = engine.connect()
    try:
        with engine.begin() as connection:
            alias_id = connection.execute(select(Alias.id).where(Alias.address == ACTIVE)).scalar_one()
            connection.execute(
                Alias.__table__.update().where(Alias.id == alias_id).values(max_messages=1, message_count=1)
            )
        holder.execute(  # every window row of the user's aliases, locked
            select(RateLimitHit.count).where(RateLimitHit.key.startswith("mail:")).with_for_update()
        )
        values = {
            "alias_id": alias_id, "inbound_message_id": "m-over", "recipient": ACTIVE, "mail_from": None,
            "subject": None, "bytes_in": 10, "raw_key": None, "created_at": NOON, "received_at": NOON,
        }  # fmt: skip
        refused: list[object] = []

        def claim() -> None:
            with engine.connect() as connection:
                refused.append(claim_first(connection, values, [1], LIMITS.windows(alias_id, 1, NOON), []))
                connection.commit()

        claiming = threading.Thread(target=claim)
        claiming.start()
        while claiming.is_alive():  # done, or waiting on the held rows (then it fails here)
            with engine.connect() as connection:
                assert connection.exec_driver_sql(_WAITING["mysql"]).scalar() == 0, "the claim waited for a window"
            claiming.join(0.15)  # innodb_trx is refreshed at most every 0.1 s (_until_waiting)
        assert refused == [Claim(ClaimState.LIMIT)]
    finally:
        holder.close()
        engine.dispose()
