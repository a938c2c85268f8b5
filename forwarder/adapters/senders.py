"""Outbound senders: one small interface, several implementations chosen by configuration.

``send`` takes the finished raw message, the envelope sender (the alias) and one envelope
recipient (a destination), and returns the provider's message id. It raises
:class:`~forwarder.errors.SendRetryable` for trouble that a retry can fix and
:class:`~forwarder.errors.PermanentSendError` when the provider refused this message.

    MaildirSender   the local outbox (a Maildir), the one-box default
    SmtpSender      an SMTP relay (forwarder.adapters.smtp.sender): STARTTLS or implicit TLS, AUTH
    SesV2Sender     SESv2 SendEmail with raw content, the Lambda default (SesV1Sender: SendRawEmail)
    MemorySender    a list in memory, for tests and benches

:func:`forwarder.adapters.outbound.build_sender` picks one from the settings. Every one of them passes the
same interface tests (tests/forwarder/adapters/test_sender_interface.py).
"""

from __future__ import annotations

import mailbox
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from forwarder.errors import PermanentSendError, SendRetryable, SettingsError

#: SES error codes that a later attempt can succeed after.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "AccountSendingPausedException",
        "SendingPausedException",
        # the role or the credentials are wrong: an operator fixes them and the retry (or the
        # dead-letter replay) delivers; marking the mail failed would lose it
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)


class Sender(Protocol):
    def send(self, raw: bytes, *, sender: str, recipient: str) -> str: ...


def _classify(exc: Exception) -> Exception:
    """Map a botocore failure to a retryable or a permanent error."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"SES {code}: {error.get('Message', '')}".strip()
        if code in RETRYABLE_CODES or status >= 500 or status == 429:
            return SendRetryable(message)
        return PermanentSendError(message)
    if isinstance(exc, BotoCoreError):
        return SendRetryable(f"SES unreachable: {exc}")
    return exc


class _SesSender(ABC):
    """What both SES APIs share: configuration set, error classification, the message id."""

    def __init__(self, client: Any, configuration_set: str = "") -> None:
        self._client = client
        self._configuration_set = configuration_set

    @abstractmethod
    def _request(self, raw: bytes, sender: str, recipient: str) -> dict[str, Any]:
        """The API's own request fields."""

    @abstractmethod
    def _call(self, **kwargs: Any) -> dict[str, Any]:
        """Call the API."""

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        kwargs = self._request(raw, sender, recipient)
        if self._configuration_set:
            kwargs["ConfigurationSetName"] = self._configuration_set
        try:
            return str(self._call(**kwargs)["MessageId"])
        except Exception as exc:
            raise _classify(exc) from exc


class SesV2Sender(_SesSender):
    """SESv2 ``SendEmail`` with raw content (up to 40 MB); the default."""

    def _request(self, raw: bytes, sender: str, recipient: str) -> dict[str, Any]:
        return {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": raw}},
        }

    def _call(self, **kwargs: Any) -> dict[str, Any]:
        return self._client.send_email(**kwargs)


class SesV1Sender(_SesSender):
    """SESv1 ``SendRawEmail`` (up to 10 MB), for accounts that still use the classic API."""

    def _request(self, raw: bytes, sender: str, recipient: str) -> dict[str, Any]:
        return {"Source": sender, "Destinations": [recipient], "RawMessage": {"Data": raw}}

    def _call(self, **kwargs: Any) -> dict[str, Any]:
        return self._client.send_raw_email(**kwargs)


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
