"""Rate limits kept in the database, so they hold across processes and Lambda instances.

A fixed-window counter per key: the first hit of a window inserts a row, later hits increment it
with one ``UPDATE ... WHERE count < limit``, which is atomic on every backend. Over the limit the
caller gets the seconds until the window ends, for a ``Retry-After`` header.

Sign-in has a second kind of limit: a per-account backoff (:func:`claim_signin`). After a few
failed sign-ins for one address, from whatever IPs, each further attempt waits exponentially
longer than the last (not a lockout: the wait is capped and ends by itself), and a success resets
it. It counts unknown addresses exactly like known ones, so it tells nobody which exist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from models import RateLimitHit, SigninFailure, utcnow


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: int


#: Defaults; each can be changed with app config ``RATE_LIMITS`` = {name: (count, seconds)}.
DEFAULT_LIMITS = {
    "signin": Limit("signin", 10, 15 * 60),  # per client and address
    "signin-ip": Limit("signin-ip", 50, 15 * 60),  # per client, over every address (password spraying)
    "signup": Limit("signup", 5, 60 * 60),
    "verification": Limit("verification", 5, 60 * 60),
    "reset": Limit("reset", 5, 60 * 60),
    "alias-create": Limit("alias-create", 30, 60 * 60),
    "api": Limit("api", 600, 60),
    "domain-check": Limit("domain-check", 30, 60 * 60),  # adding a domain, "verify now" (DNS and SES calls)
    "email-verification": Limit("email-verification", 5, 60 * 60),  # the account's own address, per user
    "unsubscribe": Limit("unsubscribe", 60, 60 * 60),  # one-click unsubscribe links (/u/<token>), per client
    #: every mail the service sends, per recipient address (keyed by its hash): nobody can make the
    #: service mail one mailbox more than this a day, whatever accounts ask for it
    "recipient-mail": Limit("recipient-mail", 10, 24 * 60 * 60),
    #: password-reset mails per recipient, within the above: a flood of reset requests for
    #: someone's address cannot use up the cap their other service mail needs
    "reset-mail": Limit("reset-mail", 3, 24 * 60 * 60),
    #: security notices per recipient, apart from ``recipient-mail``: other mail (sign-ups, resets)
    #: cannot use up the room of the notice that tells the owner of a change
    "security-notice-mail": Limit("security-notice-mail", 20, 24 * 60 * 60),
    #: "New sign-in" notices per recipient, within the above: sign-ins from new browsers cannot
    #: use up the room of the notice of a change that follows them
    "signin-notice-mail": Limit("signin-notice-mail", 10, 24 * 60 * 60),
}


@dataclass(frozen=True)
class Backoff:
    """``free`` failures cost nothing; after them attempt n waits ``base * 2**(n - free)`` seconds
    after the last failure, at most ``most``."""

    free: int
    base: int
    most: int

    def wait(self, failures: int) -> int:
        if failures < self.free:
            return 0
        return min(self.most, self.base * 2 ** min(failures - self.free, 32))


#: Default of app config ``SIGNIN_BACKOFF`` = (free, base seconds, longest wait in seconds).
DEFAULT_SIGNIN_BACKOFF = Backoff(free=5, base=30, most=60 * 60)
#: Failures older than this are forgotten: the count starts again.
FAILURES_FORGOTTEN_AFTER = timedelta(days=1)


def client_key(address: str | None) -> str:
    """The key a client is counted under: its IPv4 address, or the /64 network of an IPv6 one (a
    single host is usually handed a whole /64, so counting its addresses one by one counts nothing)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def limit(name: str) -> Limit:
    configured = current_app.config.get("RATE_LIMITS", {}).get(name)
    if configured is not None:
        return Limit(name, int(configured[0]), int(configured[1]))
    return DEFAULT_LIMITS[name]


def hit(name: str, who: str) -> int | None:
    """Count one attempt; None when allowed, else the seconds to wait."""
    from web.db import session

    rule = limit(name)
    now = int(time.time())
    window = now - now % rule.seconds
    key = f"{name}:{who}"[:200]
    db = session()
    for _ in range(2):
        counted = db.execute(
            update(RateLimitHit)
            .where(RateLimitHit.key == key, RateLimitHit.window_start == window, RateLimitHit.count < rule.count)
            .values(count=RateLimitHit.count + 1)
        )
        if counted.rowcount == 1:  # type: ignore[attr-defined]  # DML returns a CursorResult
            db.commit()
            return None
        # no row counted: it is full, or there is none yet (or another request inserted it first);
        # read it fresh rather than add a second instance of a row this session already holds
        existing = db.get(RateLimitHit, (key, window), populate_existing=True)
        if existing is not None:
            if existing.count >= rule.count:
                break
            continue
        try:
            db.add(RateLimitHit(key=key, window_start=window, count=1))
            db.commit()
            return None
        except IntegrityError:
            db.rollback()
    # a day behind: the forwarder's daily mail limits count in this table too (forwarder/flows/mail_limits.py)
    db.execute(delete(RateLimitHit).where(RateLimitHit.window_start < window - 86400))
    db.commit()
    return max(1, window + rule.seconds - now)


def signin_backoff() -> Backoff:
    configured = current_app.config.get("SIGNIN_BACKOFF")
    if configured is not None:
        return Backoff(*(int(value) for value in configured))
    return DEFAULT_SIGNIN_BACKOFF


def _account_key(address: str, device: str | None = None) -> str:
    if device is not None:
        return hashlib.sha256(f"signin-device:{device}:{address}".encode()).hexdigest()
    return hashlib.sha256(f"signin:{address}".encode()).hexdigest()


def claim_signin(address: str, device: str | None = None) -> int | None:
    """Count a sign-in attempt for ``address`` (known or not) before the password is checked:
    None when it may go ahead, else the seconds to wait.

    ``device`` is the id of a device cookie from an earlier successful sign-in to this account
    (OWASP's "device cookies", :mod:`web.devices`): such a browser's attempts are counted against
    that device only, so failures from elsewhere never shut the owner out (backoff, not lockout),
    while the account-wide count still makes every unknown browser wait.

    The attempt is counted as a failure at once and :func:`signin_succeeded` takes it back, so
    parallel guesses cannot slip in between a check and its count: the count moves by a
    compare-and-set on ``failures``, and a request that loses the race waits a second.
    """
    from web.db import session

    db = session()
    key = _account_key(address, device)
    now = utcnow()
    row = db.get(SigninFailure, key)
    if row is None:
        try:
            db.add(SigninFailure(key=key, failures=1, last_failure_at=now))
            db.commit()
            return None
        except IntegrityError:
            db.rollback()
            return 1
    seen = row.failures
    failures = 0 if now - row.last_failure_at > FAILURES_FORGOTTEN_AFTER else seen
    remaining = (row.last_failure_at + timedelta(seconds=signin_backoff().wait(failures)) - now).total_seconds()
    if remaining > 0:
        db.rollback()
        return max(1, math.ceil(remaining))
    moved = db.execute(  # type: ignore[attr-defined]  # DML returns a CursorResult
        update(SigninFailure)
        .where(SigninFailure.key == key, SigninFailure.failures == seen)
        .values(failures=failures + 1, last_failure_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    return None if moved == 1 else 1


def signin_succeeded(address: str, device: str | None = None) -> None:
    """The password was right: forget the address's failures, the device's if it had a device
    cookie, and everyone's long-forgotten ones."""
    from web.db import session

    db = session()
    keys = {_account_key(address), _account_key(address, device)}
    db.execute(
        delete(SigninFailure).where(SigninFailure.key.in_(sorted(keys))).execution_options(synchronize_session=False)
    )
    db.execute(
        delete(SigninFailure)
        .where(SigninFailure.last_failure_at < utcnow() - FAILURES_FORGOTTEN_AFTER)
        .execution_options(synchronize_session=False)
    )
    db.commit()
