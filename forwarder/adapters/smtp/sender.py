"""The SMTP relay sender: STARTTLS or implicit TLS, AUTH, one kept connection per thread.

It keeps the :class:`forwarder.ports.Sender` interface and passes the same interface tests as
the other senders (tests/forwarder/adapters/test_sender_interface.py).
"""

from __future__ import annotations

import functools
import re
import smtplib
import ssl
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from forwarder.errors import PermanentSendError, SendRetryable, SettingsError

#: Where common relays put their queue id in the final 250 reply: Postfix and most others
#: ("2.0.0 Ok: queued as 4Bq3Jt0xyz"), Exim ("OK id=1rAbCd-000Ab1-2x"), SES SMTP ("Ok 0100018f...-000000").
_QUEUE_ID_PATTERNS = (
    re.compile(r"queued as\s+<?([A-Za-z0-9][A-Za-z0-9._@-]*)>?", re.IGNORECASE),
    re.compile(r"\bid=<?([A-Za-z0-9][A-Za-z0-9._@-]*)>?", re.IGNORECASE),
    re.compile(r"^(?:\d\.\d{1,3}\.\d{1,3}\s+)?ok:?\s+([0-9a-f]{16,}(?:-[0-9a-f]+)+)\s*$", re.IGNORECASE),
)
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")
#: How Postfix, Exim and Sendmail refuse to relay for a client that did not authenticate.
_RELAY_DENIED = re.compile(r"relay access denied|relay not permitted|relaying denied", re.IGNORECASE)
SMTP_SECURITY = ("starttls", "tls", "none")


def queue_id_from_reply(text: str) -> str | None:
    """The relay's queue id in the text of its final 250 reply, or ``None`` when it names none."""
    for pattern in _QUEUE_ID_PATTERNS:
        match = pattern.search(text.strip())
        if match:
            return match.group(1)
    return None


def wire_line_breaks(raw: bytes) -> bytes:
    """``raw`` with every line break as CRLF, the only one SMTP allows.

    A bare LF or CR passed through could end the DATA phase early at a relay that takes ``\\n.\\n``
    for ``\\r\\n.\\r\\n`` (SMTP smuggling: a forwarded message carrying a second, forged one). A
    message already in CRLF form, what the forwarder normally sends, is returned as is: counting
    is all it costs.
    """
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") == crlf and raw.count(b"\r") == crlf:
        return raw
    return _LINE_BREAKS.sub(b"\r\n", raw)


@functools.lru_cache(maxsize=4096)
def quoted_address(address: str) -> str:
    """``smtplib.quoteaddr(address)``, remembered: it runs the email package's address parser, on
    MAIL FROM and RCPT TO of every message, for the same few addresses again and again."""
    return smtplib.quoteaddr(address)


class _Tracking(smtplib.SMTP):
    """Keeps the replies ``sendmail`` does not return: MAIL's (to tell a connection the relay
    dropped while idle from a failure of this message) and the final one after DATA (the queue id).
    MAIL and RCPT are smtplib's, with the address quoted by :func:`quoted_address`."""

    mail_reply: tuple[int, bytes] | None = None
    data_reply: tuple[int, bytes] | None = None

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self.mail_reply = self.data_reply = None
        optionlist = ""
        if options and self.does_esmtp:
            if any(x.lower() == "smtputf8" for x in options):
                if not self.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
                self.command_encoding = "utf-8"
            optionlist = " " + " ".join(options)
        self.putcmd("mail", f"FROM:{quoted_address(sender)}{optionlist}")
        reply = self.getreply()
        self.mail_reply = reply
        return reply

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("rcpt", f"TO:{quoted_address(recip)}{optionlist}")
        return self.getreply()

    def data(self, msg: Any) -> tuple[int, bytes]:
        reply = super().data(msg)
        self.data_reply = reply
        return reply


class _Smtp(_Tracking):
    pass


class _SmtpSsl(_Tracking, smtplib.SMTP_SSL):
    pass


_Connection = _Smtp | _SmtpSsl


class SmtpSender:
    """An SMTP relay (Postfix, a provider's submission port, SES's SMTP interface).

    Fast and thread-safe: each thread keeps one connection (``threading.local``) and reuses it for
    every message, so a message costs MAIL, RCPT and DATA, not a TCP and TLS handshake. A relay
    closes idle connections (typically after 60-300 s); when the first command of a send finds the
    connection gone, the sender reconnects and tries once more. Nothing of the message was accepted
    at that point, so the retry cannot deliver it twice.

    ``security``:

    - ``starttls`` (port 587): STARTTLS is required. A relay that does not offer it (or a network
      that strips the offer) gets nothing, not even the envelope: the send fails as retryable.
    - ``tls`` (port 465): implicit TLS from the first byte.
    - ``none`` (port 25, a relay on the same host or network): plain text.

    TLS verifies the relay's certificate and host name with ``ssl_context`` (the system's trust
    store by default). ``username`` turns on AUTH (smtplib picks CRAM-MD5, PLAIN or LOGIN).

    The raw bytes go out untouched except for line breaks, which become CRLF (see
    :func:`wire_line_breaks`). A message with 8-bit bytes is announced with ``BODY=8BITMIME`` when the
    relay offers it (sent as it is otherwise: rewriting it would break DKIM signatures, and relays
    take 8-bit data in practice); ``SMTPUTF8`` is asked for when an envelope address is not ASCII
    (required: a relay without it refuses the message permanently) or the header holds UTF-8.

    Errors: a 4xx reply, a refused or dropped connection, a timeout, a TLS failure, refused
    credentials and a relay that wants AUTH (530, "Relay access denied") are :class:`SendRetryable`
    (nothing is lost: the message waits until the relay or the configuration is fixed); any other
    5xx reply to MAIL, RCPT or DATA is :class:`PermanentSendError`.

    ``close()`` ends every connection the sender opened (QUIT). A connection whose thread has ended
    is closed the next time a thread connects, so short-lived threads do not leak sockets.
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        timeout: float = 30,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise SettingsError("the SMTP relay needs a host name (OTHERMAIL_RELAY_HOST)")
        if security not in SMTP_SECURITY:
            raise SettingsError(
                f"the SMTP relay security must be one of {', '.join(SMTP_SECURITY)}, not {security!r} "
                "(OTHERMAIL_RELAY_SECURITY)"
            )
        self.host = host
        self.port = int(port)
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, _Connection] = {}

    def __repr__(self) -> str:
        user = f" as {self.username}" if self.username else ""
        return f"SmtpSender({self.host}:{self.port}, {self.security}{user})"

    @property
    def _where(self) -> str:
        return f"SMTP relay {self.host}:{self.port}"

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    # ---------------------------------------------------------------- sending

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        data = wire_line_breaks(bytes(raw))
        for attempt in (1, 2):
            connection, fresh = self._connection()
            try:
                options = self._mail_options(connection, data, sender, recipient)
                connection.sendmail(sender, [recipient], data, mail_options=options)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (0, b""))
                raise self._by_code(code, text, f"refused the recipient {recipient}") from exc
            except smtplib.SMTPSenderRefused as exc:
                if exc.smtp_code == 421 and not fresh and attempt == 1:
                    self._discard(connection)  # a relay closing an idle connection may say 421 first
                    continue
                if exc.smtp_code == 421:
                    self._discard(connection)
                raise self._by_code(exc.smtp_code, exc.smtp_error, f"refused the sender {sender}") from exc
            except smtplib.SMTPDataError as exc:
                if exc.smtp_code == 421:
                    self._discard(connection)
                raise self._by_code(exc.smtp_code, exc.smtp_error, "refused the message") from exc
            except smtplib.SMTPServerDisconnected as exc:
                self._discard(connection)
                if not fresh and attempt == 1 and connection.mail_reply is None:
                    continue  # the kept connection was closed by the relay: reconnect once
                raise SendRetryable(f"{self._where} closed the connection: {exc}") from exc
            except smtplib.SMTPResponseException as exc:
                self._discard(connection)
                raise self._by_code(exc.smtp_code, exc.smtp_error, "failed") from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._discard(connection)
                raise SendRetryable(f"{self._where} failed: {exc.__class__.__name__}: {exc}") from exc
            reply = connection.data_reply
            reply_text = reply[1].decode("utf-8", "replace") if reply else ""
            return queue_id_from_reply(reply_text) or uuid.uuid4().hex
        raise AssertionError("unreachable")  # pragma: no cover

    def _mail_options(self, connection: _Connection, data: bytes, sender: str, recipient: str) -> list[str]:
        options: list[str] = []
        if not data.isascii() and connection.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (sender.isascii() and recipient.isascii()):
            if not connection.has_extn("smtputf8"):
                raise PermanentSendError(
                    f"{self._where} does not offer SMTPUTF8, which the address {sender} -> {recipient} needs"
                )
            options.append("SMTPUTF8")
        elif connection.has_extn("smtputf8") and _utf8_header(data):
            options.append("SMTPUTF8")
        return options

    def _by_code(self, code: int, text: bytes | str, what: str) -> Exception:
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        message = f"{self._where} {what}: {code} {reply}".strip()
        if code == 530 or _RELAY_DENIED.search(reply):
            # The relay wants AUTH (or other credentials) from us: a settings problem, not this
            # message's. Retrying keeps every message until the operator fixes it.
            return SendRetryable(f"{message} (check OTHERMAIL_RELAY_USERNAME and OTHERMAIL_RELAY_PASSWORD)")
        if 500 <= code <= 599:
            return PermanentSendError(message)
        return SendRetryable(message)  # 4xx, and any reply that makes no sense here

    # ---------------------------------------------------------------- connections

    def _connection(self) -> tuple[_Connection, bool]:
        """This thread's connection, and whether it was opened just now."""
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            return connection, False
        connection = self._connect()
        self._local.connection = connection
        current = threading.current_thread()
        with self._lock:
            ended = [thread for thread in self._open if not thread.is_alive()]
            stale = [self._open.pop(thread) for thread in ended]
            self._open[current] = connection
        for old in stale:
            old.close()
        return connection, True

    def _connect(self) -> _Connection:
        connection: _Connection | None = None
        try:
            if self.security == "tls":
                connection = _SmtpSsl(
                    self.host, self.port, self.local_hostname, timeout=self.timeout, context=self._context()
                )
            else:
                connection = _Smtp(self.host, self.port, self.local_hostname, timeout=self.timeout)
            connection.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise SendRetryable(
                        f"{self._where} does not offer STARTTLS, and OTHERMAIL_RELAY_SECURITY=starttls "
                        "forbids sending in clear text (a relay without TLS needs =none; a network that "
                        "strips STARTTLS is an attack)"
                    )
                connection.starttls(context=self._context())
                connection.ehlo()
            if self.username:
                connection.login(self.username, self._password)
            return connection
        except BaseException as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, SendRetryable):
                raise
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                raise SendRetryable(
                    f"SMTP relay refused the credentials of {self.username!r} at {self.host}:{self.port}: "
                    f"{exc.smtp_code} {exc.smtp_error.decode('utf-8', 'replace')} "  # type: ignore[union-attr]  # smtplib raises it with the reply's bytes
                    "(check OTHERMAIL_RELAY_USERNAME and OTHERMAIL_RELAY_PASSWORD)"
                ) from exc
            if isinstance(exc, smtplib.SMTPNotSupportedError):
                raise SendRetryable(f"{self._where} does not offer AUTH, but a user name is set: {exc}") from exc
            if isinstance(exc, ssl.SSLError):
                raise SendRetryable(f"{self._where}: TLS failed: {exc}") from exc
            if isinstance(exc, (smtplib.SMTPException, OSError)):
                raise SendRetryable(f"{self._where}: connecting failed: {exc.__class__.__name__}: {exc}") from exc
            raise

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            current = threading.current_thread()
            if self._open.get(current) is connection:
                del self._open[current]

    def close(self) -> None:
        """Say QUIT on every connection this sender opened. The sender stays usable: a later send
        connects again."""
        with self._lock:
            connections = list(self._open.values())
            self._open.clear()
        for connection in connections:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                connection.close()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _utf8_header(data: bytes) -> bool:
    """Whether the header holds 8-bit text that is UTF-8 (RFC 6532), which SMTPUTF8 announces."""
    end = data.find(b"\r\n\r\n")
    header = data if end < 0 else data[:end]
    if header.isascii():
        return False
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
