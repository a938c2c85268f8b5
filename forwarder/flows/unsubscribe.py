"""One-click unsubscribe (RFC 8058) tokens: signed, naming an alias and one of its contacts.

A forwarded message of a two-way alias carries ``List-Unsubscribe: <https://.../u/<token>>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The mail client POSTs to that URL without a
session or CSRF token, so the token is its own authority: ``<alias id>.<contact id>.<mac>``, the mac
an HMAC-SHA256 (first 16 bytes, in lowercase hex: a mailto local part may change case) under a
key derived from the contact keys. Tokens made
under an older key keep working while that key is listed (``othermail keys rotate``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

#: What the per-key signing secrets are derived from (forwarder/runtime.py ``unsubscribe_keys``).
KEY_PURPOSE = "othermail one-click unsubscribe"
_MAC_BYTES = 16


def _mac(key: bytes, alias_id: int, contact_id: int) -> str:
    return hmac.new(key, f"{alias_id}.{contact_id}".encode(), hashlib.sha256).digest()[:_MAC_BYTES].hex()


def sign(key: bytes, alias_id: int, contact_id: int) -> str:
    """The token for (alias, contact) under ``key`` (the current one)."""
    return f"{alias_id}.{contact_id}.{_mac(key, alias_id, contact_id)}"


def verify(keys: Sequence[bytes], token: str) -> tuple[int, int] | None:
    """``(alias id, contact id)`` when ``token`` was signed under one of ``keys``; None otherwise."""
    if not token.isascii():  # str.isdigit takes "²" and hmac.compare_digest refuses non-ASCII text
        return None
    parts = token.strip().lower().split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 18 or len(parts[1]) > 18:
        return None
    alias_id, contact_id = int(parts[0]), int(parts[1])
    if any(hmac.compare_digest(_mac(key, alias_id, contact_id), parts[2]) for key in keys):
        return alias_id, contact_id
    return None
