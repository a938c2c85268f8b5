"""The one error the account rules and the web services raise: a stable code for the API and a
message for people."""

from __future__ import annotations


class ServiceError(ValueError):
    def __init__(self, code: str, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        #: Seconds to wait, for a rate limit (the API's ``Retry-After`` header).
        self.retry_after = retry_after


def not_found(what: str) -> ServiceError:
    return ServiceError("not_found", f"No such {what}.", 404)
