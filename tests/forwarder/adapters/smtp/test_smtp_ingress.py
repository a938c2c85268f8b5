"""The SMTP listener: never an open relay, 550 for unknown aliases, size limit, spool before 250,
451 on temporary trouble so the sending server keeps the message."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.stores import LocalStore, MemoryStore
from forwarder.errors import DatabaseUnavailable

DOMAINS = ("othermail.example", "alias.example")
KNOWN = {"shop@othermail.example", "news@alias.example"}
MESSAGE = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n\xc3\xa9 8-bit\r\n"


class Listener:
    def __init__(self, spool: Spool, known: Callable[[str], bool], max_bytes: int = 100_000) -> None:
        self.spool = spool
        self.dispatched: list[str] = []
        handler = IngressHandler(DOMAINS, spool, known, self.dispatched.append)
        self.server = SmtpListener(handler, "127.0.0.1", 0, max_bytes)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.server.port, timeout=10)


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(
        known: Callable[[str], bool] = lambda a: a.lower() in KNOWN, store=None, max_bytes: int = 100_000
    ) -> Listener:
        listener = Listener(Spool(tmp_path / "spool", store or LocalStore(tmp_path / "mail")), known, max_bytes)
        listener.server.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.server.stop()


def test_a_known_alias_is_spooled_before_the_250(listen: Callable[..., Listener]) -> None:
    server = listen()
    with server.client() as client:
        client.ehlo()
        client.mail("jane@example.net")
        assert client.rcpt("Shop@othermail.example")[0] == 250
        code, message = client.data(MESSAGE)
    assert code == 250 and b"queued as" in message
    spool_id = message.decode().rsplit(" ", 1)[1]
    assert server.dispatched == [spool_id] and server.spool.pending() == [spool_id]
    raw, envelope = server.spool.load(spool_id)
    assert raw == MESSAGE  # dot-unstuffed, 8-bit bytes untouched
    assert envelope.recipients == ("Shop@othermail.example",) and envelope.mail_from == "jane@example.net"
    assert envelope.peer == "127.0.0.1"


@pytest.mark.parametrize(
    "recipient",
    [
        "someone@gmail.example",
        "shop@othermail.example.evil",
        "shop@sub.othermail.example",
        "postmaster",
        "@othermail.example",
    ],
)
def test_never_an_open_relay(listen: Callable[..., Listener], recipient: str) -> None:
    server = listen(known=lambda a: True)
    with server.client() as client:
        client.ehlo()
        client.mail("spammer@example.net")
        code, text = client.rcpt(recipient)
    assert code >= 550 and (b"Relaying denied" in text or recipient == "@othermail.example")
    assert server.dispatched == [] and server.spool.pending() == []


def test_unknown_aliases_are_refused_at_rcpt_and_known_ones_still_accepted(listen: Callable[..., Listener]) -> None:
    server = listen()
    with server.client() as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("jane@example.net", ["ghost@othermail.example"], MESSAGE)
        assert refused.value.recipients["ghost@othermail.example"][0] == 550
        assert client.sendmail("jane@example.net", ["ghost@othermail.example", "news@alias.example"], MESSAGE) == {
            "ghost@othermail.example": (550, b"5.1.1 <ghost@othermail.example>: no such address here")
        }
    (spool_id,) = server.dispatched
    assert server.spool.load(spool_id)[1].recipients == ("news@alias.example",)


def test_the_size_limit_is_advertised_and_enforced(listen: Callable[..., Listener]) -> None:
    server = listen(max_bytes=2048)
    with server.client() as client:
        client.ehlo()
        assert client.has_extn("size") and client.esmtp_features["size"] == "2048"
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:  # SIZE= at MAIL FROM
            client.sendmail(
                "jane@example.net",
                ["shop@othermail.example"],
                MESSAGE + b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" * 100,
            )
        assert declared.value.smtp_code == 552
    with listen(max_bytes=2048).client() as plain:  # no SIZE declared: refused at the end of DATA
        plain.helo()
        plain.mail("jane@example.net")
        plain.rcpt("shop@othermail.example")
        code, _ = plain.data(MESSAGE + b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" * 100)
        assert code == 552
    assert server.spool.pending() == []


def test_database_trouble_at_rcpt_is_451(listen: Callable[..., Listener]) -> None:
    def down(address: str) -> bool:
        raise DatabaseUnavailable("connection refused")

    server = listen(known=down)
    with server.client() as client:
        client.ehlo()
        client.mail("jane@example.net")
        code, text = client.rcpt("shop@othermail.example")
    assert code == 451 and text.startswith(b"4.3.0")


class FullStore(MemoryStore):
    def put(self, key: str, raw: bytes) -> None:
        raise OSError(28, "No space left on device")


def test_store_trouble_at_data_is_451_and_nothing_is_half_spooled(listen: Callable[..., Listener]) -> None:
    server = listen(store=FullStore())
    with server.client() as client:
        client.ehlo()
        client.mail("jane@example.net")
        client.rcpt("shop@othermail.example")
        code, text = client.data(MESSAGE)
    assert code == 451 and text.startswith(b"4.3.0")
    assert server.dispatched == [] and server.spool.pending() == []


def test_too_many_recipients_is_452(listen: Callable[..., Listener]) -> None:
    server = listen(known=lambda a: True)
    with server.client() as client:
        client.ehlo()
        client.mail("jane@example.net")
        codes = [client.rcpt(f"r{n}@othermail.example")[0] for n in range(101)]
    assert codes[:100] == [250] * 100 and codes[100] == 452


class _RecordingStore(MemoryStore):
    """Remembers the thread each write ran on."""

    def __init__(self, local: bool) -> None:
        super().__init__()
        self.local = local
        self.threads: list[str] = []

    def put(self, key: str, raw: bytes) -> None:
        import threading

        self.threads.append(threading.current_thread().name)
        super().put(key, raw)


@pytest.mark.parametrize("local", [True, False])
def test_a_local_store_is_written_on_the_event_loop_and_a_remote_one_off_it(
    listen: Callable[..., Listener], local: bool
) -> None:
    """Local writes are quick and skip a thread hop per message; an S3 put may take seconds and
    must never hold up the other clients' conversations."""
    store = _RecordingStore(local)
    server = listen(store=store)
    with server.client() as client:
        assert client.sendmail("jane@example.net", ["shop@othermail.example"], MESSAGE) == {}
    loop_thread = server.server._controller._thread.name
    assert len(store.threads) == 1
    assert (store.threads[0] == loop_thread) is local
    assert LocalStore(Path("unused")).local is True
