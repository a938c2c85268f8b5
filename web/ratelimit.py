"""Rate limits kept in the database, so they hold across processes and Lambda instances.

A fixed-window counter per key: the first hit of a window inserts a row, later hits increment it
with one ``UPDATE ... WHERE count < limit``, which is atomic on every backend. Over the limit the
caller gets the seconds until the window ends, for a ``Retry-After`` header.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from models import RateLimitHit


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: int


#: Defaults; each can be changed with app config ``RATE_LIMITS`` = {name: (count, seconds)}.
DEFAULT_LIMITS = {
    "signin": Limit("signin", 10, 15 * 60),
    "signup": Limit("signup", 5, 60 * 60),
    "verification": Limit("verification", 5, 60 * 60),
    "reset": Limit("reset", 5, 60 * 60),
    "alias-create": Limit("alias-create", 30, 60 * 60),
    "api": Limit("api", 600, 60),
    "domain-check": Limit("domain-check", 30, 60 * 60),  # adding a domain, "verify now" (DNS and SES calls)
    "email-verification": Limit("email-verification", 5, 60 * 60),  # the account's own address, per user
    #: every mail the service sends, per recipient address (keyed by its hash): nobody can make the
    #: service mail one mailbox more than this a day, whatever accounts ask for it
    "recipient-mail": Limit("recipient-mail", 10, 24 * 60 * 60),
}


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
        if counted.rowcount == 1:
            db.commit()
            return None
        try:
            db.add(RateLimitHit(key=key, window_start=window, count=1))
            db.commit()
            return None
        except IntegrityError:
            db.rollback()  # the row exists: either full, or another request inserted it first
        exists_full = db.get(RateLimitHit, (key, window))
        if exists_full is not None and exists_full.count >= rule.count:
            break
    # a day behind: the forwarder's daily mail limits count in this table too (forwarder/mail_limits.py)
    db.execute(delete(RateLimitHit).where(RateLimitHit.window_start < window - 86400))
    db.commit()
    return max(1, window + rule.seconds - now)
