"""Passwords, the signed-in user, and the headers every response carries.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). A session remembers the user id and when their password last changed, so changing or
resetting a password signs out every other session.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, g, redirect, request, session, url_for

from models import User

_hasher = PasswordHasher()
MIN_PASSWORD = 10
F = TypeVar("F", bound=Callable[..., Any])

#: No inline script or style anywhere, no framing, no third-party origin (the pages load no CDN).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    if not user.password_hash:
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


def _stamp(user: User) -> str:
    changed: datetime | None = getattr(user, "password_changed_at", None)
    return changed.isoformat() if changed else ""


def sign_in(user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["pw"] = _stamp(user)


def sign_out() -> None:
    session.clear()


def current_user() -> User | None:
    if "user" not in g:
        from web.db import session as db

        user = None
        uid = session.get("uid")
        if uid is not None:
            found = db().get(User, uid)
            if found is not None and found.deleted_at is None and session.get("pw") == _stamp(found):
                user = found
        g.user = user
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

    return wrapped  # type: ignore[return-value]


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
    app.after_request(_headers)
    app.context_processor(
        lambda: {"current_user": current_user(), "has_endpoint": lambda name: name in app.view_functions}
    )
