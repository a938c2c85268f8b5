"""Contacts' real addresses and the Message-ID map, sealed at rest (issue 14).

``Sealer.seal`` encrypts with AES-GCM under the current key (``"<key id>:<urlsafe base64 of nonce +
ciphertext>"``, the key id bound as associated data); ``open`` accepts any known key, so rows stay
readable while ``othermail keys rotate`` re-seals them. Rows are found by a keyed digest (HMAC-SHA256
under a lookup key derived from each key with HKDF), never by the plain text: ``digests`` gives one per
known key, the current key's first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from forwarder.errors import SealError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
LOOKUP_INFO = b"othermail lookup"


def _lookup_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LOOKUP_INFO).derive(key)


def normalize(text: str) -> str:
    """What a digest is computed over: addresses and Message-IDs compare without case or spaces."""
    return text.strip().lower()


class Sealer:
    """Seals and opens with ``keys`` (``(key id, 32 raw bytes)``, the first is the current one)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise SealError("no contact key")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise SealError("two contact keys have the same id")
        for key_id, key in keys:
            if not KEY_ID.fullmatch(key_id):
                raise SealError(f"a contact key id must be 1 to 32 letters, digits, '.', '_' or '-', not {key_id!r}")
            if len(key) != KEY_BYTES:
                raise SealError(f"contact key {key_id!r} is {len(key)} bytes, not {KEY_BYTES}")
        # built once: an AESGCM per key, and an HMAC per lookup key whose copy digests a text
        # (a copy skips the key schedule that hmac.new runs each time: about 1.7 us instead of 4)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self._lookup = [hmac.new(_lookup_key(key), digestmod=hashlib.sha256) for _, key in keys]
        self.current_id = ids[0]
        self.key_ids = tuple(ids)

    def seal(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, text.encode(), self.current_id.encode())
        return f"{self.current_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str) -> str:
        key_id, colon, body = sealed.partition(":")
        cipher = self._ciphers.get(key_id)
        if not colon or cipher is None:
            raise SealError(f"sealed with an unknown key {key_id[:32]!r}")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise SealError(f"a text sealed with key {key_id!r} does not open") from None

    def is_current(self, sealed: str) -> bool:
        return sealed.startswith(self.current_id + ":")

    def digests(self, text: str) -> list[str]:
        """The digest of ``text`` under each key, the current key's first (what lookups try)."""
        data = normalize(text).encode()
        return [_hexdigest(base, data) for base in self._lookup]

    def digest(self, text: str) -> str:
        """The current key's digest: the one stored (the other keys' are not computed)."""
        return _hexdigest(self._lookup[0], normalize(text).encode())


def _hexdigest(base: hmac.HMAC, data: bytes) -> str:
    mac = base.copy()
    mac.update(data)
    return mac.hexdigest()


def parse_keys(value: str) -> list[tuple[str, bytes]]:
    """``"id:base64url,id2:..."`` as ``(id, key)`` pairs; SealError says what is wrong, never the key."""
    keys = []
    for position, item in enumerate(value.split(","), start=1):
        key_id, colon, encoded = item.strip().partition(":")
        if not colon or not key_id:
            raise SealError(f"entry {position} is not id:key")
        try:
            key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            raise SealError(f"the key of {key_id[:32]!r} is not urlsafe base64") from None
        keys.append((key_id, key))
    Sealer(keys)  # checks ids and lengths
    return keys


def new_key_entry() -> str:
    """A fresh ``id:key`` entry to put first in OTHERMAIL_CONTACT_KEYS."""
    key_id = "k" + secrets.token_hex(4)
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def key_file(path: Path) -> list[tuple[str, bytes]]:
    """The keys in ``path`` (the one box's <data dir>/contact-keys, one ``id:key`` entry a line or
    comma-separated, the first current), made with one fresh key, mode 0600, when it does not exist."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # created 0600: never readable by others, not even between a write and a chmod
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            for _ in range(50):
                if path.read_text().strip():
                    break
                time.sleep(0.02)
        else:
            with os.fdopen(fd, "w") as out:
                out.write(new_key_entry() + "\n")
    entries = ",".join(line.strip() for line in path.read_text().splitlines() if line.strip())
    return parse_keys(entries)
