"""A refused sender's message counts one blocked message however often it is delivered (issue 15):
the blocked counts (the alias's and the known sender's contact's) are made with the message's record,
in the transaction whose insert makes a redelivery find the message recorded, not before it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, Verdicts
from forwarder.flows.forward import Inbound
from forwarder.runtime import Runtime
from models import Alias, Contact, Delivery, SenderRule, make_session_factory
from tests.support.factories import two_way_runtime

ALIAS = "shop-7hq2@othermail.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")
RAW = (
    f"From: Jane <jane@shop.example>\r\nTo: {ALIAS}\r\nSubject: sale\r\n"
    "Message-ID: <sale-1@shop.example>\r\n\r\nBuy now.\r\n"
).encode()


@pytest.fixture
def runtime(migrated_url: str, tmp_path: Path) -> Iterator[Runtime]:
    made = two_way_runtime(tmp_path, ALIAS, "me@real.example", database_url=migrated_url)
    with made.sessions() as db:
        alias = db.scalars(select(Alias).where(Alias.address == ALIAS)).one()
        db.add(
            SenderRule(user_id=alias.user_id, alias_id=alias.id, action="block", kind="domain", value="shop.example")
        )
        db.commit()
        alias_id = alias.id
    made.contacts.create(alias_id, "othermail.example", "jane@shop.example")  # a known sender
    yield made
    made.close()


def _counts(runtime: Runtime) -> tuple[int, int, int]:
    with make_session_factory(runtime.engine)() as db:
        alias = db.scalars(select(Alias.blocked_count)).one()
        contact = db.scalars(select(Contact.blocked_count)).one()
        rows = len(db.scalars(select(Delivery.id).where(Delivery.inbound_message_id == "in-1")).all())
    return alias, contact, rows


def test_a_redelivered_refused_message_counts_one_blocked_message(runtime: Runtime) -> None:
    for delivery in range(3):  # SES retries, a worker's event seen twice
        [report] = runtime.forwarder.process(RAW, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))
        assert report.outcome is Outcome.DROPPED_BLOCKED
        assert report.duplicate is (delivery > 0)
    assert _counts(runtime) == (1, 1, 1)
    sender = runtime.sender
    assert isinstance(sender, MemorySender) and sender.sent == []
    # another message from the same sender is another blocked message
    runtime.forwarder.process(RAW, Inbound("in-2", (ALIAS,), PASS, "jane@shop.example"))
    assert _counts(runtime)[:2] == (2, 2)
