"""An SMTP server for tests: aiosmtpd on 127.0.0.1 that records what it receives.

    sink = SmtpSink(tls="starttls", certificate=self_signed_certificate(tmp_path),
                    users={"relay-user": "relay-secret"})
    with sink:
        sender = SmtpSender("127.0.0.1", sink.port, "starttls", "relay-user", "relay-secret",
                            ssl_context=sink.client_context())
        sender.send(raw, sender="a@othermail.example", recipient="b@real.example")
    [delivery] = sink.deliveries          # mail_from, rcpt_tos, content bytes, tls, login, queue_id

What it can do:

- ``tls="none" | "starttls" | "implicit"``: plain text, STARTTLS offered, or TLS from the first byte
  (port 465 style), with a :class:`Certificate` made by :func:`self_signed_certificate` (valid for
  ``localhost`` and ``127.0.0.1``, so clients verify it for real with :meth:`SmtpSink.client_context`).
- ``users``: AUTH (PLAIN, LOGIN) with these user names and passwords, required before MAIL (530
  otherwise). With STARTTLS, AUTH is offered only after it, like real submission servers.
- :meth:`SmtpSink.reject_next`: answer the next MAIL, RCPT or DATA with a given reply (``451`` to
  test retries, ``550`` for rejections), once; the message is not recorded.
- :meth:`SmtpSink.restart`: stop and start on the same port, dropping every open connection.
- Every accepted message gets a queue id, announced the way Postfix does
  (``250 2.0.0 Ok: queued as <id>``) and kept in :attr:`Delivery.queue_id`; :attr:`Delivery.connection`
  tells which client connection carried it (to check that a client reuses its connection).
- ``smtputf8=False`` stops offering SMTPUTF8 (8BITMIME is always offered).

The server runs in its own thread (aiosmtpd's ``Controller``); the lists are guarded by a lock, and a
message is recorded before its 250 reply is sent, so a client that got 250 finds it recorded.
``stop()`` (or leaving the ``with`` block) must be called: tests stop what they start.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import logging
import ssl
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.factories import free_tcp_port

# aiosmtpd itself sets the deprecated Session.login_data after every AUTH and logs a warning about it.
logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())

Tls = Literal["none", "starttls", "implicit"]
Stage = Literal["mail", "rcpt", "data"]
HOST = "127.0.0.1"
_CONNECTION_ATTRIBUTE = "_othermail_sink_connection"  # set on aiosmtpd's per-connection SMTP object


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its private key, on disk."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate alone and checks the host name."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def self_signed_certificate(directory: Path, common_name: str = "localhost") -> Certificate:
    """A fresh self-signed certificate for ``localhost`` and ``127.0.0.1``, written to ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(common_name), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "sink-cert.pem", directory / "sink-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_path, key_path)


@dataclass(frozen=True)
class Delivery:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...]  # as the client gave them, upper-cased: ("BODY=8BITMIME", "SIZE=...")
    tls: bool  # the message travelled over TLS (STARTTLS or implicit)
    login: str | None  # the AUTH user name, None without AUTH
    queue_id: str
    connection: int  # which client connection carried it, numbered from 1 in order of first MAIL


@dataclass(frozen=True)
class _Rejection:
    stage: Stage
    reply: str


class _Handler:
    """aiosmtpd handler hooks; every reply goes through the sink's state."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        self.sink._count_mail(server)
        if self.sink.users and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self.sink._take_rejection("mail")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.sink._take_rejection("rcpt")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.sink._take_rejection("data")
        if reply is not None:
            return reply
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        content = envelope.original_content if envelope.original_content is not None else b""
        queue_id = self.sink._record(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(content),
            mail_options=tuple(envelope.mail_options),
            tls=tls,
            login=login,
            connection=getattr(server, _CONNECTION_ATTRIBUTE, 0),
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _Controller(Controller):
    """aiosmtpd's Controller, keeping the per-connection SMTP objects so that stop() can drop them
    (aiosmtpd's own stop leaves accepted sockets open until they are garbage-collected)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        protocol = super().factory()
        self.protocols.add(protocol)
        return protocol

    async def drop_connections(self) -> None:
        for protocol in list(self.protocols):
            for transport in (protocol.transport, getattr(protocol, "_original_transport", None)):
                if transport is not None and not transport.is_closing():
                    transport.abort()
        for _ in range(3):  # let the transports' connection_lost callbacks run
            await asyncio.sleep(0)


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records every message it accepts (see the module doc).

    ``port=0`` picks a free port once; :meth:`restart` keeps it.
    """

    def __init__(
        self,
        *,
        tls: Tls = "none",
        certificate: Certificate | None = None,
        users: Mapping[str, str] | None = None,
        port: int = 0,
        data_size_limit: int = 64 * 1024 * 1024,
        smtputf8: bool = True,
    ) -> None:
        if tls != "none" and certificate is None:
            raise ValueError(f"tls={tls!r} needs a certificate (self_signed_certificate(tmp_path))")
        self.host = HOST
        self.port = port or free_tcp_port(HOST)
        self.tls: Tls = tls
        self.certificate = certificate
        self.users = dict(users or {})
        self.data_size_limit = data_size_limit
        self.smtputf8 = smtputf8
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._rejections: deque[_Rejection] = deque()
        self._mail_commands = 0
        self._ids = itertools.count(1)
        self._connections = itertools.count(1)
        self._controller: _Controller | None = None

    # ---------------------------------------------------------------- life cycle

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise RuntimeError("the sink is already running")
        server_context = self.certificate.server_context() if self.certificate is not None else None
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "sink.test",
            "data_size_limit": self.data_size_limit,
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.tls == "starttls":
            kwargs["tls_context"] = server_context
        elif self.tls == "implicit":
            kwargs["ssl_context"] = server_context
        if self.users:
            kwargs["authenticator"] = self._authenticate
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS (or none, for tests of plain
            # AUTH) it must be told that AUTH may go ahead. AUTH is then required by handle_MAIL,
            # not by aiosmtpd's auth_required (which warns when combined with that).
            kwargs["auth_require_tls"] = self.tls == "starttls"
        controller = _Controller(_Handler(self), **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection. Safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            try:
                asyncio.run_coroutine_threadsafe(controller.drop_connections(), controller.loop).result(timeout=5)
            finally:
                controller.stop()

    def restart(self) -> None:
        """Stop and start again on the same port: clients' kept connections are dropped. What was
        recorded stays."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- what the tests use

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for clients that trusts this sink's certificate (and nothing else)."""
        if self.certificate is None:
            raise ValueError("this sink has no certificate")
        return self.certificate.client_context()

    @property
    def deliveries(self) -> list[Delivery]:
        """Every accepted message, in order (a copy)."""
        with self._lock:
            return list(self._deliveries)

    @property
    def mail_commands(self) -> int:
        """How many MAIL commands reached the handler, accepted or not (0: no envelope was sent)."""
        with self._lock:
            return self._mail_commands

    def reject_next(self, code: int, text: str = "", *, at: Stage = "data") -> None:
        """Answer the next ``at`` command (MAIL, RCPT or DATA) with ``code text``, once.

        Several calls queue up, each used by the next command of its stage.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"a rejection is a 4xx or 5xx reply, not {code}")
        reply = f"{code} {text or ('4.3.0 Try again later' if code < 500 else '5.7.1 Rejected')}"
        with self._lock:
            self._rejections.append(_Rejection(at, reply))

    def clear(self) -> None:
        """Forget what was recorded and any pending rejection."""
        with self._lock:
            self._deliveries.clear()
            self._rejections.clear()
            self._mail_commands = 0

    # ---------------------------------------------------------------- called by the handler

    def _take_rejection(self, stage: Stage) -> str | None:
        with self._lock:
            for rejection in self._rejections:
                if rejection.stage == stage:
                    self._rejections.remove(rejection)
                    return rejection.reply
        return None

    def _count_mail(self, server: SMTP) -> None:
        with self._lock:
            self._mail_commands += 1
            if not hasattr(server, _CONNECTION_ATTRIBUTE):
                setattr(server, _CONNECTION_ATTRIBUTE, next(self._connections))

    def _record(self, **fields: Any) -> str:
        with self._lock:
            queue_id = f"SINK{next(self._ids):06X}"
            self._deliveries.append(Delivery(queue_id=queue_id, **fields))
        return queue_id

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in self.users and self.users[login] == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)
