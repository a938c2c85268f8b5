"""Aliases: create (generated or custom), change, switch on and off, extend, delete, find.

A deleted alias keeps its row (``deleted_at``) so its address is never issued to anyone again.
Temporary aliases expire after a duration (one hour to a year), after N days without mail, or
after N messages; what an expired alias does with new mail is the user's choice (``drop``
silently, or ``reject``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from forwarder import accounts
from forwarder.accounts import alias_states
from forwarder.adapters.sql.directory import alias_state
from forwarder.core.decide import expiry
from models import SENDER_MODES, Alias, Destination, User, alias_destinations, utcnow
from models.limits import DISPLAY_NAME_MAX_LENGTH, LABEL_MAX_LENGTH, NOTE_MAX_LENGTH
from web import ratelimit
from web.services import contacts, domains
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

MIN_DURATION = timedelta(hours=1)
MAX_DURATION = timedelta(days=365)
MAX_IDLE_DAYS = 365
MAX_MESSAGES = 100_000
#: The last page a list may ask for (as the API: ``web/api/common.py``); an OFFSET past 2**63 is an error.
MAX_PAGE = 1_000_000
EXPIRED_ACTIONS = ("drop", "reject")


@dataclass(frozen=True)
class Status:
    """What the pages show: active, off, expired or deleted; why; and what is left."""

    state: str
    reason: str
    time_left: timedelta | None
    messages_left: int | None
    idle_left: timedelta | None


def status(alias: Alias, now: datetime | None = None) -> Status:
    now = now or utcnow()
    time_left = alias.expires_at - now if alias.expires_at else None
    messages_left = max(0, alias.max_messages - alias.message_count) if alias.max_messages is not None else None
    idle_left = None
    if alias.idle_days is not None:
        idle_left = (alias.last_used_at or alias.created_at) + timedelta(days=alias.idle_days) - now
    if alias.deleted_at is not None:
        return Status("deleted", "deleted", None, None, None)
    expired = expiry(alias_state(alias, 1), now)
    if expired is not None:
        return Status("expired", expired.reason, time_left, messages_left, idle_left)
    if not alias.enabled:
        # disabled_reason: the service switched it off (a spam complaint, forwarder/adapters/sql/feedback_store.py)
        return Status("off", alias.disabled_reason or "switched off", time_left, messages_left, idle_left)
    return Status("active", "", time_left, messages_left, idle_left)


def owned(db: Session, user: User, alias_id: int) -> Alias:
    found = db.get(Alias, alias_id)
    if found is None or found.user_id != user.id or found.deleted_at is not None:
        raise not_found("alias")
    return found


#: The list's sort keys: what the user picks, the column, and the order it starts in.
SORTS = {"created": "desc", "address": "asc", "used": "desc", "messages": "desc"}


def _sort_column(sort: str) -> Any:
    return {
        "created": Alias.created_at,
        "address": Alias.address,
        "used": Alias.last_used_at,
        "messages": Alias.message_count,
    }[sort]


def _like(search: str) -> str:
    escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matching(user: User, search: str) -> ColumnElement[bool]:
    """Aliases whose address, label, note or one of whose destinations contains ``search``, in any
    case. Addresses are stored lowercase (by Python); free text is lowered in SQL on both sides, so
    the same case always matches (SQLite's lower() folds ASCII letters only)."""
    pattern = _like(search)
    folded = func.lower(pattern)
    by_destination = (
        select(alias_destinations.c.alias_id)
        .join(Destination, Destination.id == alias_destinations.c.destination_id)
        .where(Destination.user_id == user.id, func.lower(Destination.email).like(folded, escape="\\"))
    )
    return or_(
        Alias.address.like(pattern.lower(), escape="\\"),
        func.lower(Alias.label).like(folded, escape="\\"),
        func.lower(Alias.note).like(folded, escape="\\"),
        Alias.id.in_(by_destination),
    )


def listed(
    db: Session,
    user: User,
    search: str = "",
    page: int = 1,
    per_page: int = 50,
    *,
    state: str = "",
    sort: str = "created",
    descending: bool | None = None,
    now: datetime | None = None,
) -> tuple[list[Alias], int]:
    """A page of the user's aliases and how many there are in all, filtered and sorted in SQL.

    ``search`` looks in the address, label, note and destinations; ``state`` is one of
    :data:`alias_states.STATES` (empty: all); ``sort`` one of :data:`SORTS`, in its own order
    unless ``descending`` says; ties are broken by id, the same way, so pages never overlap.
    Aliases never used sort last by last use, either way.
    """
    conditions = [Alias.user_id == user.id, Alias.deleted_at.is_(None)]
    if search.strip():
        conditions.append(_matching(user, search))
    if state:
        conditions.append(alias_states.in_state(state, now or utcnow()))
    total = db.scalar(select(func.count()).select_from(Alias).where(*conditions)) or 0
    down = SORTS[sort] == "desc" if descending is None else descending
    column = _sort_column(sort)
    order = [column.desc() if down else column.asc(), Alias.id.desc() if down else Alias.id.asc()]
    if sort == "used":
        order.insert(0, Alias.last_used_at.is_(None))  # false before true on every backend
    page = min(max(1, page), MAX_PAGE)
    rows = db.scalars(select(Alias).where(*conditions).order_by(*order).offset((page - 1) * per_page).limit(per_page))
    return list(rows), total


def _destinations(db: Session, user: User, ids: list[int]) -> list[Destination]:
    if not ids:
        raise ServiceError("no_destination", "Choose at least one verified destination.")
    found = list(db.scalars(select(Destination).where(Destination.id.in_(ids), Destination.user_id == user.id)))
    if len(found) != len(set(ids)):
        raise ServiceError("no_destination", "Choose your own destinations.")
    if any(d.verified_at is None for d in found):
        raise ServiceError("unverified_destination", "A destination must be verified before mail goes to it.")
    return found


def default_destination_ids(db: Session, user: User) -> list[int]:
    """Where an alias created without a choice forwards (the one-click button, the API and the CLI
    without destinations): every verified destination of the user."""
    ids = list(
        db.scalars(
            select(Destination.id)
            .where(Destination.user_id == user.id, Destination.verified_at.is_not(None))
            .order_by(Destination.id)
        )
    )
    if not ids:
        raise ServiceError(
            "no_destination",
            "You have no verified destination yet: add one and open the link "
            "we send it first; mail is only forwarded to verified addresses.",
        )
    return ids


def _check_limits(
    duration: timedelta | None, idle_days: int | None, max_messages: int | None, expired_action: str
) -> None:
    if duration is not None and not MIN_DURATION <= duration <= MAX_DURATION:
        raise ServiceError("invalid_expiry", "An alias can last from one hour to a year.")
    if idle_days is not None and not 1 <= idle_days <= MAX_IDLE_DAYS:
        raise ServiceError("invalid_expiry", f"Idle days must be between 1 and {MAX_IDLE_DAYS}.")
    if max_messages is not None and not 1 <= max_messages <= MAX_MESSAGES:
        raise ServiceError("invalid_expiry", f"The message limit must be between 1 and {MAX_MESSAGES}.")
    if expired_action not in EXPIRED_ACTIONS:
        raise ServiceError("invalid_expired_action", "Expired aliases either drop or reject new mail.")


def check_extension(duration: timedelta | None, idle_days: int | None, extra_messages: int | None) -> None:
    """Raise what :func:`extend` would for these values, before anything is changed."""
    _check_limits(duration, idle_days, extra_messages, "drop")


def live_count(db: Session, user: User) -> int:
    """The user's aliases that are not deleted (expired and switched-off ones included): what the
    account's alias cap counts."""
    return (
        db.scalar(select(func.count()).select_from(Alias).where(Alias.user_id == user.id, Alias.deleted_at.is_(None)))
        or 0
    )


def forwarding_count(ctx: ServiceContext, db: Session, user: User, now: datetime | None = None) -> int:
    """The user's aliases that would forward a message now: switched on, not expired, on a domain
    that serves mail, with at least one verified destination that is not paused."""
    now = now or utcnow()
    own = set(ctx.settings.domains) | set(domains.serving_names(db, user))
    candidates = db.scalars(
        select(Alias)
        .where(Alias.user_id == user.id, Alias.deleted_at.is_(None), Alias.enabled.is_(True))
        .options(selectinload(Alias.destinations))
    )
    return sum(
        1
        for alias in candidates
        if status(alias, now).state == "active"
        and alias.address.rpartition("@")[2] in own
        and any(d.is_verified and not d.is_paused for d in alias.destinations)
    )


def _text(name: str, value: str, limit: int) -> str | None:
    """Free text for the user's eyes only: trimmed and cut to ``limit``; NUL is refused because
    PostgreSQL cannot store it in a text column."""
    if "\x00" in value:
        raise ServiceError("invalid_text", f"The {name} may not contain NUL characters.")
    return value.strip()[:limit] or None


def create(
    ctx: ServiceContext,
    db: Session,
    user: User,
    *,
    destination_ids: list[int] | None = None,
    domain: str | None = None,
    local_part: str | None = None,
    label: str = "",
    note: str = "",
    duration: timedelta | None = None,
    idle_days: int | None = None,
    max_messages: int | None = None,
    expired_action: str = "drop",
) -> Alias:
    settings = ctx.settings
    domain = (domain or settings.domains[0]).lower()
    if domain not in settings.domains:
        domains.check_alias_domain(ctx, db, user, domain)  # one of the user's own verified domains
    _check_limits(duration, idle_days, max_messages, expired_action)
    clean_label, clean_note = _text("label", label, LABEL_MAX_LENGTH), _text("note", note, NOTE_MAX_LENGTH)
    cap = ctx.max_live_aliases
    if live_count(db, user) >= cap:
        raise ServiceError(
            "limit_reached", f"You have {cap} aliases, the most an account may have. Delete some first.", 409
        )
    wait = ratelimit.hit("alias-create", str(user.id))
    if wait is not None:
        raise ServiceError("rate_limited", f"Too many new aliases; try again in {wait // 60 + 1} minutes.", 429, wait)
    if destination_ids is None:
        destination_ids = default_destination_ids(db, user)
    targets = _destinations(db, user, destination_ids)
    try:
        alias = accounts.create_alias(
            db,
            user,
            targets,
            domain,
            utcnow(),
            local_part=local_part or None,
            expires_in=duration,
            idle_days=idle_days,
            max_messages=max_messages,
        )
    except accounts.AccountError as exc:
        code = "taken" if "taken" in str(exc) else "invalid_local_part"
        raise ServiceError(code, str(exc), 409 if code == "taken" else 400) from None
    alias.label, alias.note = clean_label, clean_note
    alias.expired_action = expired_action
    db.commit()
    return alias


def update(
    db: Session,
    user: User,
    alias: Alias,
    *,
    label: str | None = None,
    note: str | None = None,
    enabled: bool | None = None,
    destination_ids: list[int] | None = None,
    expired_action: str | None = None,
) -> Alias:
    if label is not None:
        alias.label = _text("label", label, LABEL_MAX_LENGTH)
    if note is not None:
        alias.note = _text("note", note, NOTE_MAX_LENGTH)
    if enabled is not None:
        accounts.set_alias_enabled(alias, enabled)
    if expired_action is not None:
        _check_limits(None, None, None, expired_action)
        alias.expired_action = expired_action
    if destination_ids is not None:
        alias.destinations = _destinations(db, user, destination_ids)
    db.commit()
    return alias


def set_two_way(db: Session, alias: Alias, *, display_name: str, sender_mode: str) -> Alias:
    """The alias's name on replies that leave from it, and who may write to it: ``any`` sender not
    blocked, or ``allow-only`` the allow-listed and known, unblocked contacts (issue 14)."""
    if sender_mode not in SENDER_MODES:
        raise ServiceError("invalid_sender_mode", f"Who may write is one of: {', '.join(SENDER_MODES)}.")
    if not display_name.isprintable():
        raise ServiceError("invalid_text", "The name may hold no control characters.")
    alias.display_name = display_name.strip()[:DISPLAY_NAME_MAX_LENGTH]
    alias.sender_mode = sender_mode
    db.commit()
    return alias


def extend(
    db: Session,
    alias: Alias,
    *,
    duration: timedelta | None = None,
    idle_days: int | None = None,
    extra_messages: int | None = None,
) -> Alias:
    """Push an expiry back: a new duration from now, new idle days, or more messages."""
    _check_limits(duration, idle_days, extra_messages, alias.expired_action)
    now = utcnow()
    if duration is not None:
        alias.expires_at = now + duration
    if idle_days is not None:
        alias.idle_days = idle_days
        alias.last_used_at = now
    if extra_messages is not None and alias.max_messages is not None:
        alias.max_messages = max(alias.max_messages, alias.message_count) + extra_messages
    db.commit()
    return alias


def make_permanent(db: Session, alias: Alias) -> Alias:
    alias.expires_at = None
    alias.idle_days = None
    alias.max_messages = None
    db.commit()
    return alias


def delete(db: Session, alias: Alias) -> None:
    """Stop forwarding at once; the address stays reserved. Its contacts, message links and sender
    rules go (a soft delete cascades nothing)."""
    contacts.forget_two_way(db, [alias.id])
    mark_deleted(alias)
    db.commit()


def mark_deleted(alias: Alias) -> None:
    """The soft delete's changes to the row (web/services/alias_bulk.py deletes several at once)."""
    alias.deleted_at = utcnow()
    alias.enabled = False
    alias.destinations = []
    alias.label = None
    alias.note = None
