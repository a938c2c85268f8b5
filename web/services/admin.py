"""What an operator sees: every user, every alias, the latest outcomes and totals per outcome, and
the bounce and complaint rates of the destinations SES reported feedback for.

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
from forwarder.flows.feedback import BOUNCE_PERMANENT, BOUNCE_TRANSIENT, COMPLAINT
from models import Alias, Delivery, Destination, FeedbackEvent, User, utcnow

PER_PAGE = 50
MAX_PAGE = 1_000_000  # as the API (web/api/common.py): an OFFSET past 2**63 is an error
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


@dataclass(frozen=True)
class FeedbackRate:
    """SES feedback on one destination, all time. The destination is named by id, owner and
    domain: its address is not shown here."""

    destination_id: int
    owner: str | None
    domain: str
    paused: bool
    forwarded: int
    hard_bounces: int
    soft_bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float | None:
        """Bounces (hard and soft) per forwarded copy; None without any forwarded copy."""
        return (self.hard_bounces + self.soft_bounces) / self.forwarded if self.forwarded else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.forwarded if self.forwarded else None


def _page(page: int) -> int:
    return min(max(1, page), MAX_PAGE)


def users(db: Session, page: int = 1, per_page: int = PER_PAGE) -> tuple[list[UserRow], int]:
    """A page of users, newest first, with how many live aliases each has; and the total."""
    total = db.scalar(select(func.count()).select_from(User)) or 0
    counts = (
        select(Alias.user_id, func.count().label("n"))
        .where(Alias.deleted_at.is_(None))
        .group_by(Alias.user_id)
        .subquery()
    )
    rows = db.execute(
        select(User, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.user_id == User.id)
        .order_by(User.created_at.desc(), User.id.desc())
        .offset((_page(page) - 1) * per_page)
        .limit(per_page)
    ).all()
    return [UserRow(user, int(n)) for user, n in rows], total


def aliases(db: Session, page: int = 1, per_page: int = PER_PAGE) -> tuple[list[AliasRow], int]:
    """A page of all aliases, deleted ones included, newest first, with the owner's address."""
    total = db.scalar(select(func.count()).select_from(Alias)) or 0
    rows = db.execute(
        select(Alias, User.email)
        .outerjoin(User, User.id == Alias.user_id)
        .order_by(Alias.created_at.desc(), Alias.id.desc())
        .offset((_page(page) - 1) * per_page)
        .limit(per_page)
    ).all()
    return [AliasRow(alias, owner) for alias, owner in rows], total


def mask(reason: str, recipient: str) -> str:
    """``reason`` with every address but the alias's own replaced (a provider's error may name the mailbox)."""
    return _ADDRESS.sub(lambda m: m.group(0) if m.group(0).lower() == recipient else "[address]", reason)


def recent(db: Session, limit: int = RECENT) -> list[OutcomeRow]:
    rows = db.execute(
        select(Delivery.created_at, Delivery.recipient, Delivery.outcome, Delivery.reason)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    ).all()
    return [
        OutcomeRow(at, recipient, outcome, mask(reason or "", recipient)) for at, recipient, outcome, reason in rows
    ]


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


def feedback_rates(db: Session, limit: int = RECENT) -> list[FeedbackRate]:
    """The destinations SES reported bounces or complaints for, highest rate first (the higher of
    the two; a destination with feedback but no forwarded copy on record comes first)."""
    counts: dict[int, dict[str, int]] = {}
    for destination_id, kind, n in db.execute(
        select(FeedbackEvent.destination_id, FeedbackEvent.kind, func.count())
        .where(FeedbackEvent.destination_id.is_not(None))
        .group_by(FeedbackEvent.destination_id, FeedbackEvent.kind)
    ).all():
        counts.setdefault(destination_id, {})[kind] = int(n)  # type: ignore[arg-type]  # the query skips NULL ids
    if not counts:
        return []
    forwarded = dict(
        db.execute(
            select(Delivery.destination_id, func.count())
            .where(Delivery.destination_id.in_(counts), Delivery.outcome == Outcome.FORWARDED.value)
            .group_by(Delivery.destination_id)
        ).all()
    )
    rows = db.execute(
        select(Destination.id, Destination.email, Destination.paused_at, User.email)
        .join(User, User.id == Destination.user_id)
        .where(Destination.id.in_(counts))
    ).all()
    rates = [
        FeedbackRate(
            destination_id,
            owner,
            email.rpartition("@")[2],
            paused_at is not None,
            int(forwarded.get(destination_id, 0)),
            counts[destination_id].get(BOUNCE_PERMANENT, 0),
            counts[destination_id].get(BOUNCE_TRANSIENT, 0),
            counts[destination_id].get(COMPLAINT, 0),
        )
        for destination_id, email, paused_at, owner in rows
    ]

    def order(rate: FeedbackRate) -> tuple[float, int]:
        total = rate.hard_bounces + rate.soft_bounces + rate.complaints
        return max(rate.bounce_rate or 0.0, rate.complaint_rate or 0.0) if rate.forwarded else float("inf"), total

    return sorted(rates, key=order, reverse=True)[:limit]
