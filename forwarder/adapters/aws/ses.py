"""Sending through Amazon SES: SESv2 SendEmail (raw content, up to 40 MB; the default) or the
classic SESv1 SendRawEmail (up to 10 MB). Throttling, 5xx and credential trouble are retryable;
any other refusal is permanent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from forwarder.errors import PermanentSendError, SendRetryable

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
