"""Errors the adapters raise, and what each tells the caller to do.

OthermailError
├── RetryableError           raise on: Lambda retries the event, SQS redelivers, SMTP says 451
│   ├── SendRetryable        SES or the SMTP relay throttled, failed or was unreachable
│   ├── StoreUnavailable     the raw-mail store could not be read
│   ├── MessageNotFound      the raw message is not where the event says
│   ├── DatabaseUnavailable  the database could not be reached
│   ├── DeliveryInProgress   another worker holds the claim on this delivery
│   ├── WorkerDied           a one-box worker process ended while it held a message
│   └── WorkerFailed         forwarding failed in a one-box worker process
├── PermanentSendError       SES or the relay refused this message (5xx); retrying cannot help
├── InvalidEvent             the event is not one this service understands
│   └── InvalidFeedback      an SES bounce or complaint notification is malformed
├── SettingsError            the configuration is wrong; fix it and restart
│   └── AddressInUse         a port to listen on is taken by another process
├── PackagingError           the forwarder Lambda's zip could not be built
├── PricingError*            the AWS price file is unusable or has no prices for the region
├── NotAnEvent*              a dead-letter queue message holds no event to replay
├── DnsUnavailable           DNS could not answer (in time) when checking a sender: temporary, never a verdict
├── SesError                 SES refused or could not be reached while checking a domain
├── SealError                a sealed contact address or Message-ID does not open, or a contact key is unusable
├── AccountError*            input the account rules cannot accept, with a message for the person who gave it
├── ServiceError*            a refused request: a stable ``code`` for the API, a message for people, a status
│   └── MailNotSent          the service's own mail (verification, password reset) could not be sent
│       └── RecipientCapped  that address had as many of the service's mails today as it may have
├── ApiError                 a failure the JSON API reports as ``{"error": {"code", "message"}}``
└── NoOutbox                 the local outbox folder does not exist (nothing was delivered to it yet)

``*``: also a ``ValueError``, which callers catch.

Every error othermail raises on purpose is declared here, so that ``except OthermailError`` sees them
all; the modules that raise them re-export their names (``forwarder.ops.cost.PricingError`` still
works). Two kinds are left out on purpose (tests/forwarder/test_error_hierarchy.py names them):

- ``forwarder.core.body.Unrepairable``: forwarder/core imports only the standard library, so its one
  error stays there; the pipeline turns it into an outcome, it never leaves forwarder/flows.
- the ``click.ClickException`` subclasses of forwarder/cli: how the CLI shows an error, not an error.
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


class WorkerDied(RetryableError):
    hint = "a forwarding worker process ended while it held a message; the message stays spooled and is retried"


class WorkerFailed(RetryableError):
    hint = "forwarding failed in a worker process (its log says why); the message stays spooled and is retried"


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


class PackagingError(OthermailError):
    hint = "see forwarder/ops/packaging.py"


class PricingError(OthermailError, ValueError):
    """The price file is unusable or has no prices for the region."""


class NotAnEvent(OthermailError, ValueError):
    """A dead-letter queue message that holds no event to replay."""


class DnsUnavailable(OthermailError):
    """DNS could not answer (in time): a temporary error, never a verdict."""


class SesError(OthermailError):
    """SES refused or could not be reached. ``code`` is SES's error code (or the exception's class
    name), safe to show to a user; the message may name the AWS account and is for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SealError(OthermailError):
    """A sealed text does not open with any known key, or a contact key is unusable (forwarder/adapters/sealing.py)."""


class AccountError(OthermailError, ValueError):
    """Input that cannot be accepted, with a message for the person who gave it."""


class ServiceError(OthermailError, ValueError):
    """What the account rules and the web services raise: a stable ``code`` for the API, a ``message``
    for people and the HTTP ``status`` to answer with."""

    def __init__(self, code: str, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        #: Seconds to wait, for a rate limit (the API's ``Retry-After`` header).
        self.retry_after = retry_after


class MailNotSent(ServiceError):
    """The service's own mail could not be sent; the cause is in the log, not in the message."""

    def __init__(
        self,
        code: str = "mail_unavailable",
        message: str = "We could not send the email just now: the mail service is not available. Try "
        "again in a few minutes; if it keeps failing, tell the operator.",
        status: int = 503,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(code, message, status, retry_after)


class RecipientCapped(MailNotSent):
    """The recipient had as many mails from the service today as it may have (``recipient-mail``)."""

    def __init__(self, wait: int) -> None:
        super().__init__(
            "rate_limited",
            "We could not send the email: too many emails went to that address today. Try again tomorrow.",
            429,
            wait,
        )


class ApiError(OthermailError):
    """A failure the API reports as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class NoOutbox(OthermailError):
    """The outbox folder does not exist (nothing was delivered to it yet)."""
