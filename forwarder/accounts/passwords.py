"""Password hashing and the password rule, shared by the web app and the operator CLI.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile).
"""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

if TYPE_CHECKING:
    from models import User

#: The hasher every deployment uses: argon2-cffi's defaults (t=3, 64 MiB, p=4).
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash new passwords (and the dummy hash) with ``hasher``; return the one it replaces.

    Only the test suite calls this, with cheap parameters: hashes made with any parameters
    verify, because Argon2 reads them from the hash itself."""
    global _hasher
    previous, _hasher = _hasher, hasher
    dummy_hash.cache_clear()
    return previous


@functools.cache
def dummy_hash() -> str:
    """A hash of no one's password, made with the same parameters as the real ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s. Without a user or a password hash, a dummy hash is
    verified instead, so an unknown address costs the same Argon2 work as a known one."""
    if user is None or not user.password_hash:
        try:
            _hasher.verify(dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def password_problem(password: str, confirm: str | None = None) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > 1024:
        return "That password is too long."
    if confirm is not None and password != confirm:
        return "The two passwords differ."
    return None
