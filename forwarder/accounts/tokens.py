"""Personal API tokens: create (the secret is shown once), list, revoke, and authenticate.

A secret is ``om_`` followed by 32 random bytes in URL-safe base64. Only its hex SHA-256 is
stored (``ApiToken.token_hash``), plus its first ten characters (``prefix``) so people can tell
their tokens apart. A presented secret is found by its hash, so no secret is ever compared or
kept in the clear.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from forwarder.accounts.errors import ServiceError, not_found
from models import API_TOKEN_SCOPES, ApiToken, User, utcnow
from models.limits import TOKEN_NAME_MAX_LENGTH

SECRET_PREFIX = "om_"
DISPLAY_PREFIX = 10
NAME_MAX = TOKEN_NAME_MAX_LENGTH
MAX_EXPIRY_DAYS = 3650
MAX_ACTIVE_TOKENS = 50
#: ``last_used_at`` is written at most this often per token, not on every request.
LAST_USED_GRANULARITY = timedelta(minutes=1)
_SECRET_MAX = 100


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def listed(db: Session, user: User) -> list[ApiToken]:
    """Every token of ``user``, revoked ones included, newest first."""
    return list(
        db.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def owned(db: Session, user: User, token_id: int) -> ApiToken:
    found = db.get(ApiToken, token_id)
    if found is None or found.user_id != user.id:
        raise not_found("token")
    return found


def _active_count(db: Session, user: User) -> int:
    now = utcnow()
    return (
        db.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(
                ApiToken.user_id == user.id,
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
            )
        )
        or 0
    )


def create(db: Session, user: User, name: str, scope: str, expires_in: int | None) -> tuple[ApiToken, str]:
    """A new token for ``user`` and its secret, which is returned here and never again.

    ``expires_in`` is a number of days, or None for a token that does not expire.
    """
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or "\x00" in name:
        raise ServiceError("invalid_name", f"Give the token a name of 1 to {NAME_MAX} characters.")
    if scope not in API_TOKEN_SCOPES:
        raise ServiceError("invalid_scope", "The scope is either read or write.")
    if expires_in is not None and (isinstance(expires_in, bool) or not 1 <= expires_in <= MAX_EXPIRY_DAYS):
        raise ServiceError("invalid_expiry", f"A token can last from 1 to {MAX_EXPIRY_DAYS} days, or never expire.")
    if _active_count(db, user) >= MAX_ACTIVE_TOKENS:
        raise ServiceError("limit_reached", f"You have {MAX_ACTIVE_TOKENS} tokens; revoke some first.", 409)
    now = utcnow()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_secret(secret),
        prefix=secret[:DISPLAY_PREFIX],
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=expires_in) if expires_in is not None else None,
    )
    db.add(token)
    db.commit()
    return token, secret


def revoke(db: Session, token: ApiToken) -> ApiToken:
    """Stop the token working at once; the row stays, marked revoked."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.commit()
    return token


def revoke_all(db: Session, user: User, *, commit: bool = True) -> int:
    """Revoke every live token of ``user`` (a password reset can take them along); the number revoked."""
    now = utcnow()
    revoked = db.execute(  # type: ignore[attr-defined]  # DML returns a CursorResult
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if commit:
        db.commit()
    return int(revoked or 0)


def lookup(db: Session, secret: str) -> ApiToken | None:
    """The live token with this secret (not revoked, not expired, its user not deleted), or None.

    Records when it was last used, at most once a minute.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) > _SECRET_MAX:
        return None
    token = db.scalars(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))).first()
    now = utcnow()
    if token is None or not token.is_active(now) or token.user is None or token.user.deleted_at is not None:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        token.last_used_at = now
        db.commit()
    return token


def authenticate(db: Session, secret: str) -> User | None:
    """The user a presented secret acts for, or None."""
    token = lookup(db, secret)
    return token.user if token is not None else None
