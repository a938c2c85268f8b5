"""forwarder/adapters/sql/limit_windows.py: one upsert counts a message in all its windows, opening
the missing ones, and reports the first window it took over its limit; the same where the server
has no RETURNING (MySQL), which reads the counts back in the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select

from forwarder.adapters.sql import limit_windows
from forwarder.flows.mail_limits import MailLimits
from models import RateLimitHit, make_engine

NOON = datetime(2030, 1, 2, 12, 30, tzinfo=UTC)
LIMITS = MailLimits(alias_per_hour=2, alias_per_day=5, user_per_hour=3)


@pytest.fixture(params=[True, False], ids=["returning", "read-back"])
def engine(migrated_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    made = make_engine(migrated_url)
    with made.connect():
        pass  # the dialect learns the server's version (MariaDB: RETURNING from 10.5) on first connect
    if not request.param:
        made.dialect.insert_returning = False
    yield made
    made.dispose()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {key: count for key, count in connection.execute(select(RateLimitHit.key, RateLimitHit.count))}


def test_one_statement_counts_every_window_and_opens_the_missing_ones(engine: Engine) -> None:
    statements: list[str] = []
    for alias_id in (7, 7, 8):
        with engine.connect() as connection:
            before = len(statements)
            event.listen(connection, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
            assert limit_windows.count(connection, LIMITS, alias_id, 1, NOON) is None
            connection.commit()
            assert len(statements) - before == (1 if engine.dialect.insert_returning else 2)
    assert _counts(engine) == {
        "mail:alias:7:hour": 2,
        "mail:alias:7:day": 2,
        "mail:alias:8:hour": 1,
        "mail:alias:8:day": 1,
        "mail:user:1:hour": 3,
    }


def test_the_first_window_over_its_limit_is_reported_and_a_rollback_leaves_no_count(engine: Engine) -> None:
    for _ in range(2):
        with engine.connect() as connection:
            assert limit_windows.count(connection, LIMITS, 7, 1, NOON) is None
            connection.commit()
    with engine.connect() as connection:
        full = limit_windows.count(connection, LIMITS, 7, 1, NOON)
        assert full is not None and (full.scope, full.period, full.limit) == ("alias", "hour", 2)
        connection.rollback()  # what the claim does
    assert _counts(engine) == {"mail:alias:7:hour": 2, "mail:alias:7:day": 2, "mail:user:1:hour": 2}
    with engine.connect() as connection:  # another alias of the user: the user's hour is next to fill
        assert limit_windows.count(connection, LIMITS, 8, 1, NOON) is None
        connection.commit()
    with engine.connect() as connection:
        full = limit_windows.count(connection, LIMITS, 9, 1, NOON)
        assert full is not None and (full.scope, full.period, full.limit) == ("user", "hour", 3)
        connection.rollback()


def test_without_limits_nothing_is_counted(engine: Engine) -> None:
    with engine.connect() as connection:
        assert limit_windows.count(connection, MailLimits(), 7, 1, NOON) is None
    assert _counts(engine) == {}
