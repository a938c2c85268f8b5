"""Issue 12.14: STARTTLS on the SMTP listener (certificate reloaded when its files change), caps on
concurrent sessions in total and per client IP, and large DATA received into a file, not memory."""

from __future__ import annotations

import datetime
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.smtp.limits import SmtpLimits
from forwarder.adapters.smtp.tls import TlsReloader
from forwarder.adapters.stores import LocalStore
from forwarder.errors import SettingsError
from forwarder.ops.metrics import SMTP_EVENT, Metrics
from forwarder.settings import Settings

KNOWN = "shop@othermail.example"
MESSAGE = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nbody\r\n.leading dot\r\n"


def write_self_signed(cert: Path, key: Path, name: str) -> bytes:
    """A fresh key and self-signed certificate for ``name`` as PEM files; the certificate's DER."""
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate.public_bytes(serialization.Encoding.DER)


def any_certificate() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Box:
    def __init__(self, tmp_path: Path, limits: SmtpLimits, tls: TlsReloader | None) -> None:
        self.metrics = Metrics()
        self.spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
        self.dispatched: list[str] = []
        self.handler = IngressHandler(
            ("othermail.example",),
            self.spool,
            lambda a: a.lower() == KNOWN,
            self.dispatched.append,
            limits=limits,
            metrics=self.metrics,
        )
        self.listener = SmtpListener(self.handler, "127.0.0.1", 0, 10_000_000, tls=tls)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    started: list[Box] = []

    def start(limits: SmtpLimits = SmtpLimits(), tls: TlsReloader | None = None) -> Box:
        made = Box(tmp_path / f"box{len(started)}", limits, tls)
        made.listener.start()
        started.append(made)
        return made

    yield start
    for made in started:
        made.listener.stop()


# ------------------------------------------------------------------------------------ STARTTLS


def test_starttls_is_offered_and_serves_the_certificate_on_disk(box: Callable[..., Box], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    served = write_self_signed(cert, key, "mx.othermail.example")
    server = box(tls=TlsReloader(cert, key))
    with server.client() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=any_certificate())
        assert client.sock.getpeercert(binary_form=True) == served
        client.ehlo()
        assert client.sendmail("jane@example.net", [KNOWN], MESSAGE) == {}
    (spool_id,) = server.dispatched
    assert server.spool.load(spool_id)[0] == MESSAGE  # (smtplib dot-stuffs, the listener unstuffs)


def test_a_replaced_certificate_is_served_to_the_next_connection(box: Callable[..., Box], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = write_self_signed(cert, key, "mx.othermail.example")
    reloader = TlsReloader(cert, key)
    server = box(tls=reloader)
    with server.client() as client:
        client.starttls(context=any_certificate())
        assert client.sock.getpeercert(binary_form=True) == first
    # a renewal writes new files and renames them into place, as certbot's deploy hooks do
    new_cert, new_key = tmp_path / "new-cert.pem", tmp_path / "new-key.pem"
    second = write_self_signed(new_cert, new_key, "mx.othermail.example")
    new_key.replace(key)
    new_cert.replace(cert)
    assert second != first
    with server.client() as client:
        client.starttls(context=any_certificate())
        assert client.sock.getpeercert(binary_form=True) == second
    assert reloader.reloads == 1


def test_a_broken_renewal_keeps_the_last_good_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mx.othermail.example")
    reloader = TlsReloader(cert, key)
    good = reloader.context()
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf written")
    assert reloader.context() is good and reloader.reloads == 0


def test_the_certificate_settings_come_in_pairs() -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_SMTP_TLS_KEY"):
        Settings.from_env({"OTHERMAIL_SMTP_TLS_CERT": "/etc/ssl/mx.pem"})
    with pytest.raises(SettingsError, match="OTHERMAIL_SMTP_TLS_CERT"):
        Settings.from_env({"OTHERMAIL_SMTP_TLS_KEY": "/etc/ssl/mx.key"})
    both = Settings.from_env({"OTHERMAIL_SMTP_TLS_CERT": "/a.pem", "OTHERMAIL_SMTP_TLS_KEY": "/a.key"})
    assert (both.smtp_tls_cert, both.smtp_tls_key) == (Path("/a.pem"), Path("/a.key"))
    assert Settings.from_env({}).smtp_tls_cert is None


def test_unreadable_certificate_files_are_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_SMTP_TLS_CERT"):
        TlsReloader(tmp_path / "missing.pem", tmp_path / "missing.key")
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(SettingsError, match="OTHERMAIL_SMTP_TLS"):
        TlsReloader(tmp_path / "cert.pem", tmp_path / "key.pem")


def test_the_one_box_offers_starttls_when_configured(tmp_path: Path) -> None:
    from forwarder.adapters.senders import MemorySender
    from forwarder.hosts.onebox import OneBox

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    served = write_self_signed(cert, key, "mx.othermail.example")
    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
        smtp_tls_cert=cert,
        smtp_tls_key=key,
    )
    one = OneBox(settings, web_port=None, smtp_port=0, host="127.0.0.1", sender=MemorySender(), workers=1)
    started = one.start()
    try:
        with smtplib.SMTP("127.0.0.1", started.smtp_port, timeout=10) as client:
            client.starttls(context=any_certificate())
            assert client.sock.getpeercert(binary_form=True) == served
    finally:
        one.stop()


# ------------------------------------------------------------------------------------ sessions


def _connect_until_accepted(server: Box, tries: int = 200) -> smtplib.SMTP:
    """The server counts a session out when it sees the close, a moment after the client's."""
    for _ in range(tries):
        try:
            return server.client()
        except smtplib.SMTPConnectError:
            time.sleep(0.01)
    raise AssertionError("the listener never took a new session")


def test_sessions_per_ip_are_capped(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(max_sessions=0, max_sessions_per_ip=2))
    first, second = server.client(), server.client()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        server.client()
    assert refused.value.smtp_code == 421
    assert first.noop()[0] == 250 and second.noop()[0] == 250  # the open ones carry on
    first.quit()
    third = _connect_until_accepted(server)
    assert third.noop()[0] == 250
    for client in (second, third):
        client.quit()
    assert server.metrics.snapshot()[SMTP_EVENT + "session-refused"] >= 1


def test_sessions_in_total_are_capped(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(max_sessions=3, max_sessions_per_ip=0))
    clients = [server.client() for _ in range(3)]
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        server.client()
    assert refused.value.smtp_code == 421
    for client in clients:
        client.quit()
    _connect_until_accepted(server).quit()


# ------------------------------------------------------------------------------------ memory


def test_a_large_body_is_received_into_a_file_and_spooled_whole(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(spill_bytes=4096))
    body = b"".join(b"line %06d of a large message\r\n" % n for n in range(20_000))
    large = b"From: Jane <jane@example.net>\r\nSubject: big\r\n\r\n.a dot first\r\n" + body
    with server.client() as client:
        assert client.sendmail("jane@example.net", [KNOWN], large) == {}
        assert client.sendmail("jane@example.net", [KNOWN], MESSAGE) == {}  # small: in memory
    big_id, small_id = server.dispatched
    assert server.spool.load(big_id)[0] == large  # (smtplib dot-stuffs, the listener unstuffs)
    assert server.spool.load(small_id)[0] == MESSAGE
    assert server.metrics.snapshot()[SMTP_EVENT + "data-spilled"] == 1  # the large one only
    assert list(server.handler.spill_dir.iterdir()) == []  # the file is gone once spooled


def test_a_spilled_body_that_cannot_be_spooled_is_451_and_leaves_no_file(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(spill_bytes=4096))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    server.spool.accept = full  # type: ignore[method-assign]
    with server.client() as client:
        client.ehlo()
        client.mail("jane@example.net")
        client.rcpt(KNOWN)
        code, _ = client.data(b"Subject: big\r\n\r\n" + b"a line of a large message\r\n" * 20_000)
    assert code == 451 and server.dispatched == []
    assert server.metrics.snapshot()[SMTP_EVENT + "data-spilled"] == 1
    assert list(server.handler.spill_dir.iterdir()) == []


def test_partial_bodies_left_by_a_stopped_process_are_removed_at_start(tmp_path: Path) -> None:
    made = Box(tmp_path, SmtpLimits(), None)
    made.handler.spill_dir.mkdir(parents=True)
    (made.handler.spill_dir / "data-abc.eml").write_bytes(b"half a message")
    made.listener.start()
    try:
        assert list(made.handler.spill_dir.iterdir()) == []
    finally:
        made.listener.stop()


# ------------------------------------------------------------- slow sessions (review MEDIUM 5)


def _raw_session(server: Box) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.listener.port), timeout=10)
    assert sock.recv(1024).startswith(b"220")
    return sock


def _trickle_until_closed(sock: socket.socket, line: bytes, rounds: int = 100) -> bytes:
    """Send ``line`` every 0.1 s (each byte resets aiosmtpd's idle timer) until the server closes
    the connection; everything it answered. Fails when it is still open after ``rounds`` lines."""
    answered = b""
    sock.settimeout(0.1)
    for _ in range(rounds):
        time.sleep(0.1)
        try:
            sock.sendall(line)
        except OSError:
            return answered
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return answered
        if not chunk:
            return answered
        answered += chunk
    raise AssertionError(f"the session is still open after {rounds} lines: {answered[-200:]!r}")


def test_a_busy_session_ends_at_its_absolute_deadline(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(session_seconds=1, data_seconds=60))
    sock = _raw_session(server)
    try:
        answered = _trickle_until_closed(sock, b"NOOP\r\n")
    finally:
        sock.close()
    assert answered.count(b"250") >= 2 and b"421 4.4.2" in answered
    assert server.metrics.snapshot()[SMTP_EVENT + "session-timeout"] == 1
    _connect_until_accepted(server).quit()


def test_a_slow_data_transfer_ends_at_its_deadline(box: Callable[..., Box]) -> None:
    server = box(SmtpLimits(session_seconds=60, data_seconds=1))
    sock = _raw_session(server)
    try:
        sock.sendall(b"EHLO x\r\nMAIL FROM:<jane@example.net>\r\nRCPT TO:<" + KNOWN.encode() + b">\r\nDATA\r\n")
        answered = _trickle_until_closed(sock, b"x\r\n")
    finally:
        sock.close()
    assert b"354" in answered and b"421 4.4.2" in answered
    assert server.dispatched == []
    assert server.metrics.snapshot()[SMTP_EVENT + "session-timeout"] == 1


def test_near_the_global_cap_an_ip_holding_sessions_leaves_room_for_others() -> None:
    from forwarder.adapters.smtp.limits import SessionGate

    gate = SessionGate(SmtpLimits(max_sessions=10, max_sessions_per_ip=10))
    for n in range(4):  # 4 IPs x 2 sessions: 8 of 10, the reserve starts
        assert gate.enter(f"192.0.2.{n}") and gate.enter(f"192.0.2.{n}")
    assert not gate.enter("192.0.2.0")  # already holds 2
    assert gate.enter("198.51.100.1") and gate.enter("198.51.100.2")  # new IPs still get in
    assert not gate.enter("198.51.100.3")  # the hard cap
    gate.leave("192.0.2.0")
    gate.leave("192.0.2.1")
    assert gate.enter("192.0.2.0")  # below the reserve again (8): one more for an IP holding one


def test_the_deadlines_are_settings() -> None:
    default = Settings.from_env({}).smtp_limits
    assert default.session_seconds == 600 and default.data_seconds == 300
    tuned = Settings.from_env({"OTHERMAIL_SMTP_SESSION_SECONDS": "60", "OTHERMAIL_SMTP_DATA_SECONDS": "0"}).smtp_limits
    assert tuned.session_seconds == 60 and tuned.data_seconds == 0


def test_no_auth_is_offered_or_taken_without_an_authenticator(box: Callable[..., Box], tmp_path: Path) -> None:
    """Review LOW 9: after STARTTLS, EHLO listed "AUTH LOGIN PLAIN" on an MX that has no accounts."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mx.othermail.example")
    server = box(tls=TlsReloader(cert, key))
    with server.client() as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=any_certificate())
        code, text = client.ehlo()
        assert code == 250 and b"AUTH" not in text and not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGphbmUAc2VjcmV0")[0] == 502
        assert client.sendmail("jane@example.net", [KNOWN], MESSAGE) == {}
