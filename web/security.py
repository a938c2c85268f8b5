"""Passwords, the signed-in user, and the headers every response carries.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). The session cookie carries only a random session id; the session itself is a database
row checked on every request (web/services/sessions.py), so signing out, changing or resetting
the password, or ending a session on the account page ends it for every copy of the cookie.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, current_app, g, redirect, request, session, url_for

from models import User, UserSession
from web.services import sessions

#: The hasher every deployment uses: argon2-cffi's defaults (t=3, 64 MiB, p=4).
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER
MIN_PASSWORD = 10
F = TypeVar("F", bound=Callable[..., Any])

#: No inline script or style anywhere, no framing, no third-party origin (the pages load no CDN).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash new passwords (and the dummy hash) with ``hasher``; return the one it replaces.

    Only the test suite calls this, with cheap parameters: hashes made with any parameters
    verify, because Argon2 reads them from the hash itself."""
    global _hasher
    previous, _hasher = _hasher, hasher
    _dummy_hash.cache_clear()
    return previous


@functools.cache
def _dummy_hash() -> str:
    """A hash of no one's password, made with the same parameters as the real ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s. Without a user or a password hash, a dummy hash is
    verified instead, so an unknown address costs the same Argon2 work as a known one."""
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_dummy_hash(), password)
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


def lifetimes() -> sessions.Lifetimes:
    """The idle and absolute session lifetimes (app config, in seconds or as timedeltas)."""
    return sessions.Lifetimes(idle=_seconds(current_app.config["SESSION_IDLE_LIFETIME"]),
                              absolute=_seconds(current_app.config["PERMANENT_SESSION_LIFETIME"]))


def _seconds(value: int | float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=int(value))


def _client() -> tuple[str, str]:
    return request.remote_addr or "", request.headers.get("User-Agent", "")


def sign_in(user: User) -> None:
    """Start a new session (a new id: one a visitor planted before signing in is dropped)."""
    from web.db import session as db

    session.clear()
    session.permanent = True
    sessions.prune(db(), lifetimes())
    row, secret = sessions.start(db(), user, *_client())
    session["sid"] = secret
    g.user, g.user_session = user, row


def sign_out() -> None:
    from web.db import session as db

    row = current_session()
    if row is not None:
        sessions.end(db(), row)
    session.clear()
    g.user, g.user_session = None, None


def current_session() -> UserSession | None:
    """The server-side record of this request's session, if it is signed in and live."""
    current_user()
    return g.get("user_session")


def current_user() -> User | None:
    if "user" not in g:
        from web.db import session as db

        g.user, g.user_session = None, None
        if "sid" in session:
            row = sessions.live(db(), session["sid"], lifetimes(), *_client())
            if row is None:
                session.clear()  # ended or expired: the cookie goes too
            else:
                g.user, g.user_session = row.user, row
    return g.user


def signed_in_user() -> User:
    """The user of a view behind :func:`login_required`."""
    user = current_user()
    assert user is not None  # login_required ran first
    return user


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("auth.signin", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]  # same call signature as view; wraps copies its metadata


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_user_cached() is not None:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def current_user_cached() -> User | None:
    return g.get("user")


def init_app(app: Flask) -> None:
    _dummy_hash()  # made now, so that no sign-in pays for it
    app.after_request(_headers)
    app.context_processor(
        lambda: {"current_user": current_user(), "has_endpoint": lambda name: name in app.view_functions}
    )
