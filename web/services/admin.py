"""What an operator sees: every user, every alias, the latest outcomes and totals per outcome.

Destination addresses are never shown here: the outcome list carries the alias address, the
outcome and its reason, and any address in a reason other than the alias's own is masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forwarder.core import Outcome
from models import Alias, Delivery, User, utcnow

PER_PAGE = 50
RECENT = 100
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_ORDER = {o.value: n for n, o in enumerate(Outcome)}


@dataclass(frozen=True)
class UserRow:
    user: User
    alias_count: int


@dataclass(frozen=True)
class AliasRow:
    alias: Alias
    owner: str | None


@dataclass(frozen=True)
class OutcomeRow:
    created_at: datetime
    recipient: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class Total:
    outcome: str
    day: int
    month: int


def _page(page: int) -> int:
    return max(1, page)


def users(db: Session, page: int = 1, per_page: int = PER_PAGE) -> tuple[list[UserRow], int]:
    """A page of users, newest first, with how many live aliases each has; and the total."""
    total = db.scalar(select(func.count()).select_from(User)) or 0
    counts = (
        select(Alias.user_id, func.count().label("n")).where(Alias.deleted_at.is_(None))
        .group_by(Alias.user_id).subquery()
    )
    rows = db.execute(
        select(User, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.user_id == User.id)
        .order_by(User.created_at.desc(), User.id.desc()).offset((_page(page) - 1) * per_page).limit(per_page)
    ).all()
    return [UserRow(user, int(n)) for user, n in rows], total


def aliases(db: Session, page: int = 1, per_page: int = PER_PAGE) -> tuple[list[AliasRow], int]:
    """A page of all aliases, deleted ones included, newest first, with the owner's address."""
    total = db.scalar(select(func.count()).select_from(Alias)) or 0
    rows = db.execute(
        select(Alias, User.email).outerjoin(User, User.id == Alias.user_id)
        .order_by(Alias.created_at.desc(), Alias.id.desc()).offset((_page(page) - 1) * per_page).limit(per_page)
    ).all()
    return [AliasRow(alias, owner) for alias, owner in rows], total


def mask(reason: str, recipient: str) -> str:
    """``reason`` with every address but the alias's own replaced (a provider's error may name the mailbox)."""
    return _ADDRESS.sub(lambda m: m.group(0) if m.group(0).lower() == recipient else "[address]", reason)


def recent(db: Session, limit: int = RECENT) -> list[OutcomeRow]:
    rows = db.execute(
        select(Delivery.created_at, Delivery.recipient, Delivery.outcome, Delivery.reason)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
    ).all()
    return [OutcomeRow(at, recipient, outcome, mask(reason or "", recipient)) for at, recipient, outcome, reason in rows]


def totals(db: Session, now: datetime | None = None) -> list[Total]:
    """Delivery rows per outcome over the last 24 hours and the last 30 days."""
    now = now or utcnow()

    def count(since: datetime) -> dict[str, int]:
        rows = db.execute(
            select(Delivery.outcome, func.count()).where(Delivery.created_at >= since).group_by(Delivery.outcome)
        ).all()
        return {outcome: int(n) for outcome, n in rows}

    day, month = count(now - timedelta(hours=24)), count(now - timedelta(days=30))
    names = sorted(month.keys() | day.keys(), key=lambda o: (_ORDER.get(o, len(_ORDER)), o))
    return [Total(name, day.get(name, 0), month.get(name, 0)) for name in names]
