"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").

A browser that signed in to an account gets a signed cookie naming that account (by a keyed hash,
not its address) and a random device id. Its later sign-in attempts for that account are counted
against that device alone (:func:`web.ratelimit.claim_signin`), so an attacker's failures from
elsewhere, which make the account-wide backoff grow, never keep the owner out; a device that
guesses waits on its own backoff. One cookie holds the entries of the last few accounts signed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "othermail_device"
MAX_AGE = 365 * 24 * 60 * 60
MAX_ACCOUNTS = 5


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="othermail-device-cookie")


def _account_tag(address: str) -> str:
    key = ("othermail-device-account:" + current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]


def _entries() -> list[list[str]]:
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 4096:
        return []
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return []
    if not isinstance(data, list):
        return []
    return [
        entry
        for entry in data
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
    ]


def device_for(address: str) -> str | None:
    """The device id of this browser's valid device cookie for ``address``, or None."""
    tag = _account_tag(address)
    return next((device for account, device in _entries() if hmac.compare_digest(account, tag)), None)


def remember(response: Response, address: str) -> None:
    """After a successful sign-in to ``address``: give this browser (or keep) its device id for it."""
    tag = _account_tag(address)
    entries = _entries()
    device = next((d for account, d in entries if account == tag), None) or secrets.token_urlsafe(16)
    entries = [[tag, device]] + [entry for entry in entries if entry[0] != tag]
    response.set_cookie(
        COOKIE,
        _serializer().dumps(entries[:MAX_ACCOUNTS]),
        max_age=MAX_AGE,
        httponly=True,
        secure=current_app.config.get("SESSION_COOKIE_SECURE", True),
        samesite="Lax",
    )
