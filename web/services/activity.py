"""What an alias received: the delivery log read per alias and per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from forwarder.core import Outcome
from models import Alias, Delivery, User, utcnow

BLOCKED = tuple(o.value for o in Outcome if o.blocked)


@dataclass(frozen=True)
class Day:
    day: date
    forwarded: int
    blocked: int


def recent(db: Session, alias: Alias, limit: int = 50) -> list[Delivery]:
    return list(
        db.scalars(
            select(Delivery)
            .options(selectinload(Delivery.destination))
            .where(Delivery.alias_id == alias.id)
            .order_by(Delivery.created_at.desc(), Delivery.id.desc())
            .limit(limit)
        )
    )


def latest(db: Session, user: User, limit: int = 20) -> list[Delivery]:
    """The newest deliveries across every alias of ``user`` (deleted aliases included)."""
    return list(
        db.scalars(
            select(Delivery)
            .options(selectinload(Delivery.destination))
            .join(Alias, Alias.id == Delivery.alias_id)
            .where(Alias.user_id == user.id)
            .order_by(Delivery.created_at.desc(), Delivery.id.desc())
            .limit(limit)
        )
    )


def totals(db: Session, alias: Alias) -> dict[str, int]:
    rows = db.execute(
        select(Delivery.outcome, func.count()).where(Delivery.alias_id == alias.id).group_by(Delivery.outcome)
    ).all()
    counts = dict(rows)
    return {
        "forwarded": counts.get(Outcome.FORWARDED.value, 0),
        "blocked": sum(n for outcome, n in counts.items() if outcome in BLOCKED),
    }


def daily(db: Session, user: User, days: int = 30, now: datetime | None = None) -> list[Day]:
    """Forwarded and blocked deliveries per day over the last ``days`` days, oldest first."""
    now = now or utcnow()
    start = datetime.combine((now - timedelta(days=days - 1)).date(), datetime.min.time(), tzinfo=now.tzinfo)
    rows = db.execute(
        select(Delivery.created_at, Delivery.outcome)
        .join(Alias, Alias.id == Delivery.alias_id)
        .where(Alias.user_id == user.id, Delivery.created_at >= start)
    ).all()
    forwarded: dict[date, int] = {}
    blocked: dict[date, int] = {}
    for created_at, outcome in rows:
        day = created_at.date()
        if outcome == Outcome.FORWARDED.value:
            forwarded[day] = forwarded.get(day, 0) + 1
        elif outcome in BLOCKED:
            blocked[day] = blocked.get(day, 0) + 1
    first = start.date()
    return [Day(d, forwarded.get(d, 0), blocked.get(d, 0)) for d in (first + timedelta(n) for n in range(days))]
