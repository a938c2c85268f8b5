"""Outbound senders: one small interface, several implementations chosen by configuration.

``send`` takes the finished raw message, the envelope sender (the alias) and one envelope
recipient (a destination), and returns the provider's message id. It raises
:class:`~forwarder.errors.SendRetryable` for trouble that a retry can fix and
:class:`~forwarder.errors.PermanentSendError` when the provider refused this message.

    MaildirSender   the local outbox (a Maildir), the one-box default
    SmtpSender      an SMTP relay (forwarder.adapters.smtp.sender): STARTTLS or implicit TLS, AUTH
    SesV2Sender     SESv2 SendEmail with raw content, the Lambda default (SesV1Sender: SendRawEmail);
                    both in forwarder/adapters/aws/ses.py
    MemorySender    a list in memory, for tests and benches

:func:`forwarder.adapters.outbound.build_sender` picks one from the settings. Every one of them passes the
same interface tests (tests/forwarder/adapters/test_sender_interface.py).
"""

from __future__ import annotations

import mailbox
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from forwarder.errors import SendRetryable, SettingsError


@dataclass(frozen=True)
class SentMessage:
    sender: str
    recipient: str
    raw: bytes
    message_id: str


class MemorySender:
    """Keeps what it sends in a list; tests and benches use it."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self._lock = threading.Lock()

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        message_id = uuid.uuid4().hex
        with self._lock:
            self.sent.append(SentMessage(sender, recipient, bytes(raw), message_id))
        return message_id


class MaildirSender:
    """The local outbox: a Maildir any mail client can open, one file per delivered message.

    The envelope recipient is recorded the way delivering servers do, in a ``Delivered-To`` line
    put in front of the message.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._maildir = mailbox.Maildir(str(self.path), create=True)
        except OSError as exc:
            raise SettingsError(f"the outbox {self.path} cannot be used: {exc}") from exc

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
        try:
            return self._maildir.add(b"Delivered-To: " + recipient.encode("utf-8") + eol + raw)
        except OSError as exc:
            raise SendRetryable(f"writing to the outbox {self.path} failed: {exc}") from exc
