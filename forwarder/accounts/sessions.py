"""Server-side sessions: what a browser's session cookie stands for.

The cookie (Flask's signed cookie) carries only a random secret, ``sid``; the database keeps a
:class:`~models.UserSession` row with its hex SHA-256, the user, when it started and was last
seen, and from which IP and browser. Every request looks the row up, so deleting it (sign-out,
password change or reset, "end session" on the account page, an administrator's reset) ends the
session at once, even for a copy of the cookie. A session also ends when it has been idle longer
than the idle lifetime, or lived longer than the absolute one. ``last_seen_at`` is written at most
once a minute, so a page view is not a database write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from forwarder.accounts.errors import not_found
from models import User, UserSession, utcnow
from models.sessions import IP_MAX_LENGTH, USER_AGENT_MAX_LENGTH

#: ``last_seen_at`` (and the IP and browser with it) is written at most this often per session.
LAST_SEEN_GRANULARITY = timedelta(minutes=1)
_SECRET_MAX = 100


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta

    def expired(self, row: UserSession, now: datetime) -> bool:
        return now - row.last_seen_at > self.idle or now - row.created_at > self.absolute


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(db: Session, user: User, ip: str, user_agent: str) -> tuple[UserSession, str]:
    """A new session of ``user`` and the secret for its cookie (returned here only)."""
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user.id,
        token_hash=hash_secret(secret),
        created_at=now,
        last_seen_at=now,
        ip=ip[:IP_MAX_LENGTH],
        user_agent=user_agent[:USER_AGENT_MAX_LENGTH],
    )
    db.add(row)
    db.commit()
    return row, secret


def live(db: Session, secret: object, lifetimes: Lifetimes, ip: str, user_agent: str) -> UserSession | None:
    """The live session a cookie's secret stands for, or None (an expired one is deleted)."""
    if not isinstance(secret, str) or not secret or len(secret) > _SECRET_MAX:
        return None
    row = db.scalars(select(UserSession).where(UserSession.token_hash == hash_secret(secret))).first()
    if row is None:
        return None
    now = utcnow()
    if lifetimes.expired(row, now) or row.user.deleted_at is not None:
        end(db, row)
        return None
    if now - row.last_seen_at >= LAST_SEEN_GRANULARITY:
        row.last_seen_at = now
        row.ip = ip[:IP_MAX_LENGTH]
        row.user_agent = user_agent[:USER_AGENT_MAX_LENGTH]
        db.commit()
    return row


def listed(db: Session, user: User, lifetimes: Lifetimes) -> list[UserSession]:
    """The live sessions of ``user``, most recently seen first."""
    now = utcnow()
    rows = db.scalars(
        select(UserSession)
        .where(UserSession.user_id == user.id)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return [row for row in rows if not lifetimes.expired(row, now)]


def owned(db: Session, user: User, session_id: int) -> UserSession:
    found = db.get(UserSession, session_id)
    if found is None or found.user_id != user.id:
        raise not_found("session")
    return found


def end(db: Session, row: UserSession) -> None:
    """End one session (already ended, by another request or a bulk end, is fine)."""
    db.execute(delete(UserSession).where(UserSession.id == row.id).execution_options(synchronize_session=False))
    db.commit()


def end_all(db: Session, user: User, *, keep: int | None = None, commit: bool = True) -> int:
    """End every session of ``user`` but ``keep`` (a session id); the number ended."""
    statement = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        statement = statement.where(UserSession.id != keep)
    ended = db.execute(statement.execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]  # DML returns a CursorResult
    if commit:
        db.commit()
    return int(ended or 0)


def prune(db: Session, lifetimes: Lifetimes) -> int:
    """Delete the rows of every expired session (run at each sign-in)."""
    now = utcnow()
    ended = db.execute(
        delete(UserSession)
        .where(
            or_(  # type: ignore[attr-defined]  # DML returns a CursorResult
                UserSession.last_seen_at < now - lifetimes.idle,
                UserSession.created_at < now - lifetimes.absolute,
            )
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    return int(ended or 0)
