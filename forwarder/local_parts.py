"""Which local parts an alias may have: :func:`check_local_part`, without the ORM.

Outside ``forwarder.accounts`` on purpose: that package's ``__init__`` works on ORM sessions, and
the forwarder's SQL (which creates catch-all aliases on a user's domain) imports this on the
Lambda's cold start, which pays for every import (issue 15). ``forwarder.accounts`` re-exports it.
"""

from __future__ import annotations

import re

from forwarder.errors import AccountError
from models.limits import LOCAL_PART_MAX_LENGTH

LOCAL_PART = re.compile(rf"^[a-z0-9](?:[a-z0-9._-]{{0,{LOCAL_PART_MAX_LENGTH - 2}}}[a-z0-9])?$")
RESERVED = frozenset(
    {
        "postmaster",
        "abuse",
        "hostmaster",
        "webmaster",
        "admin",
        "administrator",
        "root",
        "security",
        "noreply",
        "no-reply",
        "mailer-daemon",
        "support",
        "info",
        "bounce",
        "bounces",
        "dmarc",
    }
)


def check_local_part(local_part: str) -> str:
    value = local_part.strip().lower()
    if not LOCAL_PART.match(value) or ".." in value:
        raise AccountError(
            "an alias may hold letters, digits, dots, dashes and underscores, start and end with a "
            f"letter or digit, and be at most {LOCAL_PART_MAX_LENGTH} characters"
        )
    if value in RESERVED:
        raise AccountError(f"{value!r} is reserved")
    return value
