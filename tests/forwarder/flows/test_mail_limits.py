"""Hourly and daily limits per alias and per user: the windows, and the counting at claim time on
every backend, with real concurrency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from forwarder.adapters.sql.directory import Claim, ClaimState, DeliveryKey, MessageMeta, SqlDirectory
from forwarder.core import Outcome
from forwarder.flows.mail_limits import MailLimits, Window, window_start
from models import Alias, Delivery, Destination, RateLimitHit, User, make_engine, make_session_factory
from tests.support.races import race

NOON = datetime(2030, 1, 2, 12, 30, tzinfo=UTC)
NOON_EPOCH = int(NOON.timestamp())


# ---------------------------------------------------------------- the windows


def test_windows_are_the_fixed_utc_hour_and_day() -> None:
    assert window_start(NOON, "hour") == int(datetime(2030, 1, 2, 12, tzinfo=UTC).timestamp())
    assert window_start(NOON, "day") == int(datetime(2030, 1, 2, tzinfo=UTC).timestamp())
    assert window_start(NOON.replace(tzinfo=None), "hour") == window_start(NOON, "hour")  # naive is UTC
    paris = NOON.astimezone(ZoneInfo("Europe/Paris"))  # 13:30 there, same instant
    assert window_start(paris, "day") == window_start(NOON, "day")
    last_second = datetime(2030, 1, 2, 23, 59, 59, tzinfo=UTC)
    assert window_start(last_second, "day") == window_start(NOON, "day")
    assert window_start(last_second + timedelta(seconds=1), "day") == window_start(NOON, "day") + 86400


def test_every_limit_has_its_own_key_and_zero_is_no_limit() -> None:
    midnight = datetime(2030, 1, 2, tzinfo=UTC)
    windows = MailLimits(alias_per_hour=100, alias_per_day=500, user_per_hour=200, user_per_day=1000).windows(
        12, 3, midnight
    )
    assert [(w.key, w.limit) for w in windows] == [
        ("mail:alias:12:hour", 100),
        ("mail:alias:12:day", 500),
        ("mail:user:3:hour", 200),
        ("mail:user:3:day", 1000),
    ]
    assert len({w.start for w in windows}) == 1  # at midnight the hour and the day start together: keys differ
    assert [w.key for w in MailLimits(alias_per_day=5, user_per_hour=7).windows(12, 3, NOON)] == [
        "mail:alias:12:day",
        "mail:user:3:hour",
    ]
    assert [w.key for w in MailLimits(alias_per_hour=1, user_per_day=1).windows(12, None, NOON)] == [
        "mail:alias:12:hour"
    ]  # an alias whose user was deleted has no user windows
    assert MailLimits().windows(12, 3, NOON) == () and not MailLimits().any
    with pytest.raises(ValueError, match="user_per_day must be 0"):
        MailLimits(user_per_day=-1)


def test_the_reason_names_the_limit_and_when_it_resets() -> None:
    hour = Window("alias", "hour", 100, 12, window_start(NOON, "hour"))
    assert hour.resets_at == datetime(2030, 1, 2, 13, tzinfo=UTC)
    assert hour.reason() == "the alias's limit of 100 messages an hour is reached; it resets at 13:00 UTC"
    day = Window("user", "day", 1, 3, window_start(NOON, "day"))
    assert day.resets_at == datetime(2030, 1, 3, tzinfo=UTC)
    assert day.reason() == (
        "the account's limit of 1 message a day across all its aliases is reached; it resets at 00:00 UTC"
    )


# ---------------------------------------------------------------- claims on every backend


class Box:
    """A migrated database with one user, two aliases (one and two verified destinations)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.now = NOON
        with self.sessions() as db:
            user = User(email="owner@example.org")
            db.add(user)
            db.flush()
            self.user_id = user.id
            shop = Alias(address="shop@othermail.example", user_id=user.id)
            news = Alias(address="news@othermail.example", user_id=user.id)
            home = Destination(user_id=user.id, email="home@real.example", verified_at=NOON)
            work = Destination(user_id=user.id, email="work@real.example", verified_at=NOON)
            shop.destinations.extend([home, work])
            news.destinations.append(home)
            db.add_all([shop, news])
            db.commit()
            self.shop, self.news, self.home, self.work = shop.id, news.id, home.id, work.id

    def directory(self, limits: MailLimits) -> SqlDirectory:
        return SqlDirectory(self.sessions, clock=lambda: self.now, limits=limits)

    def hits(self) -> dict[tuple[str, int], int]:
        with self.sessions() as db:
            return {(h.key, h.window_start): h.count for h in db.scalars(select(RateLimitHit))}

    def db(self) -> Session:
        return self.sessions()


@pytest.fixture
def box(migrated_url: str) -> Iterator[Box]:
    made = Box(migrated_url)
    yield made
    made.engine.dispose()


def claim(
    directory: SqlDirectory,
    message_id: str,
    alias: str = "shop@othermail.example",
    alias_id: int = 1,
    destination_id: int = 1,
) -> Claim:
    return directory.claim(DeliveryKey(message_id, alias, destination_id), alias_id, MessageMeta())


def test_the_alias_hourly_limit_counts_messages_not_destinations(box: Box) -> None:
    directory = box.directory(MailLimits(alias_per_hour=2))
    for message_id in ("m1", "m2"):  # two destinations each: still one message each
        assert claim(directory, message_id, alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
        assert claim(directory, message_id, alias_id=box.shop, destination_id=box.work).state is ClaimState.NEW
    over = claim(directory, "m3", alias_id=box.shop, destination_id=box.home)
    assert over.state is ClaimState.RATE_LIMITED and over.window is not None
    assert (over.window.scope, over.window.period, over.window.limit) == ("alias", "hour", 2)
    assert box.hits() == {(f"mail:alias:{box.shop}:hour", window_start(NOON, "hour")): 2}
    with box.db() as db:  # nothing of m3 was kept or counted
        assert db.scalar(select(func.count()).select_from(Delivery).where(Delivery.inbound_message_id == "m3")) == 0
        assert db.get(Alias, box.shop).message_count == 2  # type: ignore[union-attr]
    box.now = NOON + timedelta(minutes=30)  # 13:00: a new hour
    assert claim(directory, "m3", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    assert box.hits() == {
        (f"mail:alias:{box.shop}:hour", window_start(NOON, "hour")): 2,  # kept until the scheduled prune
        (f"mail:alias:{box.shop}:hour", window_start(box.now, "hour")): 1,
    }


def test_the_scheduled_prune_deletes_the_windows_of_past_days_only(box: Box) -> None:
    directory = box.directory(MailLimits(alias_per_hour=5, alias_per_day=5, user_per_day=5))
    box.now = datetime(2030, 1, 1, 23, 30, tzinfo=UTC)
    assert claim(directory, "m1", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    box.now = datetime(2030, 1, 2, 0, 10, tzinfo=UTC)
    assert claim(directory, "m2", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    with box.engine.connect() as connection:  # a window of the web app's own limits (web/ratelimit.py)
        connection.execute(insert(RateLimitHit).values(key="signin:192.0.2.1", window_start=0, count=1))
        connection.commit()
    assert len(box.hits()) == 7
    assert directory.prune_limit_windows() == 3  # yesterday's hour, alias day and user day
    today = {
        (f"mail:alias:{box.shop}:hour", window_start(box.now, "hour")): 1,
        (f"mail:alias:{box.shop}:day", window_start(box.now, "day")): 1,
        (f"mail:user:{box.user_id}:day", window_start(box.now, "day")): 1,
        ("signin:192.0.2.1", 0): 1,  # not the forwarder's
    }
    assert box.hits() == today
    assert directory.prune_limit_windows() == 0
    # the windows still counting were kept: the day's count goes on from 1
    assert claim(directory, "m3", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    assert box.hits()[(f"mail:alias:{box.shop}:day", window_start(box.now, "day"))] == 2


def test_the_user_limit_counts_all_its_aliases(box: Box) -> None:
    directory = box.directory(MailLimits(alias_per_hour=5, user_per_hour=3))
    assert claim(directory, "m1", "shop@othermail.example", box.shop, box.home).state is ClaimState.NEW
    assert claim(directory, "m2", "shop@othermail.example", box.shop, box.home).state is ClaimState.NEW
    assert claim(directory, "m3", "news@othermail.example", box.news, box.home).state is ClaimState.NEW
    over = claim(directory, "m4", "news@othermail.example", box.news, box.home)
    assert over.state is ClaimState.RATE_LIMITED and over.window is not None
    assert (over.window.scope, over.window.owner_id, over.window.limit) == ("user", box.user_id, 3)
    hour = window_start(NOON, "hour")
    assert box.hits() == {
        (f"mail:alias:{box.shop}:hour", hour): 2,
        (f"mail:alias:{box.news}:hour", hour): 1,
        (f"mail:user:{box.user_id}:hour", hour): 3,
    }  # m4 counted nowhere


def test_the_day_limit_holds_until_midnight_utc(box: Box) -> None:
    directory = box.directory(MailLimits(alias_per_day=2))
    box.now = datetime(2030, 1, 2, 0, 0, tzinfo=UTC)
    assert claim(directory, "m1", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    box.now = datetime(2030, 1, 2, 15, 0, tzinfo=UTC)
    assert claim(directory, "m2", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    box.now = datetime(2030, 1, 2, 23, 59, 59, tzinfo=UTC)
    over = claim(directory, "m3", alias_id=box.shop, destination_id=box.home)
    assert over.state is ClaimState.RATE_LIMITED and over.window is not None
    assert over.window.resets_at == datetime(2030, 1, 3, tzinfo=UTC)
    box.now = datetime(2030, 1, 3, 0, 0, tzinfo=UTC)
    assert claim(directory, "m3", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW


def test_a_rate_limited_message_is_never_sent_on_a_redelivery(box: Box) -> None:
    directory = box.directory(MailLimits(alias_per_hour=1))
    assert claim(directory, "m1", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    assert claim(directory, "m2", alias_id=box.shop, destination_id=box.home).state is ClaimState.RATE_LIMITED
    directory.record(
        DeliveryKey("m2", "shop@othermail.example"), box.shop, MessageMeta(), Outcome.DROPPED_RATE_LIMITED, "over"
    )  # what the pipeline does
    box.now = NOON + timedelta(hours=1)  # a retry after the window reset
    again = claim(directory, "m2", alias_id=box.shop, destination_id=box.work)
    assert (again.state, again.outcome, again.window) == (ClaimState.RATE_LIMITED, "dropped-rate-limited", None)
    assert claim(directory, "m3", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW


def test_without_limits_nothing_is_counted_in_windows(box: Box) -> None:
    directory = SqlDirectory(box.sessions)  # the default: no limits
    for n in range(3):
        assert claim(directory, f"m{n}", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    assert box.hits() == {}


def test_the_message_limit_comes_first_and_is_not_counted_in_windows(box: Box) -> None:
    with box.db() as db:
        db.get(Alias, box.shop).max_messages = 1  # type: ignore[union-attr]
        db.commit()
    directory = box.directory(MailLimits(alias_per_hour=10))
    assert claim(directory, "m1", alias_id=box.shop, destination_id=box.home).state is ClaimState.NEW
    assert claim(directory, "m2", alias_id=box.shop, destination_id=box.home).state is ClaimState.LIMIT
    assert box.hits() == {(f"mail:alias:{box.shop}:hour", window_start(NOON, "hour")): 1}


# ---------------------------------------------------------------- real concurrency


@pytest.mark.parametrize(
    "limits, count_key",
    [
        (MailLimits(alias_per_hour=10), "mail:alias:{shop}:hour"),
        (MailLimits(user_per_day=10), "mail:user:{user}:day"),
    ],
)
def test_concurrent_claims_never_exceed_the_limit(box: Box, limits: MailLimits, count_key: str) -> None:
    """8 threads, each with its own engine (as separate Lambda invocations have), race on a new
    window: exactly 10 messages get through, across both aliases for the user's limit."""
    threads, per_thread = 8, 4
    results: list[ClaimState] = []
    engines = [make_engine(box.url) for _ in range(threads)]

    def claims(n: int) -> Callable[[], None]:
        directory = SqlDirectory(make_session_factory(engines[n]), clock=lambda: NOON, limits=limits)
        alias, alias_id = (
            ("shop@othermail.example", box.shop)
            if n % 2 or limits.alias_per_hour
            else ("news@othermail.example", box.news)
        )

        def run() -> None:
            for m in range(per_thread):
                state = claim(directory, f"t{n}-m{m}", alias, alias_id, box.home).state
                if state is ClaimState.RATE_LIMITED:  # what the pipeline does: one blocked row
                    directory.record(
                        DeliveryKey(f"t{n}-m{m}", alias),
                        alias_id,
                        MessageMeta(),
                        Outcome.DROPPED_RATE_LIMITED,
                        "over the limit",
                    )
                results.append(state)

        return run

    try:
        race([claims(n) for n in range(threads)], within=120)
    finally:
        for engine in engines:
            engine.dispose()
    assert results.count(ClaimState.NEW) == 10
    assert results.count(ClaimState.RATE_LIMITED) == threads * per_thread - 10
    key = count_key.format(shop=box.shop, user=box.user_id)
    assert box.hits() == {(key, window_start(NOON, "hour" if key.endswith("hour") else "day")): 10}
    with box.db() as db:
        outcomes = dict(db.execute(select(Delivery.outcome, func.count()).group_by(Delivery.outcome)).all())
        assert outcomes == {"pending": 10, "dropped-rate-limited": threads * per_thread - 10}
        assert db.scalar(select(func.sum(Alias.message_count))) == 10
        assert db.scalar(select(func.sum(Alias.blocked_count))) == threads * per_thread - 10
