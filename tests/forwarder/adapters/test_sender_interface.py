"""Every outbound sender behind one interface: one contract, run against each of them, then what is
particular to each (the SMTP relay's TLS, AUTH, replies and connections) and the factory that picks
one from the settings.

The senders under the contract:

- ``memory``: :class:`MemorySender`, read back from its list (it cannot fail, so the failure
  contract below leaves it out: there is nothing in it to break);
- ``maildir``: the local outbox, read back from the Maildir (it records the recipient in a
  ``Delivered-To`` line in front of the message, and keeps no envelope sender);
- ``smtp``: :class:`SmtpSender` with STARTTLS and AUTH, the usual relay set-up, against an aiosmtpd
  sink on 127.0.0.1 (tests/forwarder/adapters/smtp/smtp_sink.py);
- ``sesv2`` and ``sesv1``: SES on moto, read back from moto's record of sent messages. moto's raw
  send crashes on a message that is not UTF-8 (real SES takes it), so the contract's 8-bit body is
  UTF-8; Latin-1 bytes are tested against the other senders below.

Failures, as forwarder/adapters/senders.py documents them: trouble a retry can fix (an unwritable
outbox, a relay that is down, SES throttling) is :class:`SendRetryable`; a provider refusing this
message (a 550, SES's MessageRejected) is :class:`PermanentSendError`. The Maildir refuses nothing.
What is particular to SES and the Maildir is in tests/forwarder/adapters/test_senders.py.
"""

from __future__ import annotations

import mailbox
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.ses.models import ses_backends

from forwarder.adapters.aws.ses import SesV1Sender, SesV2Sender
from forwarder.adapters.outbound import build_sender
from forwarder.adapters.senders import MaildirSender, MemorySender
from forwarder.adapters.smtp.sender import SmtpSender, queue_id_from_reply, wire_line_breaks
from forwarder.errors import PermanentSendError, RetryableError, SendRetryable, SettingsError
from forwarder.ports import Sender
from forwarder.settings import Settings
from tests.forwarder.adapters.smtp.smtp_sink import Certificate, SmtpSink, self_signed_certificate
from tests.support.factories import AWS_ACCOUNT as ACCOUNT
from tests.support.factories import AWS_REGION as REGION
from tests.support.factories import fake_aws_credentials, free_tcp_port
from tests.support.races import race

DOMAIN = "othermail.example"
ALIAS = f"shop-7hq2@{DOMAIN}"
DESTINATION = "owner@real.example"
USER, PASSWORD = "relay-user", "relay-secret"


def message(body: bytes, subject: bytes = b"Your order shipped") -> bytes:
    return (
        b'From: "Shop (shop at store.example)" <shop-7hq2@othermail.example>\r\n'
        b"To: shop-7hq2@othermail.example\r\n"
        b"Subject: " + subject + b"\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + body
    )


# A line that starts with a dot checks SMTP's dot-stuffing both ways.
RAW = message(b"Tracking number 12345.\r\n.A line that starts with a dot.\r\n..and two.\r\n")
RAW_8BIT = message("Caf\u00e9, na\u00efve, \u2713 \u65e5\u672c\u8a9e.\r\n".encode("utf-8"))


def one_megabyte() -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789ab\r\n"  # 78 bytes
    return message(line * (1024 * 1024 // len(line) + 1))


# --------------------------------------------------------------------------- harnesses


@dataclass(frozen=True)
class Received:
    sender: str | None  # None where the sender keeps no envelope sender (the Maildir)
    recipients: tuple[str, ...]
    content: bytes


@dataclass
class Harness:
    name: str
    sender: Sender
    received: Callable[[], list[Received]]
    #: Makes the next send meet trouble a retry can fix; None for the memory sender.
    break_down: Callable[[], None] | None = None
    #: Makes the provider refuse the next message; None where nothing refuses (memory, Maildir).
    refuse_next: Callable[[], None] | None = None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


def read_maildir(path: Path) -> list[Received]:
    if not path.is_dir():  # the broken outbox of the failure contract: nothing was delivered
        return []
    box = mailbox.Maildir(str(path), create=False)
    out = []
    for key in box.keys():
        data = box.get_bytes(key)
        head, rest = data.split(b"\r\n", 1) if data.split(b"\n", 1)[0].endswith(b"\r") else data.split(b"\n", 1)
        assert head.startswith(b"Delivered-To: ")
        out.append(Received(None, (head.removeprefix(b"Delivered-To: ").decode(),), rest))
    return out


@pytest.fixture
def sink(certificate: Certificate) -> Iterator[SmtpSink]:
    """The usual relay: STARTTLS, then AUTH."""
    with SmtpSink(tls="starttls", certificate=certificate, users={USER: PASSWORD}) as running:
        yield running


def relay_sender(sink: SmtpSink, **overrides: Any) -> SmtpSender:
    options: dict[str, Any] = {
        "security": "starttls",
        "username": USER,
        "password": PASSWORD,
        "timeout": 10,
        "ssl_context": sink.client_context() if sink.certificate else None,
    }
    options.update(overrides)
    return SmtpSender(sink.host, sink.port, **options)


def unwritable(outbox: Path) -> None:
    """The outbox disappears and a plain file takes its place (a full or broken disk looks the same
    to the sender: the write fails with an OSError). Works as root too, unlike a chmod."""
    shutil.rmtree(outbox)
    outbox.write_bytes(b"not a folder")


def maildir_harness(tmp_path: Path) -> Harness:
    outbox = tmp_path / "outbox"
    return Harness("maildir", MaildirSender(outbox), lambda: read_maildir(outbox), lambda: unwritable(outbox))


def memory_harness() -> Harness:
    memory = MemorySender()
    return Harness("memory", memory, lambda: [Received(m.sender, (m.recipient,), m.raw) for m in memory.sent])


@contextmanager
def smtp_harness(sink: SmtpSink) -> Iterator[Harness]:
    smtp = relay_sender(sink)
    try:
        yield Harness(
            "smtp",
            smtp,
            lambda: [Received(d.mail_from, d.rcpt_tos, d.content) for d in sink.deliveries],
            sink.stop,
            lambda: sink.reject_next(550, "5.1.1 No such user", at="rcpt"),
        )
    finally:
        smtp.close()


@contextmanager
def ses_harness(api: str) -> Iterator[Harness]:
    """SES on moto. Trouble is SES throttling (botocore's Stubber on the sender's client); a refusal
    is moto's MessageRejected once the alias domain is no longer a verified identity."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("ses").verify_domain_identity(Domain=DOMAIN)
        client = session.client("ses" if api == "sesv1" else "sesv2")
        ses: SesV1Sender | SesV2Sender = SesV1Sender(client) if api == "sesv1" else SesV2Sender(client)
        stubber = Stubber(client)

        def throttle() -> None:
            operation = "send_raw_email" if api == "sesv1" else "send_email"
            stubber.add_client_error(operation, service_error_code="Throttling", http_status_code=400)
            stubber.activate()

        def unverify() -> None:
            session.client("ses").delete_identity(Identity=DOMAIN)

        def from_moto() -> list[Received]:
            return [
                Received(m.source, tuple(m.destinations), m.raw_data.encode("utf-8"))
                for m in ses_backends[ACCOUNT][REGION].sent_messages
            ]

        try:
            yield Harness(api, ses, from_moto, throttle, unverify)
        finally:
            stubber.deactivate()


@contextmanager
def make_harness(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if name == "memory":
        yield memory_harness()
    elif name == "maildir":
        yield maildir_harness(tmp_path)
    elif name == "smtp":
        with smtp_harness(request.getfixturevalue("sink")) as harness:
            yield harness
    else:
        request.getfixturevalue("fake_credentials")
        with ses_harness(name) as harness:
            yield harness


@pytest.fixture(params=["memory", "maildir", "smtp", "sesv2", "sesv1"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with make_harness(request.param, request, tmp_path) as made:
        yield made


@pytest.fixture(params=["maildir", "smtp", "sesv2", "sesv1"])
def breakable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The senders that can meet trouble: all but the memory sender."""
    with make_harness(request.param, request, tmp_path) as made:
        yield made


@pytest.fixture(params=["smtp", "sesv2", "sesv1"])
def refusing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The senders whose provider can refuse a message: the relay and SES."""
    with make_harness(request.param, request, tmp_path) as made:
        yield made


# --------------------------------------------------------------------------- the shared contract


def test_sends_the_exact_bytes_to_the_given_envelope(harness: Harness) -> None:
    assert harness.received() == []
    message_id = harness.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert isinstance(message_id, str) and message_id.strip()
    [got] = harness.received()
    assert got.content == RAW
    assert DESTINATION in got.recipients  # moto adds the header To/Cc addresses to the list
    if not harness.name.startswith("ses"):
        assert got.recipients == (DESTINATION,)
    assert got.sender == (None if harness.name == "maildir" else ALIAS)


def test_trouble_a_retry_can_fix_is_send_retryable(breakable: Harness) -> None:
    assert breakable.break_down is not None
    breakable.break_down()
    with pytest.raises(SendRetryable) as info:
        breakable.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert not isinstance(info.value, PermanentSendError)
    assert breakable.received() == []


def test_a_refused_message_is_a_permanent_error(refusing: Harness) -> None:
    assert refusing.refuse_next is not None
    refusing.refuse_next()
    with pytest.raises(PermanentSendError) as info:
        refusing.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert not isinstance(info.value, RetryableError)
    assert refusing.received() == []


def test_8bit_body_bytes_survive(harness: Harness) -> None:
    assert not RAW_8BIT.isascii()
    harness.sender.send(RAW_8BIT, sender=ALIAS, recipient=DESTINATION)
    [got] = harness.received()
    assert got.content == RAW_8BIT


def test_one_megabyte_goes_through(harness: Harness) -> None:
    big = one_megabyte()
    assert len(big) > 1024 * 1024
    message_id = harness.sender.send(big, sender=ALIAS, recipient=DESTINATION)
    assert message_id
    [got] = harness.received()
    assert got.content == big


def test_each_send_is_one_message_with_its_own_id(harness: Harness) -> None:
    first = harness.sender.send(RAW, sender=ALIAS, recipient="a@real.example")
    second = harness.sender.send(RAW, sender=ALIAS, recipient="b@real.example")
    assert first and second and first != second
    got = harness.received()
    assert len(got) == 2
    assert sorted(r for g in got for r in g.recipients if r.endswith("@real.example")) == [
        "a@real.example",
        "b@real.example",
    ]


def test_two_threads_sending_twenty_each_arrive_exactly_once(harness: Harness) -> None:
    expected = {
        (t, i): message(f"thread {t} message {i}\r\n".encode(), subject=f"t{t} m{i}".encode())
        for t in range(2)
        for i in range(20)
    }

    def work(t: int) -> list[str]:
        return [harness.sender.send(expected[t, i], sender=ALIAS, recipient=DESTINATION) for i in range(20)]

    ids = [message_id for sent in race([partial(work, t) for t in range(2)], within=60) for message_id in sent]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert Counter(g.content for g in harness.received()) == Counter(expected.values())


# --------------------------------------------------------------------------- the SMTP relay


def test_smtp_starttls_and_auth(sink: SmtpSink) -> None:
    with relay_sender(sink) as sender:
        message_id = sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    [delivery] = sink.deliveries
    assert delivery.tls and delivery.login == USER
    assert message_id == delivery.queue_id  # taken from "250 2.0.0 Ok: queued as ..."
    assert not any(o.startswith("BODY=") for o in delivery.mail_options)  # 7-bit: nothing to announce
    assert delivery.mail_options == (f"SIZE={len(RAW)}",)


def test_smtp_announces_8bitmime_and_keeps_latin1_bytes(sink: SmtpSink) -> None:
    raw = b"Subject: caf\xe9\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n\xe9t\xe9 \xff\r\n"
    with relay_sender(sink) as sender:
        sender.send(raw, sender=ALIAS, recipient=DESTINATION)
    [delivery] = sink.deliveries
    assert delivery.content == raw
    assert "BODY=8BITMIME" in delivery.mail_options
    assert "SMTPUTF8" not in delivery.mail_options  # a Latin-1 header is not UTF-8


def test_smtp_utf8_header_asks_for_smtputf8(sink: SmtpSink) -> None:
    raw = message(b"body\r\n", subject="Caf\u00e9".encode("utf-8"))
    with relay_sender(sink) as sender:
        sender.send(raw, sender=ALIAS, recipient=DESTINATION)
    [delivery] = sink.deliveries
    assert delivery.content == raw
    assert {"BODY=8BITMIME", "SMTPUTF8"} <= set(delivery.mail_options)


def test_smtp_non_ascii_recipient_uses_smtputf8(sink: SmtpSink) -> None:
    recipient = "j\u00f6rg@b\u00fccher.example"
    with relay_sender(sink) as sender:
        sender.send(RAW, sender=ALIAS, recipient=recipient)
    [delivery] = sink.deliveries
    assert delivery.rcpt_tos == (recipient,)
    assert "SMTPUTF8" in delivery.mail_options


def test_smtp_non_ascii_recipient_without_smtputf8_is_permanent(certificate: Certificate) -> None:
    with SmtpSink(tls="starttls", certificate=certificate, smtputf8=False) as sink:
        with relay_sender(sink, username="") as sender, pytest.raises(PermanentSendError, match="SMTPUTF8"):
            sender.send(RAW, sender=ALIAS, recipient="j\u00f6rg@b\u00fccher.example")
        assert sink.mail_commands == 0


def test_smtp_starttls_required_but_not_offered_sends_nothing(certificate: Certificate) -> None:
    with SmtpSink(tls="none") as plain:
        sender = SmtpSender(
            plain.host, plain.port, "starttls", USER, PASSWORD, timeout=10, ssl_context=certificate.client_context()
        )
        with sender, pytest.raises(SendRetryable, match="does not offer STARTTLS") as info:
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        assert not isinstance(info.value, PermanentSendError)
        assert plain.mail_commands == 0 and plain.deliveries == []  # not even the envelope went out


def test_smtp_plain_relay_with_security_none(certificate: Certificate) -> None:
    with SmtpSink(tls="none") as plain, SmtpSender(plain.host, plain.port, "none", timeout=10) as sender:
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        [delivery] = plain.deliveries
        assert delivery.content == RAW and not delivery.tls and delivery.login is None


def test_smtp_implicit_tls(certificate: Certificate) -> None:
    with SmtpSink(tls="implicit", certificate=certificate, users={USER: PASSWORD}) as sink:
        with relay_sender(sink, security="tls") as sender:
            message_id = sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        [delivery] = sink.deliveries
        assert delivery.tls and delivery.login == USER and delivery.content == RAW
        assert message_id == delivery.queue_id


@pytest.mark.parametrize("security, tls", [("starttls", "starttls"), ("tls", "implicit")])
def test_smtp_untrusted_certificate_is_refused(certificate: Certificate, security: str, tls: Any) -> None:
    """The default context checks the relay's certificate: a self-signed one is not trusted."""
    with SmtpSink(tls=tls, certificate=certificate, users={USER: PASSWORD}) as sink:
        with relay_sender(sink, security=security, ssl_context=None) as sender:
            with pytest.raises(SendRetryable, match="TLS failed|CERTIFICATE_VERIFY_FAILED"):
                sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        assert sink.mail_commands == 0


def test_smtp_wrong_password_is_retryable_and_names_the_settings(sink: SmtpSink) -> None:
    with relay_sender(sink, password="wrong") as sender:
        with pytest.raises(SendRetryable, match="refused the credentials") as info:
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert "OTHERMAIL_RELAY_PASSWORD" in str(info.value) and "wrong" not in str(info.value)
    assert sink.mail_commands == 0 and sink.deliveries == []


def test_smtp_relay_wanting_auth_is_retryable(sink: SmtpSink) -> None:
    """A relay that wants AUTH refuses with 530: the settings are wrong, the message is not."""
    with relay_sender(sink, username="") as sender:
        with pytest.raises(SendRetryable, match="530 .*OTHERMAIL_RELAY_USERNAME"):
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert sink.deliveries == []


@pytest.mark.parametrize("text", ["5.7.1 <owner@real.example>: Relay access denied", "relay not permitted"])
def test_smtp_relay_access_denied_is_retryable(sink: SmtpSink, text: str) -> None:
    sink.reject_next(554, text, at="rcpt")
    with relay_sender(sink) as sender, pytest.raises(SendRetryable, match="OTHERMAIL_RELAY_USERNAME"):
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_smtp_451_is_retryable_and_the_connection_is_kept(sink: SmtpSink, stage: Any) -> None:
    sink.reject_next(451, "4.3.0 Try again later", at=stage)
    with relay_sender(sink) as sender:
        with pytest.raises(SendRetryable, match="451") as info:
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        assert not isinstance(info.value, PermanentSendError)
        assert sink.deliveries == []
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    [delivery] = sink.deliveries
    assert delivery.connection == 1  # the same connection carried on after the 451


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_smtp_550_is_permanent(sink: SmtpSink, stage: Any) -> None:
    sink.reject_next(550, "5.1.1 No such user", at=stage)
    with relay_sender(sink) as sender:
        with pytest.raises(PermanentSendError, match="550 5.1.1 No such user") as info:
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        assert not isinstance(info.value, RetryableError)
        assert sink.deliveries == []
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)  # the next message is not affected
    assert len(sink.deliveries) == 1


def test_smtp_keeps_one_connection_for_many_messages(sink: SmtpSink) -> None:
    with relay_sender(sink) as sender:
        for _ in range(10):
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert [d.connection for d in sink.deliveries] == [1] * 10


def test_smtp_reconnects_after_the_relay_restarted(sink: SmtpSink) -> None:
    with relay_sender(sink) as sender:
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        sink.restart()  # drops the kept connection
        sender.send(RAW, sender=ALIAS, recipient="second@real.example")
        sender.send(RAW, sender=ALIAS, recipient="third@real.example")
    deliveries = sink.deliveries
    assert [d.rcpt_tos for d in deliveries] == [(DESTINATION,), ("second@real.example",), ("third@real.example",)]
    assert deliveries[1].connection != deliveries[0].connection
    assert deliveries[2].connection == deliveries[1].connection


def test_smtp_relay_down_is_retryable(sink: SmtpSink) -> None:
    with relay_sender(sink) as sender:
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
        sink.stop()
        with pytest.raises(SendRetryable):
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)  # the retry cannot connect either
        sink.start()
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert len(sink.deliveries) == 2


def test_smtp_connection_refused_is_retryable() -> None:
    with SmtpSender("127.0.0.1", free_tcp_port(), "starttls", timeout=5) as sender:
        with pytest.raises(SendRetryable, match="connecting failed") as info:
            sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert "127.0.0.1" in str(info.value)


def test_smtp_bare_line_feeds_go_out_as_crlf_and_cannot_smuggle(sink: SmtpSink) -> None:
    """A bare-LF "\\n.\\n" in a forwarded message must not end DATA early at the relay."""
    raw = b"Subject: smuggle\n\nfirst\n.\nMAIL FROM:<evil@attacker.example>\r\nend\r"
    with relay_sender(sink) as sender:
        sender.send(raw, sender=ALIAS, recipient=DESTINATION)
    [delivery] = sink.deliveries
    assert delivery.content == b"Subject: smuggle\r\n\r\nfirst\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\nend\r\n"
    assert sink.mail_commands == 1


def test_smtp_close_says_quit_and_the_sender_stays_usable(sink: SmtpSink) -> None:
    sender = relay_sender(sink)
    sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    sender.close()
    sender.close()  # twice is harmless
    sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    sender.close()
    assert [d.connection for d in sink.deliveries] == [1, 2]


def test_smtp_connection_of_an_ended_thread_is_closed(sink: SmtpSink) -> None:
    sender = relay_sender(sink)
    worker = threading.Thread(target=sender.send, args=(RAW,), kwargs={"sender": ALIAS, "recipient": DESTINATION})
    worker.start()
    worker.join()
    sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert list(sender._open) == [threading.current_thread()]  # the worker's socket was closed
    sender.close()
    assert len(sink.deliveries) == 2


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("2.0.0 Ok: queued as 4Bq3Jt0xyzC", "4Bq3Jt0xyzC"),
        ("Ok: queued as <ABC123>", "ABC123"),
        ("OK id=1rAbCd-000Ab1-2x", "1rAbCd-000Ab1-2x"),
        (
            "Ok 0100018f2b3c4d5e-7f1e2d3c-aaaa-bbbb-cccc-1234567890ab-000000",
            "0100018f2b3c4d5e-7f1e2d3c-aaaa-bbbb-cccc-1234567890ab-000000",
        ),
        ("OK", None),
        ("2.0.0 Ok", None),
        ("Message accepted for delivery", None),
    ],
)
def test_queue_id_from_reply(reply: str, expected: str | None) -> None:
    assert queue_id_from_reply(reply) == expected


def test_wire_line_breaks() -> None:
    assert wire_line_breaks(RAW) is RAW  # already CRLF: untouched, not copied
    assert wire_line_breaks(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd"


@pytest.mark.parametrize("security", ["", "ssl", "STARTTLS "])
def test_smtp_unknown_security_is_a_settings_error(security: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_RELAY_SECURITY"):
        SmtpSender("relay.example", 587, security)


# --------------------------------------------------------------------------- build_sender


def test_build_sender_outbox(tmp_path: Path) -> None:
    sender = build_sender(Settings(sender="outbox", outbox=tmp_path / "outbox"))
    assert isinstance(sender, MaildirSender) and sender.path == tmp_path / "outbox"


def test_build_sender_smtp_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "OTHERMAIL_SENDER": "smtp",
            "OTHERMAIL_RELAY_HOST": "relay.example",
            "OTHERMAIL_RELAY_PORT": "465",
            "OTHERMAIL_RELAY_SECURITY": "tls",
            "OTHERMAIL_RELAY_USERNAME": "u",
            "OTHERMAIL_RELAY_PASSWORD": "s3cret-pw",
            "OTHERMAIL_RELAY_TIMEOUT_SECONDS": "7",
        },
        default_sender="outbox",
    )
    sender = build_sender(settings)
    assert isinstance(sender, SmtpSender)
    assert (sender.host, sender.port, sender.security, sender.username, sender.timeout) == (
        "relay.example",
        465,
        "tls",
        "u",
        7,
    )
    assert "s3cret-pw" not in repr(sender)


def test_build_sender_smtp_defaults() -> None:
    sender = build_sender(Settings(sender="smtp", relay_host="relay.example"))
    assert isinstance(sender, SmtpSender)
    assert (sender.port, sender.security, sender.username, sender.timeout) == (587, "starttls", "", 30)


def test_build_sender_smtp_without_a_host_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_RELAY_HOST"):
        build_sender(Settings(sender="smtp"))


@pytest.mark.parametrize("api, cls, service", [("v2", SesV2Sender, "sesv2"), ("v1", SesV1Sender, "ses")])
def test_build_sender_ses(fake_credentials: None, api: str, cls: type, service: str) -> None:
    settings = Settings(sender="ses", ses_api=api, aws_region="eu-west-1", ses_configuration_set="events")
    sender = build_sender(settings)
    assert type(sender) is cls
    assert sender._client.meta.service_model.service_name == service
    assert sender._client.meta.region_name == "eu-west-1"
    assert sender._configuration_set == "events"


def test_build_sender_ses_uses_the_given_session(fake_credentials: None) -> None:
    session = boto3.session.Session(region_name="ap-southeast-2")
    sender = build_sender(replace(Settings(), sender="ses"), aws_session=session)
    assert isinstance(sender, SesV2Sender)
    assert sender._client.meta.region_name == "ap-southeast-2"


def test_build_sender_unknown_kind() -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_SENDER"):
        build_sender(Settings(sender="pigeon"))
