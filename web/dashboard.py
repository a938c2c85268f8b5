"""The signed-in user's overview: counts, a 30-day chart drawn server-side as SVG, the latest mail.

The chart is plain SVG markup built here and in the template: no script, no inline style (the CSP
allows neither); bars take their colours from the ``forwarded`` and ``blocked`` classes in
style.css and carry a ``<title>`` each, which browsers show as a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import Blueprint, render_template

from web.db import services, session
from web.security import current_user, login_required
from web.services import activity
from web.services import aliases as alias_service
from web.services import destinations as destination_service

bp = Blueprint("dashboard", __name__)
DAYS = 30
WIDTH, HEIGHT = 640, 200
LEFT, TOP, BOTTOM = 32, 12, 22  # room for the scale, the top and the dates
RECENT = 15


@dataclass(frozen=True)
class Bar:
    """One day's group: a slot to hover, a forwarded bar and a blocked bar."""

    title: str
    x: float
    slot: float
    width: float
    forwarded_y: float
    forwarded_h: float
    blocked_x: float
    blocked_y: float
    blocked_h: float
    label: str  # a date under the last day and every seventh before it, else ""


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    left: int
    top: int
    base: int
    peak: int


def chart(days: Sequence[activity.Day]) -> Chart:
    """Geometry for ``days`` (oldest first): bar heights scaled to the busiest day."""
    peak = max([max(d.forwarded, d.blocked) for d in days] + [1])
    base = HEIGHT - BOTTOM
    room = base - TOP
    slot = (WIDTH - LEFT) / max(1, len(days))
    width = round((slot - 4) / 2, 2)
    bars = []
    for n, day in enumerate(days):
        x = round(LEFT + n * slot, 2)
        fh, bh = round(room * day.forwarded / peak, 2), round(room * day.blocked / peak, 2)
        bars.append(
            Bar(
                title=f"{day.day.isoformat()}: {day.forwarded} forwarded, {day.blocked} blocked",
                x=x,
                slot=round(slot, 2),
                width=width,
                forwarded_y=round(base - fh, 2),
                forwarded_h=fh,
                blocked_x=round(x + 2 + width, 2),
                blocked_y=round(base - bh, 2),
                blocked_h=bh,
                label=day.day.strftime("%b %d") if (len(days) - 1 - n) % 7 == 0 else "",
            )
        )
    return Chart(bars, WIDTH, HEIGHT, LEFT, TOP, base, peak)


@bp.get("/dashboard")
@login_required
def index():
    user = current_user()
    assert user is not None
    db = session()
    days = activity.daily(db, user, DAYS)
    destinations = destination_service.listed(db, user)
    verified = sum(1 for d in destinations if d.is_verified)
    return render_template(
        "dashboard/index.html",
        forwarding=alias_service.forwarding_count(services(), db, user),
        live=alias_service.live_count(db, user),
        cap=services().max_live_aliases,
        verified=verified,
        unverified=len(destinations) - verified,
        paused=destination_service.paused(destinations),
        forwarded=sum(d.forwarded for d in days),
        blocked=sum(d.blocked for d in days),
        chart=chart(days),
        days=DAYS,
        recent=activity.latest(db, user, RECENT),
    )
