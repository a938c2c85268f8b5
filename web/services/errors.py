"""The one error the services raise (defined with the account rules, which raise it too)."""

from __future__ import annotations

from forwarder.accounts.errors import ServiceError, not_found

__all__ = ["ServiceError", "not_found"]
