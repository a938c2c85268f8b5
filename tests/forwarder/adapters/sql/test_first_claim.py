"""A message's first claim through the whole forward flow (``Directory.begin``), under real concurrency
on every backend: on PostgreSQL it is one statement on an autocommit connection
(forwarder/adapters/sql/directory/first_claim.py), on MariaDB one stored procedure's CALL (migration
0010), on SQLite a transaction. Either way a window never
goes over its limit, and a message refused by one window is counted in none of the others, nor on
the alias, and leaves no claim.

tests/forwarder/flows/test_mail_limits.py holds the same through ``SqlDirectory.claim``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert, select

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.mail_limits import MailLimits, window_start
from migrations import upgrade
from models import Alias, Delivery, Destination, RateLimitHit, User, make_engine, make_session_factory
from tests.conftest import fresh_database
from tests.support.races import race

NOON = datetime(2030, 1, 2, 12, 30, tzinfo=UTC)
ALIASES = ("shop@othermail.example", "news@othermail.example")
#: Each alias may take 7 an hour, the user 10 across both: whichever window refuses a message, the
#: other windows must not keep its count.
LIMITS = MailLimits(alias_per_hour=7, user_per_hour=10)


def _raw(alias: str, n: int) -> bytes:
    return f"From: Jane <jane@example.net>\r\nTo: {alias}\r\nSubject: m{n}\r\n\r\nbody\r\n".encode()


@pytest.fixture
def url(migrated_url: str) -> Iterator[str]:
    _seed(migrated_url)
    yield migrated_url


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    with fresh_database("mariadb", migrated=True) as made:
        _seed(made)
        yield made


def _seed(url: str) -> None:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            user = User(email="owner@example.org")
            db.add(user)
            db.flush()
            home = Destination(user_id=user.id, email="home@real.example", verified_at=NOON)
            for address in ALIASES:
                alias = Alias(address=address, user_id=user.id)
                alias.destinations.append(home)
                db.add(alias)
            db.commit()
    finally:
        engine.dispose()


def test_concurrent_first_claims_never_exceed_a_limit_and_a_refused_message_counts_nowhere(url: str) -> None:
    threads, per_thread = 6, 5
    outcomes: list[Outcome] = []
    sent: list[int] = []
    engines = [make_engine(url) for _ in range(threads)]  # one engine each, as separate workers have

    def sends(n: int) -> Callable[[], None]:
        sender = MemorySender()
        directory = SqlDirectory(make_session_factory(engines[n]), clock=lambda: NOON, limits=LIMITS)
        forwarder = Forwarder(directory, sender, Policy(), lambda: NOON)

        def run() -> None:
            for m in range(per_thread):
                alias = ALIASES[(n + m) % 2]
                reports = forwarder.process(_raw(alias, m), Inbound(f"t{n}-m{m}", (alias,)))
                outcomes.extend(r.outcome for r in reports)
            sent.append(len(sender.sent))

        return run

    try:
        race([sends(n) for n in range(threads)], within=120)
    finally:
        for each in engines:
            each.dispose()
    assert outcomes.count(Outcome.FORWARDED) == sum(sent) == 10
    assert outcomes.count(Outcome.DROPPED_RATE_LIMITED) == threads * per_thread - 10
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            hour = window_start(NOON, "hour")
            hits = {h.key: h.count for h in db.scalars(select(RateLimitHit).where(RateLimitHit.window_start == hour))}
            assert hits["mail:user:1:hour"] == 10
            assert hits["mail:alias:1:hour"] + hits["mail:alias:2:hour"] == 10  # the refused counted nowhere
            assert max(hits["mail:alias:1:hour"], hits["mail:alias:2:hour"]) <= 7
            assert db.scalar(select(func.sum(Alias.message_count))) == 10
            # each alias counted in its own window what it forwarded, no more (a double count, or
            # one counted on the wrong alias, shows here even when the sums agree)
            for alias in db.scalars(select(Alias)):
                assert hits[f"mail:alias:{alias.id}:hour"] == alias.message_count == alias.forwarded_count
            assert db.scalar(select(func.sum(Alias.forwarded_count))) == 10
            assert db.scalar(select(func.sum(Alias.blocked_count))) == threads * per_thread - 10
            rows = dict(db.execute(select(Delivery.outcome, func.count()).group_by(Delivery.outcome)).all())
            assert rows == {"forwarded": 10, "dropped-rate-limited": threads * per_thread - 10}
    finally:
        engine.dispose()


def test_the_first_message_of_a_window_opens_it_and_a_redelivery_counts_nothing_again(url: str) -> None:
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        sender = MemorySender()
        forwarder = Forwarder(SqlDirectory(sessions, clock=lambda: NOON, limits=LIMITS), sender, Policy(), lambda: NOON)
        for _ in range(2):  # the second time: a redelivery
            reports = forwarder.process(_raw(ALIASES[0], 1), Inbound("m1", (ALIASES[0],)))
            assert [r.outcome for r in reports] == [Outcome.FORWARDED]
        assert len(sender.sent) == 1
        with sessions() as db:
            hits = {(h.key, h.window_start): h.count for h in db.scalars(select(RateLimitHit))}
            hour = window_start(NOON, "hour")
            assert hits == {("mail:alias:1:hour", hour): 1, ("mail:user:1:hour", hour): 1}
            alias = db.get(Alias, 1)
            assert alias is not None and (alias.message_count, alias.forwarded_count) == (1, 1)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_window_opened_by_another_claim_meanwhile_is_seen_when_the_claim_starts_over() -> None:
    """PostgreSQL: another claim inserts the window row after this claim's statement took its
    snapshot (held here in an open transaction until the claim waits on it). The claim neither saw
    the row nor could insert it; it must not go through uncounted there: it starts over, sees the
    row at its limit of 1, and the message is refused."""
    with fresh_database("postgresql", migrated=True) as database:
        engine = make_engine(database)
        other = engine.connect()
        try:
            _alias_and_user(engine)
            hour = window_start(NOON, "hour")
            other.execute(insert(RateLimitHit).values(key="mail:alias:1:hour", window_start=hour, count=1))
            sender = MemorySender()
            directory = SqlDirectory(
                make_session_factory(engine), clock=lambda: NOON, limits=MailLimits(alias_per_hour=1)
            )
            forwarder = Forwarder(directory, sender, Policy(), lambda: NOON)
            reports: list[Outcome] = []
            claim = threading.Thread(
                target=lambda: reports.extend(
                    r.outcome for r in forwarder.process(_raw(ALIASES[0], 1), Inbound("m1", (ALIASES[0],)))
                )
            )
            claim.start()
            _until_a_lock_is_awaited(engine)
            other.commit()  # the other claim's window: 1 of 1
            claim.join(30)
            assert reports == [Outcome.DROPPED_RATE_LIMITED]
            assert sender.sent == []
            with make_session_factory(engine)() as db:
                assert db.scalar(select(RateLimitHit.count).where(RateLimitHit.key == "mail:alias:1:hour")) == 1
                alias = db.get(Alias, 1)
                assert alias is not None and (alias.message_count, alias.blocked_count) == (0, 1)
        finally:
            other.close()
            engine.dispose()


def _alias_and_user(engine: Engine) -> None:
    with make_session_factory(engine)() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIASES[0], user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email="home@real.example", verified_at=NOON))
        db.add(alias)
        db.commit()


def _until_a_lock_is_awaited(engine: Engine) -> None:
    """Return once a session of this database waits for a lock (the claim, on the other's row)."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    for _ in range(1000):
        with engine.connect() as connection:
            if connection.exec_driver_sql(query).scalar():
                return
        time.sleep(0.01)
    raise AssertionError("the claim never waited for the other's row")


def test_a_database_without_the_first_claim_procedure_says_how_to_make_it_and_writes_nothing(mariadb_url: str) -> None:
    """MariaDB: a dump restored without ``--routines`` has the tables and the revision but not the
    procedure. The message is left for a retry (DatabaseUnavailable is retryable) with the fix in
    the reason; ``othermail db upgrade`` (migrations.upgrade) makes the procedure again."""
    engine = make_engine(mariadb_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP PROCEDURE othermail_first_claim")
        directory = SqlDirectory(make_session_factory(engine), clock=lambda: NOON, limits=LIMITS)
        forwarder = Forwarder(directory, MemorySender(), Policy(), lambda: NOON)
        with pytest.raises(
            DatabaseUnavailable, match="no stored procedure othermail_first_claim.*othermail db upgrade"
        ):
            forwarder.process(_raw(ALIASES[0], 1), Inbound("m1", (ALIASES[0],)))
        with make_session_factory(engine)() as db:
            assert db.scalars(select(Delivery)).all() == []
            assert db.scalars(select(RateLimitHit)).all() == []
        upgrade(mariadb_url)
        assert [r.outcome for r in forwarder.process(_raw(ALIASES[0], 1), Inbound("m1", (ALIASES[0],)))] == [
            Outcome.FORWARDED
        ]
    finally:
        engine.dispose()
