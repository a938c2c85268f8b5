"""Page numbers of the HTML lists, read from the query string and clamped.

The route's ``type=int`` takes any size, and an OFFSET past 2**63 is an error on every backend
(a 500): like the API (``web/api/common.py``), a list has at most :data:`MAX_PAGE` pages; anything
that is not a whole number in [1, MAX_PAGE] is clamped into that range.
"""

from __future__ import annotations

from flask import request

from web.api.common import MAX_PAGE


def clamp(number: int) -> int:
    return min(max(1, number), MAX_PAGE)


def requested(name: str = "page") -> int:
    """The page number ``?<name>=`` asks for: 1 when absent, negative or not a whole number;
    :data:`MAX_PAGE` when larger."""
    raw = request.args.get(name, "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return 1
    digits = raw.lstrip("0") or "0"
    return MAX_PAGE if len(digits) > len(str(MAX_PAGE)) else clamp(int(digits))
