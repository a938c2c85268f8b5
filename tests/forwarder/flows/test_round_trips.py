"""How many database transactions one message costs the pipeline (issue 13), on every backend.

A forwarded message is one transaction to resolve, decide, claim and count, and one to record what
the sends did; a dropped one is a single transaction; a redelivery of a forwarded one is a single
transaction that finds every copy done.

On PostgreSQL a step that is one statement runs on an autocommit connection, and the transactions
counted are the BEGINs psycopg sends (SQLAlchemy's ``begin`` event fires there too, where nothing is
sent; tests/support/round_trips.py): the claim of a message's first copies is one statement, and a
redelivery's read finds every copy done and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, event

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.flows.forward import Forwarder, Inbound
from models import Alias, Destination, User, make_engine, make_session_factory, utcnow
from tests.support.round_trips import psycopg_commands

SHOP = "shop-7hq2@othermail.example"
OFF = "off-3kd9@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


@dataclass
class Box:
    engine: Engine
    forwarder: Forwarder
    sender: MemorySender

    def transactions(self, message_id: str, recipient: str) -> tuple[int, list[Outcome]]:
        """The transactions begun while ``message_id`` is processed for ``recipient``, and its outcomes."""
        begun = []

        def count(connection: Any) -> None:
            begun.append(connection)

        if self.engine.dialect.name == "postgresql":
            sent: list[str] = []
            with psycopg_commands(sent):
                reports = self.forwarder.process(RAW, Inbound(message_id, (recipient,)))
            return sent.count("BEGIN"), [r.outcome for r in reports]
        event.listen(self.engine, "begin", count)
        try:
            reports = self.forwarder.process(RAW, Inbound(message_id, (recipient,)))
        finally:
            event.remove(self.engine, "begin", count)
        return len(begun), [r.outcome for r in reports]

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"


@pytest.fixture
def box(migrated_url: str) -> Iterator[Box]:
    engine = make_engine(migrated_url)
    sessions = make_session_factory(engine)
    with sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        home = Destination(user_id=user.id, email="home@real.example", verified_at=utcnow())
        work = Destination(user_id=user.id, email="work@real.example", verified_at=utcnow())
        shop = Alias(address=SHOP, user_id=user.id)
        shop.destinations.extend([home, work])
        off = Alias(address=OFF, user_id=user.id, enabled=False)
        off.destinations.append(home)
        db.add_all([shop, off])
        db.commit()
    sender = MemorySender()
    forwarder = Forwarder(SqlDirectory(sessions), sender, Policy(), utcnow)
    forwarder.process(RAW, Inbound("warm-up", (SHOP,)))  # reads the user domains, cached from then on
    sender.sent.clear()
    try:
        yield Box(engine, forwarder, sender)
    finally:
        engine.dispose()


def test_a_message_forwarded_to_two_destinations_costs_two_transactions(box: Box) -> None:
    settle_only = 1 if box.postgresql else 2  # PostgreSQL: the settle of two copies
    assert box.transactions("m1", SHOP) == (settle_only, [Outcome.FORWARDED, Outcome.FORWARDED])
    assert sorted(m.recipient for m in box.sender.sent) == ["home@real.example", "work@real.example"]


def test_a_dropped_message_costs_one_transaction(box: Box) -> None:
    assert box.transactions("m1", OFF) == (1, [Outcome.DROPPED_DISABLED])
    assert box.sender.sent == []


def test_a_redelivered_forwarded_message_costs_one_transaction_and_sends_nothing(box: Box) -> None:
    box.transactions("m1", SHOP)
    box.sender.sent.clear()
    read_only = 0 if box.postgresql else 1
    assert box.transactions("m1", SHOP) == (read_only, [Outcome.FORWARDED, Outcome.FORWARDED])
    assert box.sender.sent == []
