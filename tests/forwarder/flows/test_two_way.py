"""Two-way aliases end to end on the runtime: forward, reply, the sender's answer; blocks; unsubscribe."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from pathlib import Path

import pytest

from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, Verdicts
from forwarder.flows.forward import Inbound
from forwarder.runtime import Runtime
from models import Alias, Contact, SenderRule
from tests.support.factories import two_way_runtime

ALIAS = "shop-7hq2@othermail.example"
OWNER = "me@real.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")
PUBLIC = "https://mail.othermail.example"


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return two_way_runtime(tmp_path, ALIAS, OWNER, public_url=PUBLIC)


def outbox(runtime: Runtime) -> MemorySender:
    sender = runtime.sender
    assert isinstance(sender, MemorySender)
    return sender


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


FROM_JANE = (
    b"From: Jane Shop <jane@shop.example>\r\nTo: " + ALIAS.encode() + b"\r\nCc: Bob <bob@shop.example>\r\n"
    b"Subject: your order\r\nMessage-ID: <order-1@shop.example>\r\n"
    b"List-Unsubscribe: <https://shop.example/unsub>\r\n\r\nHello\r\n"
)


def test_forward_reply_and_answer_stay_in_one_thread_and_never_show_real_addresses(runtime: Runtime) -> None:
    [forwarded] = runtime.forwarder.process(FROM_JANE, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))
    assert forwarded.outcome is Outcome.FORWARDED
    [copy] = outbox(runtime).sent
    header = copy.raw.split(b"\r\n\r\n", 1)[0]
    assert b"jane@shop.example" not in header and b"bob@shop.example" not in header
    message = parsed(copy.raw)
    jane_reverse = message["From"].addresses[0].addr_spec
    bob_reverse = [a.addr_spec for a in message["Cc"].addresses][0]
    assert jane_reverse.endswith("@othermail.example") and bob_reverse.endswith("@othermail.example")
    assert "jane at shop.example" in message["From"].addresses[0].display_name
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"<{PUBLIC}/u/" in message["List-Unsubscribe"] and "mailto:unsubscribe+" in message["List-Unsubscribe"]
    assert "shop.example/unsub" in message["X-Original-List-Unsubscribe"]

    # the owner presses Reply-All in their mailbox: the answer names the copy's provider id
    reply = (
        f"From: Me <{OWNER}>\r\nTo: {jane_reverse}\r\nCc: {bob_reverse}\r\nSubject: Re: your order\r\n"
        f"Message-ID: <mine-1@real.example>\r\nIn-Reply-To: <{copy.message_id}@email.amazonses.com>\r\n\r\nThanks!\r\n"
    ).encode()
    # the owner's server delivers the Reply-All once to each reverse address
    replied = runtime.forwarder.process(reply, Inbound("in-2", (jane_reverse, bob_reverse), PASS, OWNER))
    assert [r.outcome for r in replied] == [Outcome.REPLIED, Outcome.REPLIED]
    answers = outbox(runtime).sent[1:]
    assert sorted(m.recipient for m in answers) == ["bob@shop.example", "jane@shop.example"]
    for answer in answers:
        assert answer.sender == ALIAS and OWNER.encode() not in answer.raw
        assert parsed(answer.raw)["In-Reply-To"] == "<order-1@shop.example>"  # Jane's own id: one thread

    # Jane answers the reply: her In-Reply-To names the id SES gave her copy; the owner sees their own id
    [to_jane] = [m for m in answers if m.recipient == "jane@shop.example"]
    answer = FROM_JANE.replace(
        b"Message-ID: <order-1@shop.example>", f"In-Reply-To: <{to_jane.message_id}@email.amazonses.com>".encode()
    )
    runtime.forwarder.process(answer, Inbound("in-3", (ALIAS,), PASS, "jane@shop.example"))
    last = parsed(outbox(runtime).sent[-1].raw)
    assert last["From"].addresses[0].addr_spec == jane_reverse  # the same contact, the same reverse address
    assert last["In-Reply-To"] == "<mine-1@real.example>"  # the owner's own reply: one thread on their side
    with runtime.sessions() as db:
        assert db.query(Contact).count() == 2


def test_a_blocked_sender_is_dropped_before_anything_is_counted(runtime: Runtime) -> None:
    with runtime.sessions() as db:
        alias = db.query(Alias).filter(Alias.address == ALIAS).one()
        db.add(
            SenderRule(user_id=alias.user_id, alias_id=alias.id, action="block", kind="domain", value="shop.example")
        )
        db.commit()
    [report] = runtime.forwarder.process(FROM_JANE, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))
    assert report.outcome is Outcome.DROPPED_BLOCKED and outbox(runtime).sent == []
    with runtime.sessions() as db:
        assert db.query(Alias).filter(Alias.address == ALIAS).one().message_count == 0


def test_the_mailto_unsubscribe_does_the_owners_action(runtime: Runtime) -> None:
    runtime.forwarder.process(FROM_JANE, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))
    target = parsed(outbox(runtime).sent[0].raw)["List-Unsubscribe"].split("mailto:")[1].rstrip(">")
    [report] = runtime.forwarder.process(b"Subject: unsubscribe\r\n\r\n", Inbound("u-1", (target,), PASS, None))
    assert report.outcome is Outcome.DROPPED_BLOCKED and "disable-alias" in report.reason
    with runtime.sessions() as db:
        assert db.query(Alias).filter(Alias.address == ALIAS).one().enabled is False
    forged = target.replace("unsubscribe+", "unsubscribe+9")
    [refused] = runtime.forwarder.process(b"Subject: x\r\n\r\n", Inbound("u-2", (forged,), PASS, None))
    assert refused.outcome is Outcome.DROPPED_UNKNOWN_ALIAS


def test_two_way_off_forwards_one_way(runtime: Runtime) -> None:
    one_way = Runtime.build(replace(runtime.settings, two_way=False), sender=MemorySender(), engine=runtime.engine)
    one_way.forwarder.process(FROM_JANE, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))
    sender = one_way.sender
    assert isinstance(sender, MemorySender)
    assert parsed(sender.sent[0].raw)["Reply-To"].addresses[0].addr_spec == "jane@shop.example"


def test_a_two_way_forward_from_a_known_sender_costs_three_transactions(runtime: Runtime) -> None:
    """The contacts (rules and reverse addresses); the claim; the outcomes with the thread links: one
    transaction each, however many people the message names (SQLAlchemy "begin" events)."""
    from sqlalchemy import event

    runtime.forwarder.process(FROM_JANE, Inbound("in-1", (ALIAS,), PASS, "jane@shop.example"))  # makes the contacts
    begun: list[object] = []

    def count(connection: object) -> None:
        begun.append(connection)

    event.listen(runtime.engine, "begin", count)
    try:
        second = FROM_JANE.replace(b"<order-1@shop.example>", b"<order-2@shop.example>")
        [report] = runtime.forwarder.process(second, Inbound("in-2", (ALIAS,), PASS, "jane@shop.example"))
    finally:
        event.remove(runtime.engine, "begin", count)
    assert report.outcome is Outcome.FORWARDED
    assert len(begun) == 3
