"""Passwords, the signed-in user, and the headers every response carries.

Password hashing lives in forwarder/accounts/passwords.py (the operator CLI uses it too); its
names are re-exported here. The session cookie carries only a random session id; the session itself is a database
row checked on every request (forwarder/accounts/sessions.py), so signing out, changing or resetting
the password, or ending a session on the account page ends it for every copy of the cookie.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, redirect, request, session, url_for

from forwarder.accounts import sessions
from forwarder.accounts.passwords import MIN_PASSWORD as MIN_PASSWORD
from forwarder.accounts.passwords import PRODUCTION_HASHER as PRODUCTION_HASHER
from forwarder.accounts.passwords import dummy_hash as _dummy_hash
from forwarder.accounts.passwords import hash_password as hash_password
from forwarder.accounts.passwords import password_problem as password_problem
from forwarder.accounts.passwords import use_password_hasher as use_password_hasher
from forwarder.accounts.passwords import verify_password as verify_password
from models import User, UserSession, limits

F = TypeVar("F", bound=Callable[..., Any])

#: No inline script or style anywhere, no framing, no third-party origin (the pages load no CDN).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def lifetimes() -> sessions.Lifetimes:
    """The idle and absolute session lifetimes (app config, in seconds or as timedeltas)."""
    return sessions.Lifetimes(
        idle=_seconds(current_app.config["SESSION_IDLE_LIFETIME"]),
        absolute=_seconds(current_app.config["PERMANENT_SESSION_LIFETIME"]),
    )


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
    app.jinja_env.globals["limits"] = limits  # the forms' maxlength, written once in models/limits.py
    app.jinja_env.globals["min_password"] = MIN_PASSWORD
    app.context_processor(
        lambda: {"current_user": current_user(), "has_endpoint": lambda name: name in app.view_functions}
    )
