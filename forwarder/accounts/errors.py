"""The one error the account rules and the web services raise: a stable code for the API and a
message for people."""

from __future__ import annotations

from forwarder.errors import ServiceError

__all__ = ["ServiceError", "not_found"]


def not_found(what: str) -> ServiceError:
    return ServiceError("not_found", f"No such {what}.", 404)
