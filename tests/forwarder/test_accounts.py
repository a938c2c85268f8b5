"""Accounts: durations, local parts, and creating aliases on a migrated database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import forwarder.accounts as accounts
from forwarder.accounts import (
    RESERVED,
    WORDS,
    AccountError,
    check_local_part,
    create_alias,
    ensure_destination,
    ensure_user,
    parse_duration,
    random_local_part,
)
from models import Alias, Destination, User, make_engine, make_session_factory
from tests.conftest import fresh_database
from tests.support.databases import migrate

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DOMAIN = "othermail.example"
GENERATED = re.compile(r"^([a-z]+)-([abcdefghjkmnpqrstuvwxyz23456789]{4})$")


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30m", timedelta(minutes=30)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("2H", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("4w", timedelta(weeks=4)),
        (" 12 h ", timedelta(hours=12)),
        ("1m", timedelta(minutes=1)),
        ("007d", timedelta(days=7)),
        ("365d", timedelta(days=365)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2", "h", "0h", "00m", "-1h", "+1h", "1.5h", "2y", "2s", "2 hours", "2hh", "h2", "1h30m", "two h", "2h!"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(AccountError, match="not a duration"):
        parse_duration(text)


# --------------------------------------------------------------------------- local parts


@pytest.mark.parametrize(
    "text, expected",
    [
        ("shop", "shop"),
        ("Shop.Orders", "shop.orders"),
        ("  news_letter-2026 ", "news_letter-2026"),
        ("a", "a"),
        ("7", "7"),
        ("x" * 64, "x" * 64),
        ("a.b-c_d", "a.b-c_d"),
        ("post.master", "post.master"),
    ],
)
def test_check_local_part_accepts_and_normalizes(text: str, expected: str) -> None:
    assert check_local_part(text) == expected


@pytest.mark.parametrize("name", sorted(RESERVED))
def test_reserved_local_parts_are_refused(name: str) -> None:
    with pytest.raises(AccountError, match="reserved"):
        check_local_part(name)
    with pytest.raises(AccountError, match="reserved"):
        check_local_part(name.upper())


def test_reserved_names_include_the_rfc2142_mailboxes() -> None:
    assert {"postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon"} <= RESERVED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "x" * 65,
        ".shop",
        "shop.",
        "-shop",
        "shop-",
        "_shop",
        "sh..op",
        "sh op",
        "shop+tag",
        "shop@x",
        "caf\u00e9",
        "sh\nop",
        "shop\x00",
        "sh/op",
        '"shop"',
    ],
)
def test_check_local_part_rejects_bad_characters_and_lengths(text: str) -> None:
    with pytest.raises(AccountError, match="letters, digits"):
        check_local_part(text)


def test_random_local_part_shape() -> None:
    for _ in range(200):
        local = random_local_part()
        match = GENERATED.match(local)
        assert match, local
        assert match.group(1) in WORDS
        assert check_local_part(local) == local  # generated parts pass the same rules


def test_words_are_all_valid_lowercase_words() -> None:
    assert len(set(WORDS)) == len(WORDS) >= 100
    assert all(re.fullmatch(r"[a-z]+", w) for w in WORDS)


# --------------------------------------------------------------------------- create_alias


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    with fresh_database("sqlite", tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as session:
                yield session
        finally:
            engine.dispose()


def owner_and_target(session: Session, owner: str = "owner@example.org", dest: str = "real@example.org"):
    user = ensure_user(session, owner)
    target = ensure_destination(session, user, dest, verified_at=NOW)
    session.commit()
    return user, target


def test_generated_alias_shape_and_row(db: Session) -> None:
    user, target = owner_and_target(db)
    alias = create_alias(db, user, [target], DOMAIN, NOW)
    local, _, domain = alias.address.partition("@")
    assert domain == DOMAIN
    assert GENERATED.match(local) and GENERATED.match(local).group(1) in WORDS
    db.expire_all()
    row = db.scalars(select(Alias).where(Alias.address == alias.address)).one()
    assert row.user_id == user.id
    assert [d.email for d in row.destinations] == ["real@example.org"]
    assert row.expires_at is None and row.idle_days is None and row.max_messages is None
    assert row.created_at == NOW
    assert row.enabled is True and row.message_count == 0


def test_expiry_is_computed_from_now(db: Session) -> None:
    user, target = owner_and_target(db)
    alias = create_alias(db, user, [target], DOMAIN, NOW, expires_in=parse_duration("2h"), idle_days=30, max_messages=3)
    db.expire_all()
    row = db.get(Alias, alias.id)
    assert row.expires_at == NOW + timedelta(hours=2)
    assert row.idle_days == 30
    assert row.max_messages == 3


def test_generated_aliases_are_distinct(db: Session) -> None:
    user, target = owner_and_target(db)
    addresses = {create_alias(db, user, [target], DOMAIN, NOW).address for _ in range(20)}
    assert len(addresses) == 20
    assert db.scalar(select(func.count()).select_from(Alias)) == 20


def test_custom_local_part_is_normalized(db: Session) -> None:
    user, target = owner_and_target(db)
    alias = create_alias(db, user, [target], "OtherMail.Example", NOW, local_part=" Shop.Orders ")
    assert alias.address == "shop.orders@othermail.example"


def test_custom_local_part_collision_is_an_account_error(db: Session) -> None:
    user, target = owner_and_target(db)
    create_alias(db, user, [target], DOMAIN, NOW, local_part="shop")
    other, other_target = owner_and_target(db, "other@example.org", "other-real@example.org")
    with pytest.raises(AccountError, match="shop@othermail.example is taken"):
        create_alias(db, other, [other_target], DOMAIN, NOW, local_part="shop")
    # The session is usable afterwards and nothing was half-written.
    assert db.scalar(select(func.count()).select_from(Alias)) == 1
    assert create_alias(db, other, [other_target], DOMAIN, NOW, local_part="shop2").address == "shop2@othermail.example"


@pytest.mark.parametrize("second", ["SHOP", "Shop", " shop "])
def test_custom_local_part_collision_is_case_insensitive_sqlite(db: Session, second: str) -> None:
    user, target = owner_and_target(db)
    create_alias(db, user, [target], DOMAIN, NOW, local_part="shop")
    with pytest.raises(AccountError, match="is taken"):
        create_alias(db, user, [target], DOMAIN, NOW, local_part=second)
    with pytest.raises(AccountError, match="is taken"):
        create_alias(db, user, [target], DOMAIN.upper(), NOW, local_part="shop")
    assert db.scalar(select(func.count()).select_from(Alias)) == 1


def test_custom_local_part_collision_is_case_insensitive_on_every_backend(session: Session) -> None:
    # ``session`` runs on SQLite, PostgreSQL and MariaDB (tests/conftest.py).
    user, target = owner_and_target(session)
    create_alias(session, user, [target], DOMAIN, NOW, local_part="Shop")
    with pytest.raises(AccountError, match="(?i)shop@othermail.example is taken"):
        create_alias(session, user, [target], "OTHERMAIL.example", NOW, local_part="SHOP")
    assert session.scalars(select(Alias.address)).all() == ["shop@othermail.example"]


def test_same_local_part_on_another_domain_is_free(db: Session) -> None:
    user, target = owner_and_target(db)
    create_alias(db, user, [target], DOMAIN, NOW, local_part="shop")
    assert create_alias(db, user, [target], "second.example", NOW, local_part="shop").address == "shop@second.example"


def test_reserved_or_invalid_custom_local_part_creates_nothing(db: Session) -> None:
    user, target = owner_and_target(db)
    with pytest.raises(AccountError, match="reserved"):
        create_alias(db, user, [target], DOMAIN, NOW, local_part="postmaster")
    with pytest.raises(AccountError, match="letters, digits"):
        create_alias(db, user, [target], DOMAIN, NOW, local_part="bad name")
    assert db.scalar(select(func.count()).select_from(Alias)) == 0


def test_generated_collision_is_retried(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    user, target = owner_and_target(db)
    create_alias(db, user, [target], DOMAIN, NOW, local_part="oak-aaaa")
    candidates = iter(["oak-aaaa", "oak-aaaa", "oak-bbbb"])
    monkeypatch.setattr(accounts, "random_local_part", lambda: next(candidates))
    alias = create_alias(db, user, [target], DOMAIN, NOW)
    assert alias.address == "oak-bbbb@othermail.example"
    assert next(candidates, None) is None  # all three candidates were tried


def test_generated_collision_gives_up_after_eight_tries(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    user, target = owner_and_target(db)
    create_alias(db, user, [target], DOMAIN, NOW, local_part="oak-aaaa")
    calls = []
    monkeypatch.setattr(accounts, "random_local_part", lambda: calls.append(1) or "oak-aaaa")
    with pytest.raises(AccountError, match="could not find a free alias address"):
        create_alias(db, user, [target], DOMAIN, NOW)
    assert len(calls) == 8


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"max_messages": 0}, "--max-messages"),
        ({"idle_days": 0}, "--idle-days"),
        ({"max_messages": -3}, "--max-messages"),
    ],
)
def test_limits_below_one_are_refused(db: Session, limits: dict, message: str) -> None:
    user, target = owner_and_target(db)
    with pytest.raises(AccountError, match=message):
        create_alias(db, user, [target], DOMAIN, NOW, **limits)
    assert db.scalar(select(func.count()).select_from(Alias)) == 0


def test_ensure_user_and_destination_are_idempotent_and_normalized(db: Session) -> None:
    first = ensure_user(db, "Owner@Example.org")
    again = ensure_user(db, " owner@example.ORG ")
    assert first.id == again.id and first.email == "owner@example.org"
    unverified = ensure_destination(db, first, "Real@Example.org", verified_at=None)
    assert unverified.verified_at is None
    verified = ensure_destination(db, first, "real@example.org", verified_at=NOW)
    assert verified.id == unverified.id and verified.verified_at == NOW
    db.commit()
    assert db.scalar(select(func.count()).select_from(User)) == 1
    assert db.scalar(select(func.count()).select_from(Destination)) == 1
