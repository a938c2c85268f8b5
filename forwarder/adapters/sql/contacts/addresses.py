"""Addresses, display names and Message-IDs as the contact book keeps them: normalized, checked,
cut to fit; and the random local part of a new contact's reverse address."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from models.limits import CONTACT_NAME_MAX_BYTES, EMAIL_MAX_LENGTH

#: 10 random bytes: 16 characters of lowercase base32, 80 bits.
REVERSE_BYTES = 10


def new_reverse_local() -> str:
    return base64.b32encode(secrets.token_bytes(REVERSE_BYTES)).decode().lower()


def normalize_address(address: str) -> str:
    return address.strip().lower()


def plausible(address: str) -> bool:
    """A normalized address with a local part and a domain, at most 254 octets (RFC 5321)."""
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and len(address.encode()) <= EMAIL_MAX_LENGTH


def normalize_message_id(message_id: str) -> str:
    """A Message-ID without its angle brackets and spaces (the digest ignores case too)."""
    return message_id.strip().strip("<>").strip()


def _cut_name(name: str) -> str:
    return name.strip().encode()[:CONTACT_NAME_MAX_BYTES].decode(errors="ignore")


def _names(people: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``{normalized address: display name cut to fit}`` of the plausible ones of ``people``."""
    names: dict[str, str] = {}
    for address, name in people:
        key = normalize_address(address)
        if plausible(key):
            names[key] = names.get(key) or _cut_name(name)
    return names
