"""The web app's schema (0002): alias options, API tokens, rate-limit counters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models import (
    API_TOKEN_SCOPES,
    EXPIRED_ACTIONS,
    Alias,
    ApiToken,
    RateLimitHit,
    User,
    make_engine,
    utcnow,
)
from tests.support.factories import make_user
from tests.support.races import race


def make_token(user: User, secret: str, scope: str = "read", **kw: object) -> ApiToken:
    return ApiToken(
        user=user,
        name="cli",
        token_hash=hashlib.sha256(secret.encode()).hexdigest(),
        prefix=secret[:8],
        scope=scope,
        **kw,
    )


def token_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiToken)) or 0


def assert_check_violation(session: Session, excinfo: pytest.ExceptionInfo[DBAPIError], name: str) -> None:
    # PostgreSQL and SQLite raise IntegrityError; PyMySQL reports MariaDB's
    # ER_CONSTRAINT_FAILED (4025) as another DBAPIError subclass.  Every
    # backend names the violated constraint.
    assert name in str(excinfo.value.orig)
    session.rollback()


# -- pure (no database) ------------------------------------------------------


def test_constants_match_check_constraints() -> None:
    assert EXPIRED_ACTIONS == ("drop", "reject")
    assert API_TOKEN_SCOPES == ("read", "write")


def test_api_token_is_active() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert ApiToken().is_active(now)
    assert ApiToken(expires_at=now + timedelta(seconds=1)).is_active(now)
    assert not ApiToken(expires_at=now).is_active(now)
    assert not ApiToken(revoked_at=now - timedelta(days=1)).is_active(now)
    assert not ApiToken(expires_at=now + timedelta(days=1), revoked_at=now - timedelta(days=1)).is_active(now)
    # Without an argument: the current time.
    assert ApiToken(expires_at=utcnow() + timedelta(hours=1)).is_active()
    assert not ApiToken(expires_at=utcnow() - timedelta(hours=1)).is_active()


# -- aliases ------------------------------------------------------------------


def test_alias_label_note_and_expired_action_defaults(session: Session) -> None:
    note = "Ünïcode note 📬\n" * 1000  # longer than any VARCHAR limit
    session.add(Alias(address="shop@x.example", label="Shop", note=note))
    session.commit()
    # The server default covers rows written without the ORM.
    session.execute(insert(Alias.__table__).values(address="raw@x.example", created_at=utcnow()))
    session.commit()
    session.expire_all()

    rows = session.execute(
        select(Alias.address, Alias.label, Alias.note, Alias.expired_action).order_by(Alias.address)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("raw@x.example", None, None, "drop"),
        ("shop@x.example", "Shop", note, "drop"),
    ]

    session.execute(update(Alias).values(expired_action="reject"))
    session.commit()
    assert set(session.scalars(select(Alias.expired_action))) == {"reject"}


def test_alias_expired_action_check(session: Session) -> None:
    session.add(Alias(address="shop@x.example", expired_action="bounce"))
    with pytest.raises(DBAPIError) as excinfo:
        session.commit()
    assert_check_violation(session, excinfo, "ck_aliases_expired_action")

    session.add(Alias(address="shop@x.example"))
    session.commit()
    with pytest.raises(DBAPIError) as excinfo:
        session.execute(update(Alias).values(expired_action="DROP"))
    assert_check_violation(session, excinfo, "ck_aliases_expired_action")
    assert session.scalars(select(Alias.expired_action)).all() == ["drop"]


# -- API tokens ---------------------------------------------------------------


def test_api_token_round_trip(session: Session) -> None:
    user = make_user(session)
    expires = utcnow() + timedelta(days=30)
    session.add(make_token(user, "om_secret-one", scope="write", expires_at=expires))
    session.commit()
    session.expire_all()

    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hashlib.sha256(b"om_secret-one").hexdigest())
    ).one()
    assert (token.name, token.prefix, token.scope) == ("cli", "om_secre", "write")
    assert token.user.email == "owner@example.org"
    assert user.api_tokens == [token]
    assert token.created_at.tzinfo is UTC
    assert token.expires_at == expires
    assert token.last_used_at is None and token.revoked_at is None
    assert token.is_active()

    token.revoked_at = utcnow()
    session.commit()
    session.expire_all()
    assert not session.get(ApiToken, token.id).is_active()  # type: ignore[union-attr]


def test_api_token_hash_unique(session: Session) -> None:
    alice = make_user(session, "alice@example.org")
    bob = make_user(session, "bob@example.org")
    session.add(make_token(alice, "om_same"))
    session.commit()

    session.add(make_token(bob, "om_same"))  # even for another user
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.add(make_token(bob, "om_other"))
    session.commit()
    assert token_count(session) == 2


@pytest.mark.parametrize("scope", ["admin", "READ", ""])
def test_api_token_scope_check(session: Session, scope: str) -> None:
    user = make_user(session)
    session.commit()
    session.add(make_token(user, "om_secret", scope=scope))
    with pytest.raises(DBAPIError) as excinfo:
        session.commit()
    assert_check_violation(session, excinfo, "ck_api_tokens_scope")
    assert token_count(session) == 0


def test_deleting_user_deletes_tokens_in_database(session: Session) -> None:
    alice = make_user(session, "alice@example.org")
    bob = make_user(session, "bob@example.org")
    session.add_all([make_token(alice, "om_a1"), make_token(alice, "om_a2"), make_token(bob, "om_b")])
    session.commit()

    # A bulk DELETE: only ON DELETE CASCADE acts.
    session.execute(delete(User).where(User.id == alice.id))
    session.commit()
    session.expire_all()
    assert session.scalars(select(ApiToken.prefix)).all() == ["om_b"]


def test_deleting_user_via_orm_deletes_tokens(session: Session) -> None:
    user = make_user(session)
    session.add_all([make_token(user, "om_a1"), make_token(user, "om_a2")])
    session.commit()
    session.expire_all()

    session.delete(session.get(User, user.id))
    session.commit()
    assert token_count(session) == 0

    # Removing a token from the collection deletes it (delete-orphan).
    user = make_user(session, "second@example.org")
    user.api_tokens.extend([make_token(user, "om_b1"), make_token(user, "om_b2")])
    session.commit()
    user.api_tokens.pop(0)
    session.commit()
    assert token_count(session) == 1


# -- rate limits --------------------------------------------------------------

#: Beyond 2**31: the column is BIGINT, safe after 2038.
WINDOW = 2**33


def test_rate_limit_composite_primary_key(session: Session) -> None:
    session.add(RateLimitHit(key="signin:203.0.113.7", window_start=WINDOW))
    session.commit()
    first = session.get(RateLimitHit, ("signin:203.0.113.7", WINDOW))
    assert first is not None and first.count == 0  # the default

    # Same key in another window, another key in the same window: fine.
    session.add_all(
        [
            RateLimitHit(key="signin:203.0.113.7", window_start=WINDOW + 60, count=1),
            RateLimitHit(key="signup:203.0.113.7", window_start=WINDOW, count=1),
        ]
    )
    session.commit()

    # A Core INSERT, as a second request racing the first would issue it.
    with pytest.raises(IntegrityError):
        session.execute(insert(RateLimitHit).values(key="signin:203.0.113.7", window_start=WINDOW))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(RateLimitHit)) == 3


def test_rate_limit_increment_and_prune(session: Session) -> None:
    key = "api:token-1"
    session.add(RateLimitHit(key=key, window_start=WINDOW, count=1))
    session.add(RateLimitHit(key=key, window_start=WINDOW - 86400 * 2, count=5))
    session.commit()
    limit = 3

    def hit() -> int:
        # UPDATE rate_limit_hits SET count = count + 1 WHERE ... AND count < limit
        result = session.execute(
            update(RateLimitHit)
            .where(
                RateLimitHit.key == key,
                RateLimitHit.window_start == WINDOW,
                RateLimitHit.count < limit,
            )
            .values(count=RateLimitHit.count + 1)
        )
        session.commit()
        return result.rowcount  # type: ignore[attr-defined,no-any-return]

    assert [hit(), hit(), hit()] == [1, 1, 0]
    assert session.scalar(select(RateLimitHit.count).where(RateLimitHit.window_start == WINDOW)) == limit

    session.execute(delete(RateLimitHit).where(RateLimitHit.window_start < WINDOW - 86400))
    session.commit()
    assert session.scalars(select(RateLimitHit.window_start)).all() == [WINDOW]


def test_rate_limit_increment_is_atomic_under_concurrency(migrated_url: str) -> None:
    threads, hits_each = 6, 20
    engine = make_engine(migrated_url, pool_size=threads)
    try:
        with engine.begin() as connection:
            connection.execute(insert(RateLimitHit).values(key="k", window_start=WINDOW))
        increment = (
            update(RateLimitHit)
            .where(RateLimitHit.key == "k", RateLimitHit.window_start == WINDOW)
            .values(count=RateLimitHit.count + 1)
        )

        def worker() -> None:
            for _ in range(hits_each):
                with engine.begin() as connection:
                    assert connection.execute(increment).rowcount == 1

        race([worker] * threads, within=120)
        with engine.connect() as connection:
            total = connection.scalar(select(RateLimitHit.count))
        assert total == threads * hits_each
    finally:
        engine.dispose()
