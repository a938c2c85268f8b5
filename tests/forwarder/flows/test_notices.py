"""Notices instead of silence (forwarder/flows/notices.py): the owner hears of mail that could not be
forwarded, at most once an hour per mailbox and reason, and the original sender never does."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import update

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.errors import PermanentSendError
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.notices import Notice, NoticeBook, Notifier, build_notifier, compose
from forwarder.ports import Unforwarded
from forwarder.settings import Settings
from models import Alias, Delivery, Destination, User, make_engine, make_session_factory, utcnow
from tests.support.databases import migrate

ALIAS = "shop-7hq2@othermail.example"
SENDER = "jane@example.net"
RAW = (
    f"From: Jane <{SENDER}>\r\nTo: {ALIAS}\r\nSubject: Holiday photos\r\nMessage-ID: <1@example.net>\r\n\r\n"
    + "x" * 5000
    + "\r\n"
).encode()
PUBLIC = "https://mail.example.org"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        home = Destination(user_id=user.id, email="home@real.example", verified_at=utcnow())
        work = Destination(user_id=user.id, email="work@real.example", verified_at=utcnow())
        unverified = Destination(user_id=user.id, email="new@real.example")
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.extend([home, work, unverified])
        db.add(alias)
        db.commit()
        ids = {"home": home.id, "work": work.id, "alias": alias.id}
    yield engine, ids
    engine.dispose()


def notifier(engine, sender: MemorySender, clock: Clock | None = None) -> Notifier:  # type: ignore[no-untyped-def]
    return Notifier(NoticeBook(engine, clock or Clock()), sender, "noreply@othermail.example", PUBLIC, 14)


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_a_notice_says_which_alias_how_big_and_why_and_asks_for_no_answer() -> None:
    notice = Notice(
        ALIAS,
        "Jane <jane@example.net>",
        "Holiday\r\nBcc: evil@example.org photos",
        31_200_000,
        "it is larger than the mail service can forward",
        f"{PUBLIC}/messages/7",
        14,
    )
    message = parsed(compose(notice, "home@real.example", "noreply@othermail.example"))
    assert message["To"] == "home@real.example" and "noreply@othermail.example" in message["From"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == f"Not forwarded: a message to {ALIAS}"
    assert message["Bcc"] is None
    body = message.get_content()
    assert f"A message to your alias {ALIAS} was not forwarded to you:" in body
    assert "Size:    29.8 MB" in body
    assert "it is larger than the mail service can forward." in body
    assert f"{PUBLIC}/messages/7" in body and "for 14 days" in body


@pytest.mark.parametrize(
    ("mail_from", "subject"),
    [
        ("Your account is locked <restore@evil.example>", "Restore it at https://evil.example/restore now"),
        ("=?utf-8?q?Support?= <x@y.example>", "Hello"),
    ],
)
def test_a_notice_carries_no_text_the_sender_chose(mail_from: str, subject: str) -> None:
    """Issue 12.5: the notice quoted the sender and subject of the mail it is about, so anyone could have
    the service mail their words (a phishing line, a link) from its own address."""
    notice = Notice(
        ALIAS,
        mail_from,
        subject,
        31_200_000,
        "it is larger than the mail service can forward",
        f"{PUBLIC}/messages/7",
        14,
    )
    message = parsed(compose(notice, "home@real.example", "noreply@othermail.example"))
    text = f"{message['Subject']}\n{message.get_content()}"
    for words in (mail_from, subject, "locked", "evil", "Support", "Hello"):
        assert words not in text


def test_a_too_large_message_tells_every_verified_destination_once_an_hour(world) -> None:  # type: ignore[no-untyped-def]
    engine, ids = world
    sender, clock = MemorySender(), Clock()
    forwarder = Forwarder(
        SqlDirectory(engine), sender, Policy(), utcnow, max_bytes=4000, notifier=notifier(engine, sender, clock)
    )
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,), raw_key="inbound/m1"))
    assert [r.outcome for r in reports] == [Outcome.DROPPED_TOO_LARGE]
    assert sorted(m.recipient for m in sender.sent) == ["home@real.example", "work@real.example"]
    assert all(m.recipient != SENDER and m.sender == "noreply@othermail.example" for m in sender.sent)
    with make_session_factory(engine)() as db:
        row = db.query(Delivery).filter_by(inbound_message_id="m1").one()
        assert row.raw_key == "inbound/m1"
    body = parsed(sender.sent[0].raw).get_content()
    assert f"{PUBLIC}/messages/{row.id}" in body and "Holiday photos" not in body  # the page shows it

    forwarder.process(RAW, Inbound("m2", (ALIAS,)))  # the same hour: in the activity list only
    assert len(sender.sent) == 2
    forwarder.process(RAW, Inbound("m1", (ALIAS,)))  # a redelivery: nothing new to say
    assert len(sender.sent) == 2
    clock.now += 3600
    forwarder.process(RAW, Inbound("m3", (ALIAS,)))
    assert len(sender.sent) == 4


class Refusing(MemorySender):
    """SES refusing forwarded copies to one mailbox as invalid; notices go through."""

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        if recipient == "home@real.example" and b"X-Othermail-Notice" not in raw:
            raise PermanentSendError("554 Message rejected: invalid MIME")
        return super().send(raw, sender=sender, recipient=recipient)


def test_a_rejected_copy_is_told_to_its_own_destination(world) -> None:  # type: ignore[no-untyped-def]
    engine, ids = world
    sender = Refusing()
    forwarder = Forwarder(SqlDirectory(engine), sender, Policy(), utcnow, notifier=notifier(engine, sender))
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert sorted(r.outcome.value for r in reports) == ["failed-rejected", "forwarded"]
    notices = [m for m in sender.sent if b"X-Othermail-Notice" in m.raw]
    assert [m.recipient for m in notices] == ["home@real.example"]
    assert "the mail service refused to send it on" in parsed(notices[0].raw).get_content()


def test_a_paused_destination_is_told_through_the_others_never_itself(world) -> None:  # type: ignore[no-untyped-def]
    engine, ids = world
    with engine.begin() as connection:
        connection.execute(update(Destination).where(Destination.id == ids["home"]).values(paused_at=utcnow()))
    sender = MemorySender()
    book = NoticeBook(engine, Clock())
    note = Notifier(book, sender, "noreply@othermail.example", "", 14)
    item = Unforwarded("m1", ALIAS, ids["alias"], ids["home"], Outcome.DROPPED_PAUSED, SENDER, "hi", 100)
    note.after([item])
    assert [m.recipient for m in sender.sent] == ["work@real.example"]
    body = parsed(sender.sent[0].raw).get_content()
    assert "forwarding to home@real.example is paused because mail to it bounced" in body
    assert "Sign in to othermail" in body  # no public address configured: no link
    # a paused destination never hears of its own pause, nor of anything else
    assert [r.destination_id for r in book.recipients(Outcome.DROPPED_TOO_LARGE, ids["alias"], None)] == [ids["work"]]


class Broken(MemorySender):
    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        raise OSError("relay down")


def test_a_notice_that_cannot_be_sent_costs_the_message_nothing(world, caplog) -> None:  # type: ignore[no-untyped-def]
    engine, ids = world
    forwarder = Forwarder(
        SqlDirectory(engine), MemorySender(), Policy(), utcnow, max_bytes=4000, notifier=notifier(engine, Broken())
    )
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert [r.outcome for r in reports] == [Outcome.DROPPED_TOO_LARGE]
    assert "notice-failed" in caplog.text and "home@real.example" not in caplog.text


def test_forwarded_and_other_blocked_mail_gets_no_notice(world) -> None:  # type: ignore[no-untyped-def]
    engine, ids = world
    sender = MemorySender()
    forwarder = Forwarder(SqlDirectory(engine), sender, Policy(), utcnow, notifier=notifier(engine, sender))
    forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    forwarder.process(RAW, Inbound("m2", ("nobody@othermail.example",)))
    assert all(b"X-Othermail-Notice" not in m.raw for m in sender.sent) and len(sender.sent) == 2


def test_notices_follow_the_settings(world) -> None:  # type: ignore[no-untyped-def]
    engine, _ids = world
    settings = Settings(domains=("othermail.example",), public_url=PUBLIC, keep_days=5)
    built = build_notifier(settings, engine, MemorySender())
    assert built is not None and (built.from_address, built.public_url, built.keep_days) == (
        "noreply@othermail.example",
        PUBLIC,
        5,
    )
    assert build_notifier(Settings(notices=False), engine, MemorySender()) is None
    assert Settings.from_env({"OTHERMAIL_NOTICES": "false"}).notices is False
    assert Settings.from_env({"OTHERMAIL_KEEP_DAYS": "30", "OTHERMAIL_PUBLIC_URL": PUBLIC + "/"}).keep_days == 30
    with pytest.raises(Exception, match="PUBLIC_URL"):
        Settings.from_env({"OTHERMAIL_PUBLIC_URL": "mail.example.org"})


class RejectsHomeThenWorkIsDown(MemorySender):
    """SES refuses the copy to home, then throttles the one to work (a retryable error)."""

    def __init__(self) -> None:
        super().__init__()
        self.work_down = True

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        if b"X-Othermail-Notice" not in raw:
            if recipient == "home@real.example":
                raise PermanentSendError("554 Message rejected: invalid MIME")
            if self.work_down:
                from forwarder.errors import SendRetryable

                raise SendRetryable("throttled")
        return super().send(raw, sender=sender, recipient=recipient)


def test_a_notice_is_not_lost_when_a_later_send_of_the_message_raises(world) -> None:  # type: ignore[no-untyped-def]
    from forwarder.errors import SendRetryable

    engine, _ids = world
    sender = RejectsHomeThenWorkIsDown()
    forwarder = Forwarder(SqlDirectory(engine), sender, Policy(), utcnow, notifier=notifier(engine, sender))
    with pytest.raises(SendRetryable):
        forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert [m.recipient for m in sender.sent] == ["home@real.example"]  # the rejection's notice, at once
    sender.work_down = False
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))  # the retry: home's outcome is a duplicate
    assert sorted((r.outcome.value, r.duplicate) for r in reports) == [("failed-rejected", True), ("forwarded", False)]
    assert sorted(m.recipient for m in sender.sent) == ["home@real.example", "work@real.example"]
