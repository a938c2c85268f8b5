"""Personal API tokens: the rules live in forwarder/accounts/tokens.py (the operator CLI uses them too)."""

from __future__ import annotations

from forwarder.accounts.tokens import (
    DISPLAY_PREFIX,
    LAST_USED_GRANULARITY,
    MAX_ACTIVE_TOKENS,
    MAX_EXPIRY_DAYS,
    NAME_MAX,
    SECRET_PREFIX,
    authenticate,
    create,
    hash_secret,
    listed,
    lookup,
    owned,
    revoke,
    revoke_all,
)

__all__ = [
    "DISPLAY_PREFIX",
    "LAST_USED_GRANULARITY",
    "MAX_ACTIVE_TOKENS",
    "MAX_EXPIRY_DAYS",
    "NAME_MAX",
    "SECRET_PREFIX",
    "authenticate",
    "create",
    "hash_secret",
    "listed",
    "lookup",
    "owned",
    "revoke",
    "revoke_all",
]
