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


def notices(runtime: Runtime) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(m.raw, policy=email.policy.default)  # type: ignore[misc]
        for m in sent(runtime).sent
        if m.sender == "noreply@othermail.example"
    ]


def copies(runtime: Runtime) -> list[str]:
    return sorted(m.recipient for m in sent(runtime).sent if m.sender == ALIAS)


def test_reply_all_to_two_reverse_addresses_sends_each_contact_one_copy(runtime: Runtime) -> None:
    """Regression: the owner's server delivers a Reply-All once per reverse address; each of those
    deliveries sent the reply to every contact named, so each contact got it twice."""
    jane, bob = contact(runtime, "jane@shop.example"), contact(runtime, "bob@shop.example")
    raw = reply_to(jane.reverse, cc=(bob.reverse, "friend@elsewhere.example", "Other@Elsewhere.example"))
    inbound = Inbound("in-1", (jane.reverse, bob.reverse), PASS, mail_from=OWNER)
    reports = runtime.forwarder.process(raw, inbound)
    assert [r.outcome for r in reports] == [Outcome.REPLIED, Outcome.REPLIED]
    assert copies(runtime) == ["bob@shop.example", "jane@shop.example"]
    # each copy still names both contacts (by their real addresses), so Reply-All works on their side
    for copy in (m for m in sent(runtime).sent if m.sender == ALIAS):
        parsed = email.message_from_bytes(copy.raw, policy=email.policy.default)
        named = [a.addr_spec for f in ("To", "Cc") for a in parsed[f].addresses]
        assert named == ["jane@shop.example", "bob@shop.example"]
    # one notice, to the mailbox that wrote, naming who got the message with the real address
    [notice] = notices(runtime)
    assert notice["To"] == OWNER and notice["X-Othermail-Notice"] == "address-exposed"
    text = notice.get_content()
    assert "friend@elsewhere.example" in text and "other@elsewhere.example" in text
    assert "bob@shop.example" not in text and "jane@shop.example" not in text
    # a redelivery tells nobody twice
    runtime.forwarder.process(raw, inbound)
    assert len(notices(runtime)) == 1 and len(copies(runtime)) == 2


def test_a_contact_in_bcc_gets_the_reply(runtime: Runtime) -> None:
    """Bcc: the reverse address is an envelope recipient only; that contact gets one copy."""
    jane, bob = contact(runtime, "jane@shop.example"), contact(runtime, "bob@shop.example")
    inbound = Inbound("in-1", (bob.reverse,), PASS, mail_from=OWNER)
    [report] = runtime.forwarder.process(reply_to(jane.reverse), inbound)
    assert report.outcome is Outcome.REPLIED and copies(runtime) == ["bob@shop.example"]
    # written to an outsider with a contact in Bcc: the contact's copy says the recipients are undisclosed
    raw = reply_to("boss@elsewhere.example")
    runtime.forwarder.process(raw, Inbound("in-2", (jane.reverse,), PASS, mail_from=OWNER))
    last = email.message_from_bytes(sent(runtime).sent[-2].raw, policy=email.policy.default)
    assert last["To"] == "undisclosed-recipients:;" and last["Cc"] is None


def test_the_contacts_answer_to_the_copy_s_own_message_id_threads_too(runtime: Runtime) -> None:
    """Where no provider replaces Message-ID (the one box's relay or outbox), the contact answers
    the id the reply flow wrote; that id is linked as well as the provider's."""
    jane = contact(runtime, "jane@shop.example")
    process(runtime, reply_to(jane.reverse), jane.reverse)
    [copy] = sent(runtime).sent
    own_id = email.message_from_bytes(copy.raw, policy=email.policy.default)["Message-ID"]
    assert runtime.contacts.original_for(jane.alias_id, own_id) == "<mine-1@real.example>"
    assert runtime.contacts.answers_reply(jane.alias_id, [own_id, copy.message_id])


def bounce_of(message_id: str, to: str = ALIAS) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>\r\n"
        f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.shop.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.shop.example\r\n\r\nFinal-Recipient: rfc822; jane@shop.example\r\n"
        "Action: failed\r\nStatus: 5.2.2\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {ALIAS}\r\nTo: jane@shop.example\r\nMessage-ID: {message_id}\r\nSubject: Re: your order\r\n"
        "--b--\r\n"
    ).encode()


def auto_reply_to(message_id: str) -> bytes:
    return (
        f"From: Jane <jane@shop.example>\r\nTo: {ALIAS}\r\nSubject: Out of office\r\n"
        f"Message-ID: <ooo-1@shop.example>\r\nIn-Reply-To: {message_id}\r\nAuto-Submitted: auto-replied\r\n\r\n"
        "I am away until Monday.\r\n"
    ).encode()


@pytest.mark.parametrize("kind", ["bounce", "auto-reply"])
def test_a_bounce_or_auto_reply_to_a_reply_is_a_notice_to_the_owner(runtime: Runtime, kind: str) -> None:
    jane = contact(runtime, "jane@shop.example")
    process(runtime, reply_to(jane.reverse), jane.reverse)
    [copy] = sent(runtime).sent
    reply_id = email.message_from_bytes(copy.raw, policy=email.policy.default)["Message-ID"]
    raw = bounce_of(reply_id) if kind == "bounce" else auto_reply_to(reply_id)
    mail_from = "" if kind == "bounce" else "jane@shop.example"
    [report] = runtime.forwarder.process(raw, Inbound("in-2", (ALIAS,), PASS, mail_from=mail_from))
    assert report.outcome is Outcome.DROPPED_REPLY_BOUNCE
    # nothing is forwarded (no contact is made of the mailer daemon), the owner gets a notice
    assert [m.recipient for m in sent(runtime).sent] == ["jane@shop.example", OWNER]
    [notice] = notices(runtime)
    assert notice["Subject"] == f"Bounce or automatic answer to mail from {ALIAS}"
    assert "mailer-daemon" not in notice.get_content().lower()  # the notice quotes nobody


@pytest.mark.parametrize("kind", ["bounce", "auto-reply"])
def test_a_bounce_or_auto_reply_naming_no_reply_is_still_dropped_quietly(runtime: Runtime, kind: str) -> None:
    contact(runtime, "jane@shop.example")
    raw = bounce_of("<never-sent@x.example>") if kind == "bounce" else auto_reply_to("<never-sent@x.example>")
    [report] = runtime.forwarder.process(raw, Inbound("in-2", (ALIAS,), PASS, mail_from=""))
    assert report.outcome in (Outcome.DROPPED_BOUNCE, Outcome.DROPPED_AUTO_REPLY)
    assert sent(runtime).sent == []


def test_a_bounce_to_a_reverse_address_is_never_relayed(runtime: Runtime) -> None:
    """Even 'from' the owner's own mailbox (a DSN its server wrote, or a forged one): a bounce or an
    auto-reply to a reverse address goes to no contact, and is no refused reply either."""
    jane = contact(runtime, "jane@shop.example")
    raw = bounce_of("<x@y.example>", to=jane.reverse).replace(b"MAILER-DAEMON@mx.shop.example", OWNER.encode())
    [report] = runtime.forwarder.process(raw, Inbound("in-3", (jane.reverse,), PASS, mail_from=""))
    assert report.outcome is Outcome.DROPPED_BOUNCE and sent(runtime).sent == []


def test_a_reply_that_cannot_go_out_is_a_notice_not_silence(runtime: Runtime) -> None:
    """Review M3: a reply refused by the provider (or too large, or over a limit) went unreported."""
    from forwarder.errors import PermanentSendError

    jane = contact(runtime, "jane@shop.example")
    send = sent(runtime).send

    def refuse(raw: bytes, sender: str, recipient: str) -> str:
        if sender == ALIAS:  # the reply; the notice goes through
            raise PermanentSendError("554 Message rejected: Email address is not verified")
        return send(raw, sender=sender, recipient=recipient)

    sent(runtime).send = refuse  # type: ignore[method-assign]
    [report] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert report.outcome is Outcome.FAILED_REJECTED
    [notice] = notices(runtime)
    assert notice["To"] == OWNER and notice["Subject"] == f"Not sent: a message through {ALIAS}"
    assert jane.reverse not in notice.get_content() and ALIAS in notice.get_content()


def test_a_reply_to_a_switched_off_alias_tells_nobody_even_when_it_is_a_bounce(runtime: Runtime) -> None:
    """Review M2: the bounce check ran before the alias's state."""
    jane = contact(runtime, "jane@shop.example")
    with runtime.sessions() as db:
        db.query(Alias).filter(Alias.address == ALIAS).update({"enabled": False})
        db.commit()
    [report] = runtime.forwarder.process(bounce_of("<x@y>", to=jane.reverse), Inbound("b", (jane.reverse,), PASS, ""))
    assert report.outcome is Outcome.DROPPED_REPLY_REFUSED and sent(runtime).sent == []


def test_every_contact_of_one_message_sees_one_message_id(runtime: Runtime) -> None:
    """Review L4: each reverse address got its own random id, so contacts' Reply-All split the thread."""
    jane, bob = contact(runtime, "jane@shop.example"), contact(runtime, "bob@shop.example")
    raw = reply_to(jane.reverse, cc=(bob.reverse,))
    runtime.forwarder.process(raw, Inbound("in-1", (jane.reverse, bob.reverse), PASS, mail_from=OWNER))
    ids = {email.message_from_bytes(m.raw, policy=email.policy.default)["Message-ID"] for m in sent(runtime).sent}
    assert len(ids) == 1 and "real.example" not in ids.pop()


def test_the_exposure_notice_is_sent_once_per_message_across_receipts(runtime: Runtime) -> None:
    """Review L3: two receipts of one message (one per reverse address) gave two notices; an
    unknown reverse-shaped address on the service's domain reached no outsider (L2)."""
    jane, bob = contact(runtime, "jane@shop.example"), contact(runtime, "bob@shop.example")
    raw = reply_to(jane.reverse, cc=(bob.reverse, "friend@elsewhere.example", "abcdefghijklmnop@othermail.example"))
    runtime.forwarder.process(raw, Inbound("receipt-1", (jane.reverse,), PASS, mail_from=OWNER))
    runtime.forwarder.process(raw, Inbound("receipt-2", (bob.reverse,), PASS, mail_from=OWNER))
    [notice] = notices(runtime)
    text = notice.get_content()
    assert "friend@elsewhere.example" in text and "abcdefghijklmnop" not in text


def test_a_database_error_after_the_send_does_not_send_twice(runtime: Runtime) -> None:
    """Review L5: the link was written before the outcome; a failure there left the claim open."""
    jane = contact(runtime, "jane@shop.example")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    runtime.contacts.link = broken  # type: ignore[method-assign]
    [report] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert report.outcome is Outcome.REPLIED
    [again] = process(runtime, reply_to(jane.reverse), jane.reverse)
    assert again.duplicate and copies(runtime) == ["jane@shop.example"]


@pytest.mark.parametrize("state", ["blocked", "switched-off"])
def test_an_answer_to_a_reply_from_a_blocked_sender_or_to_a_switched_off_alias_tells_nobody(
    runtime: Runtime, state: str
) -> None:
    """Review M2: the reply-bounce check ran before the sender rules and the alias's state."""
    jane = contact(runtime, "jane@shop.example")
    process(runtime, reply_to(jane.reverse), jane.reverse)
    [copy] = sent(runtime).sent
    reply_id = email.message_from_bytes(copy.raw, policy=email.policy.default)["Message-ID"]
    if state == "blocked":
        runtime.contacts.set_blocked(jane.alias_id, jane.contact_id, True)
        expected = Outcome.DROPPED_BLOCKED
    else:
        with runtime.sessions() as db:
            db.query(Alias).filter(Alias.address == ALIAS).update({"enabled": False})
            db.commit()
        expected = Outcome.DROPPED_DISABLED
    [report] = runtime.forwarder.process(auto_reply_to(reply_id), Inbound("in-2", (ALIAS,), PASS, "jane@shop.example"))
    assert report.outcome is expected and notices(runtime) == []
