"""A settle that comes after its claim was taken over (issue 15 review, finding 2).

Worker A claims a copy, stalls past the claim timeout; worker B takes the claim over, sends and
settles. When A finally settles, the row is no longer A's: A must neither count a second forward
nor overwrite what B recorded (its provider message id).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from forwarder.adapters.sql.directory import ClaimState, DeliveryKey, Finished, MessageMeta, SqlDirectory
from forwarder.core import Decision, Outcome
from models import Alias, Delivery, Destination, User, make_engine, make_session_factory

ALIAS = "shop-7hq2@othermail.example"
START = datetime(2030, 1, 2, 11, 30, tzinfo=UTC)
TIMEOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class _Plan:
    decision: Decision


FORWARD = _Plan(Decision(Outcome.FORWARDED, "forwarded"))


@pytest.fixture
def directory(migrated_url: str) -> Iterator[tuple[SqlDirectory, list[datetime]]]:
    engine = make_engine(migrated_url)
    sessions = make_session_factory(engine)
    with sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email="home@real.example", verified_at=START))
        db.add(alias)
        db.commit()
    now = [START]
    yield SqlDirectory(sessions, TIMEOUT, clock=lambda: now[0]), now
    engine.dispose()


def _row(directory: SqlDirectory) -> tuple[int, str | None, str, int]:
    sessions = make_session_factory(directory._engine)
    with sessions() as db:
        delivery = db.execute(select(Delivery).where(Delivery.inbound_message_id == "m1")).scalar_one()
        alias = db.execute(select(Alias).where(Alias.address == ALIAS)).scalar_one()
        return alias.forwarded_count, delivery.provider_message_id, delivery.outcome, delivery.attempts


@pytest.mark.parametrize("a_first", [True, False], ids=["a-first-claim", "a-takeover"])
def test_a_late_settle_after_a_stale_takeover_neither_counts_nor_overwrites(
    directory: tuple[SqlDirectory, list[datetime]], a_first: bool
) -> None:
    sql, now = directory
    meta = MessageMeta("jane@example.net", "hi", 100, START)
    if not a_first:  # A itself takes over a copy freed for a retry (its settle reads the row)
        opened = sql.begin("m1", ALIAS, meta, lambda _r: FORWARD)
        target, _claim = opened.claims[0]
        sql.release(DeliveryKey("m1", ALIAS, target.destination_id), "try again")
    a = sql.begin("m1", ALIAS, meta, lambda _r: FORWARD)
    target, claim_a = a.claims[0]
    assert claim_a.state is (ClaimState.NEW if a_first else ClaimState.RESUMED)
    assert a.first is a_first
    key = DeliveryKey("m1", ALIAS, target.destination_id)
    alias_id = a.resolved.alias_id if a.resolved else None

    now[0] += TIMEOUT + timedelta(seconds=1)  # A stalls past the claim timeout
    b = sql.begin("m1", ALIAS, meta, lambda _r: FORWARD)
    assert b.claims[0][1].state is ClaimState.RESUMED
    sql.settle([Finished(key, Outcome.FORWARDED, "forwarded", 100, "provider-b")])
    assert _row(sql)[:3] == (1, "provider-b", "forwarded")

    late = {"alias_id": alias_id, "first": True} if a.first else {}
    sql.settle([Finished(key, Outcome.FORWARDED, "forwarded", 100, "provider-a", **late)])
    forwarded_count, provider_id, outcome, _attempts = _row(sql)
    assert (forwarded_count, provider_id, outcome) == (1, "provider-b", "forwarded")


def test_a_late_failure_does_not_undo_the_forward_of_the_takeover(
    directory: tuple[SqlDirectory, list[datetime]],
) -> None:
    sql, now = directory
    meta = MessageMeta("jane@example.net", "hi", 100, START)
    a = sql.begin("m1", ALIAS, meta, lambda _r: FORWARD)
    key = DeliveryKey("m1", ALIAS, a.claims[0][0].destination_id)
    now[0] += TIMEOUT + timedelta(seconds=1)
    sql.begin("m1", ALIAS, meta, lambda _r: FORWARD)
    sql.settle([Finished(key, Outcome.FORWARDED, "forwarded", 100, "provider-b")])
    assert a.resolved is not None
    sql.settle([Finished(key, Outcome.FAILED_REJECTED, "rejected", alias_id=a.resolved.alias_id, first=True)])
    assert _row(sql)[:3] == (1, "provider-b", "forwarded")
