"""Errors the adapters raise, and what each tells the caller to do.

OthermailError
├── RetryableError           raise on: Lambda retries the event, SQS redelivers, SMTP says 451
│   ├── SendRetryable        SES or the SMTP relay throttled, failed or was unreachable
│   ├── StoreUnavailable     the raw-mail store could not be read
│   ├── MessageNotFound      the raw message is not where the event says
│   ├── DatabaseUnavailable  the database could not be reached
│   └── DeliveryInProgress   another worker holds the claim on this delivery
├── PermanentSendError       SES or the relay refused this message (5xx); retrying cannot help
├── InvalidEvent             the event is not one this service understands
│   └── InvalidFeedback      an SES bounce or complaint notification is malformed
└── SettingsError            the configuration is wrong; fix it and restart
    └── AddressInUse         a port to listen on is taken by another process
"""

from __future__ import annotations


class OthermailError(Exception):
    """Base of every error raised on purpose by othermail."""

    hint = ""

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class RetryableError(OthermailError):
    hint = "temporary: the event is retried, nothing is lost"


class SendRetryable(RetryableError):
    hint = "the outbound provider (SES, the SMTP relay, the outbox) failed or throttled; the send is retried"


class StoreUnavailable(RetryableError):
    hint = "the raw-mail store could not be read; the event is retried"


class MessageNotFound(RetryableError):
    hint = "check OTHERMAIL_S3_BUCKET and OTHERMAIL_S3_PREFIX against the SES receipt rule"


class DatabaseUnavailable(RetryableError):
    hint = "the database could not be reached; the event is retried"


class DeliveryInProgress(RetryableError):
    hint = "another worker is sending this message right now; the event is retried"


class PermanentSendError(OthermailError):
    hint = "the outbound provider (SES or the SMTP relay) rejected the message; it is recorded as failed-rejected"


class InvalidEvent(OthermailError):
    hint = "the event goes to the dead-letter queue for an operator to look at"


class InvalidFeedback(InvalidEvent):
    hint = "the SES notification is logged as skipped (invalid-event); nothing is paused or disabled"


class SettingsError(OthermailError):
    hint = "see the configuration reference, docs/configuration.md"


class AddressInUse(SettingsError):
    """``service`` (``smtp`` or ``web``) cannot listen on ``host:port``: another process does."""

    hint = "stop the process listening there, or choose another port"

    def __init__(self, service: str, host: str, port: int) -> None:
        super().__init__(f"{host}:{port} is in use")
        self.service, self.host, self.port = service, host, port
