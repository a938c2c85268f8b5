"""The reply flow end to end on the runtime: mail to a reverse address leaves from the alias."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, Verdicts
from forwarder.flows.forward import Inbound
from forwarder.ports import ContactRef
from forwarder.runtime import Runtime
from models import Alias
from tests.support.factories import two_way_runtime

ALIAS = "shop-7hq2@othermail.example"
OWNER = "me@real.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return two_way_runtime(tmp_path, ALIAS, OWNER, display_name="Shopping")


def sent(runtime: Runtime) -> MemorySender:
    sender = runtime.sender
    assert isinstance(sender, MemorySender)
    return sender


def contact(runtime: Runtime, address: str, name: str = "") -> ContactRef:
    with runtime.sessions() as db:
        alias_id = db.query(Alias.id).filter(Alias.address == ALIAS).scalar()
    return runtime.contacts.create(alias_id, "othermail.example", address, name)


def reply_to(*to: str, cc: tuple[str, ...] = (), sender: str = OWNER, extra: str = "") -> bytes:
    head = f"From: Me <{sender}>\r\nTo: {', '.join(to)}\r\n"
    if cc:
        head += f"Cc: {', '.join(cc)}\r\n"
    head += (
        "Subject: Re: your order\r\nMessage-ID: <mine-1@real.example>\r\n"
        "Received: from laptop.real.example by smtp.real.example\r\nX-Originating-IP: [203.0.113.9]\r\n"
        f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    body = f"Thanks!\r\n\r\nOn Monday, Me <{sender}> wrote:\r\n> my address is {sender.upper()}\r\n"
    return (head + body).encode()


def process(runtime: Runtime, raw: bytes, recipient: str, verdicts: Verdicts = PASS, message_id: str = "in-1"):
    inbound = Inbound(message_id, (recipient,), verdicts, mail_from=OWNER)
    return runtime.forwarder.process(raw, inbound)


def test_a_reply_leaves_from_the_alias_to_the_contact_without_the_owners_address(runtime: Runtime) -> None:
    jane = contact(runtime, "Jane@Shop.example", "Jane Shop")
    [report] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert report.outcome is Outcome.REPLIED and report.alias_id == jane.alias_id
    [copy] = sent(runtime).sent
    assert copy.sender == ALIAS and copy.recipient == "jane@shop.example"
    assert OWNER.encode() not in copy.raw.lower() and b"203.0.113.9" not in copy.raw
    parsed = email.message_from_bytes(copy.raw, policy=email.policy.default)
    assert parsed["From"].addresses[0].addr_spec == ALIAS and parsed["From"].addresses[0].display_name == "Shopping"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["jane@shop.example"]
    assert ALIAS in parsed.get_content()


def test_a_redelivered_reply_sends_nothing_twice(runtime: Runtime) -> None:
    jane = contact(runtime, "jane@shop.example")
    process(runtime, reply_to(jane.reverse), jane.reverse)
    [again] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert again.duplicate and len(sent(runtime).sent) == 1
    [summary] = runtime.contacts.contacts_of(jane.alias_id, "othermail.example")
    assert summary.replied_count == 1  # counted once, as the reply was sent once


def test_reply_all_reaches_every_contact_of_the_alias_and_reports_the_others(runtime: Runtime) -> None:
    jane, bob = contact(runtime, "jane@shop.example"), contact(runtime, "bob@shop.example")
    raw = reply_to(jane.reverse, cc=(bob.reverse, "friend@elsewhere.example"))
    [report] = process(runtime, raw, jane.reverse)
    assert report.outcome is Outcome.REPLIED and "1 other recipient" in report.reason
    assert sorted(m.recipient for m in sent(runtime).sent) == ["bob@shop.example", "jane@shop.example"]


@pytest.mark.parametrize(
    ("verdicts", "sender"),
    [
        (Verdicts(spf="PASS", dkim="PASS", dmarc="FAIL"), OWNER),  # a forged owner
        (Verdicts(spf="FAIL", dkim="FAIL", dmarc="GRAY"), OWNER),  # no DMARC and no SPF pass
        (PASS, "stranger@evil.example"),  # authenticated, but not a destination of the alias
    ],
)
def test_spoofed_or_foreign_mail_to_a_reverse_address_is_refused_and_never_relayed(
    runtime: Runtime, verdicts: Verdicts, sender: str
) -> None:
    jane = contact(runtime, "jane@shop.example")
    [report] = process(runtime, reply_to(jane.reverse, sender=sender), jane.reverse, verdicts)
    assert report.outcome is Outcome.DROPPED_REPLY_REFUSED and report.alias_id == jane.alias_id
    # nothing reaches the contact; the alias's owner gets one notice (not the sender)
    [notice] = sent(runtime).sent
    assert notice.recipient == OWNER and b"X-Othermail-Notice: not-forwarded" in notice.raw
    text = " ".join(email.message_from_bytes(notice.raw, policy=email.policy.default).get_content().split())
    assert "could not be shown to come from one of the alias's mailboxes" in text


def test_the_contacts_answer_threads_on_the_owners_side(runtime: Runtime) -> None:
    jane = contact(runtime, "jane@shop.example")
    process(runtime, reply_to(jane.reverse), jane.reverse)
    provider_id = sent(runtime).sent[0].message_id
    assert runtime.contacts.original_for(jane.alias_id, f"<{provider_id}>") == "<mine-1@real.example>"


def test_an_unknown_reverse_shaped_address_is_an_unknown_alias(runtime: Runtime) -> None:
    [report] = process(runtime, reply_to("abcdefghijklmnop@othermail.example"), "abcdefghijklmnop@othermail.example")
    assert report.outcome is Outcome.DROPPED_UNKNOWN_ALIAS and sent(runtime).sent == []


def test_a_switched_off_alias_sends_no_reply(runtime: Runtime) -> None:
    jane = contact(runtime, "jane@shop.example")
    with runtime.sessions() as db:
        db.query(Alias).filter(Alias.address == ALIAS).update({"enabled": False})
        db.commit()
    [report] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert report.outcome is Outcome.DROPPED_REPLY_REFUSED and sent(runtime).sent == []
