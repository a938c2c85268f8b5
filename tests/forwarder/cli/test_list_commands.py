"""``othermail user list``, ``alias list``, ``token list`` / ``token revoke`` and ``user create``'s
sentence (issue 16): an aligned table by default, JSON with --json (parsed here), filters and sorts
checked against the rows, and a user's mistake as one line naming the option."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select

from forwarder.cli.tables import Column, cell, table
from models import Alias, ApiToken, User, UserSession, WebAuthnCredential, make_engine, make_session_factory, utcnow
from tests.forwarder.cli.test_user_token_cli import PASSWORD, Cli
from tests.forwarder.cli.test_user_token_cli import app as app  # noqa: F401 - the fixture

NOW = utcnow().replace(microsecond=0)


def seed(cli: Cli, build: Any) -> None:
    engine = make_engine(f"sqlite:///{(cli.data_dir / 'othermail.db').resolve()}")
    try:
        with make_session_factory(engine)() as session:
            build(session)
            session.commit()
    finally:
        engine.dispose()


def as_json(result: Result) -> list[dict[str, Any]]:
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def columns_line_up(text: str, titles: list[str]) -> None:
    """Every value starts under its left-aligned column's title; no trailing spaces."""
    header, *lines = text.rstrip("\n").split("\n")
    starts = [header.index(title) for title in titles]
    assert lines
    for line in lines:
        assert line == line.rstrip()
        for start in starts[1:]:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)


def one_line_error(result: Result, option: str) -> None:
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


# --- user list --------------------------------------------------------------------------------


@pytest.fixture
def people(app: Cli) -> Iterator[Cli]:  # noqa: F811 - the imported fixture
    def build(session: Any) -> None:
        ann = User(email="ann@example.org", created_at=NOW - timedelta(days=3), email_verified_at=NOW)
        bob = User(email="bob@example.org", created_at=NOW - timedelta(days=2), is_admin=True, totp_enabled_at=NOW)
        cat = User(email="cat@example.org", created_at=NOW - timedelta(days=1))
        gone = User(email="gone@example.org", created_at=NOW, deleted_at=NOW)
        session.add_all([ann, bob, cat, gone])
        session.flush()
        for n, owner in enumerate([ann, ann, bob]):
            session.add(Alias(address=f"a{n}@othermail.example", user_id=owner.id))
        session.add(Alias(address="old@othermail.example", user_id=ann.id, deleted_at=NOW))
        session.add(WebAuthnCredential(user_id=cat.id, credential_id="c1", public_key=b"k", name="key", created_at=NOW))
        for hours in (5, 1):
            session.add(
                UserSession(
                    user_id=ann.id,
                    token_hash=f"{hours:064d}",
                    created_at=NOW - timedelta(hours=hours),
                    last_seen_at=NOW,
                )
            )

    seed(app, build)
    yield app


def test_user_list_json(people: Cli) -> None:
    rows = as_json(people.ok("user", "list", "--json"))
    assert [row["email"] for row in rows] == ["ann@example.org", "bob@example.org", "cat@example.org"]  # oldest first
    ann, bob, cat = rows
    assert (ann["admin"], bob["admin"], cat["admin"]) == (False, True, False)
    assert (ann["aliases"], bob["aliases"], cat["aliases"]) == (2, 1, 0)  # a deleted alias is not counted
    assert (ann["two_factor"], bob["two_factor"], cat["two_factor"]) == ("off", "totp", "passkeys")
    assert (bob["totp"], cat["passkeys"]) == (True, 1)
    assert ann["last_signin_at"] == (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert bob["last_signin_at"] is None
    assert ann["created_at"] == (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ann["email_verified"] is True and bob["email_verified"] is False


def test_user_list_table(people: Cli) -> None:
    out = people.ok("user", "list").stdout
    header, *lines = out.rstrip("\n").split("\n")
    assert header.split() == ["ID", "EMAIL", "ADMIN", "CREATED", "(UTC)", "ALIASES", "2FA", "LAST", "SIGN-IN", "(UTC)"]
    assert len(lines) == 3 and "gone@example.org" not in out
    columns_line_up(out, ["ID", "EMAIL", "ADMIN", "CREATED (UTC)", "2FA", "LAST SIGN-IN (UTC)"])
    ann = lines[0].split()
    assert ann[1:3] == ["ann@example.org", "no"] and ann[5] == "2" and ann[6] == "off"
    assert lines[1].split()[2] == "yes" and lines[1].split()[-2:] == ["totp", "-"]
    aliases_end = header.index("ALIASES") + len("ALIASES")
    assert all(line[aliases_end - 1].isdigit() for line in lines)  # numbers right-aligned under their title


def test_user_list_with_no_users(app: Cli) -> None:  # noqa: F811
    empty = app.ok("user", "list")
    assert empty.stdout == "" and "no users yet" in empty.stderr
    assert as_json(app.ok("user", "list", "--json")) == []


# --- user create's sentence -------------------------------------------------------------------


def test_user_create_says_what_it_created_and_how_to_sign_in(app: Cli) -> None:  # noqa: F811
    made = app.ok("user", "create", "ann@example.org")
    assert made.stdout.strip() == "1"  # scripts read the id
    assert made.stderr.strip() == (
        "Created the user ann@example.org (id 1). They have no password yet: they choose one through "
        "'Forgot your password?' on the web app's sign-in page."
    )
    app.env["OTHERMAIL_PUBLIC_URL"] = "https://mail.example.org/"
    admin = app.ok("user", "create", "bob@example.org", "--admin", "--password-stdin", input=PASSWORD + "\n")
    assert admin.stderr.strip() == (
        "Created the administrator bob@example.org (id 2). "
        "They sign in at https://mail.example.org/signin with the password given."
    )
    again = app.ok("user", "create", "ann@example.org")
    assert again.stderr.strip() == (
        "The user ann@example.org (id 1) already exists. They have no password yet: they choose one at "
        "https://mail.example.org/reset, then sign in at https://mail.example.org/signin."
    )
    promoted = app.ok("user", "create", "ann@example.org", "--admin")
    assert promoted.stderr.startswith("The administrator ann@example.org (id 1) already existed and was made an admin")
    same = app.ok("user", "create", "bob@example.org", "--admin")
    assert same.stderr.strip() == (
        "The administrator bob@example.org (id 2) already exists. "
        "They sign in at https://mail.example.org/signin with their password."
    )


# --- alias list -------------------------------------------------------------------------------


ALIASES = {
    # address: (owner, created days ago, enabled, expires in hours, max messages, messages, forwarded, last mail h ago)
    "plain@othermail.example": ("ann", 5, True, None, None, 3, 3, 2),
    "soon@othermail.example": ("ann", 4, True, 6, None, 0, 0, None),
    "counted@alias.example": ("bob", 3, True, None, 10, 4, 9, 1),
    "used-up@alias.example": ("bob", 2, True, None, 2, 2, 1, 30),
    "past@othermail.example": ("cat", 1, False, -1, None, 0, 5, None),
    "off@alias.example": ("cat", 6, False, None, None, 0, 0, None),
}
STATES = {
    "active": {"plain@othermail.example", "soon@othermail.example", "counted@alias.example"},
    "expiring": {"soon@othermail.example", "counted@alias.example"},
    "expired": {"used-up@alias.example", "past@othermail.example"},
    "disabled": {"off@alias.example"},
}


@pytest.fixture
def aliases(app: Cli) -> Iterator[Cli]:  # noqa: F811
    def build(session: Any) -> None:
        users = {name: User(email=f"{name}@example.org") for name in ("ann", "bob", "cat")}
        session.add_all(users.values())
        session.flush()
        for address, (owner, age, enabled, expires, limit, messages, forwarded, used) in ALIASES.items():
            session.add(
                Alias(
                    address=address,
                    user_id=users[owner].id,
                    enabled=enabled,
                    created_at=NOW - timedelta(days=age),
                    expires_at=NOW + timedelta(hours=expires) if expires is not None else None,
                    max_messages=limit,
                    message_count=messages,
                    forwarded_count=forwarded,
                    last_used_at=NOW - timedelta(hours=used) if used is not None else None,
                )
            )
        session.add(Alias(address="deleted@othermail.example", user_id=users["ann"].id, deleted_at=NOW))

    seed(app, build)
    yield app


def addresses(cli: Cli, *args: str) -> list[str]:
    return [row["address"] for row in as_json(cli.ok("alias", "list", "--json", *args))]


def test_alias_list_json_fields_and_default_order(aliases: Cli) -> None:
    rows = as_json(aliases.ok("alias", "list", "--json"))
    created = sorted(ALIASES, key=lambda address: ALIASES[address][1])  # newest first
    assert [row["address"] for row in rows] == created  # the deleted one left out
    by = {row["address"]: row for row in rows}
    assert by["counted@alias.example"] | {"created_at": None} == {
        "id": by["counted@alias.example"]["id"],
        "address": "counted@alias.example",
        "owner": "bob@example.org",
        "state": "expiring",
        "enabled": True,
        "created_at": None,
        "expires_at": None,
        "idle_days": None,
        "max_messages": 10,
        "messages": 4,
        "forwarded": 9,
        "blocked": 0,
        "last_mail_at": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "label": None,
    }
    shown = {row["address"]: row["state"] for row in rows}
    assert shown == {
        "plain@othermail.example": "active",
        "soon@othermail.example": "expiring",
        "counted@alias.example": "expiring",
        "used-up@alias.example": "expired",
        "past@othermail.example": "expired",  # switched off and expired: expired
        "off@alias.example": "disabled",
    }


@pytest.mark.parametrize("state", list(STATES))
def test_alias_list_filters_by_state(aliases: Cli, state: str) -> None:
    assert set(addresses(aliases, "--state", state)) == STATES[state]


def test_alias_list_filters_by_owner_and_domain(aliases: Cli) -> None:
    assert set(addresses(aliases, "--owner", "Bob@Example.org")) == {"counted@alias.example", "used-up@alias.example"}
    assert set(addresses(aliases, "--domain", "alias.example")) == {a for a in ALIASES if a.endswith("@alias.example")}
    assert addresses(aliases, "--domain", "@ALIAS.example", "--owner", "cat@example.org", "--state", "disabled") == [
        "off@alias.example"
    ]
    assert addresses(aliases, "--domain", "other.example") == []
    assert addresses(aliases, "--domain", "example") == []  # a whole domain, not a suffix
    assert addresses(aliases, "--domain", "alias_example") == []  # LIKE's wildcards are literal


@pytest.mark.parametrize(
    ("sort", "key", "descending"),
    [
        ("created", lambda a: -ALIASES[a][1], True),
        ("address", lambda a: a, False),
        ("owner", lambda a: ALIASES[a][0], False),
        ("forwarded", lambda a: ALIASES[a][6], True),
        ("messages", lambda a: ALIASES[a][5], True),
    ],
)
def test_alias_list_sorts_both_ways(aliases: Cli, sort: str, key: Any, descending: bool) -> None:
    listed = addresses(aliases, "--sort", sort)
    values = [key(address) for address in listed]
    assert values == sorted(values, reverse=descending)
    reverse = addresses(aliases, "--sort", sort, "--reverse")
    assert [key(address) for address in reverse] == sorted(values, reverse=not descending)
    if len(set(values)) == len(values):
        assert reverse == listed[::-1]


def test_alias_list_puts_nothing_last_both_ways(aliases: Cli) -> None:
    used = addresses(aliases, "--sort", "used")
    assert used[:3] == ["counted@alias.example", "plain@othermail.example", "used-up@alias.example"]
    assert set(used[3:]) == {"soon@othermail.example", "past@othermail.example", "off@alias.example"}
    assert addresses(aliases, "--sort", "used", "--reverse")[:3] == used[:3][::-1]
    assert addresses(aliases, "--sort", "expires")[:2] == ["past@othermail.example", "soon@othermail.example"]


def test_alias_list_limit(aliases: Cli) -> None:
    assert addresses(aliases, "--sort", "address", "--limit", "2") == sorted(ALIASES)[:2]


def test_alias_list_table(aliases: Cli) -> None:
    out = aliases.ok("alias", "list", "--sort", "address").stdout
    header, *lines = out.rstrip("\n").split("\n")
    assert [line.split()[1] for line in lines] == sorted(ALIASES)
    assert header.startswith("ID  ADDRESS") and "FORWARDED" in header
    columns_line_up(out, ["ID", "ADDRESS", "OWNER", "STATE", "CREATED (UTC)", "EXPIRES (UTC)"])
    soon = next(line for line in lines if "soon@" in line)
    expires = (NOW + timedelta(hours=6)).strftime("%Y-%m-%d %H:%M")
    assert soon[header.index("EXPIRES (UTC)") :].startswith(expires)
    assert soon.split()[3] == "expiring"
    empty = aliases.ok("alias", "list", "--domain", "nowhere.example")
    assert empty.stdout == "" and empty.stderr.strip() == "no aliases match"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--owner", "nobody@example.org"], "--owner"),
        (["--owner", "not an address"], "--owner"),
        (["--state", "sleeping"], "--state"),
        (["--sort", "colour"], "--sort"),
        (["--domain", "two words"], "--domain"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_alias_list_mistakes_are_one_line_naming_the_option(aliases: Cli, args: list[str], option: str) -> None:
    one_line_error(aliases.run("alias", "list", *args), option)


# --- token list / revoke ----------------------------------------------------------------------


@pytest.fixture
def tokens(app: Cli) -> Iterator[Cli]:  # noqa: F811
    app.ok("user", "create", "ann@example.org")
    app.ok("user", "create", "bob@example.org")
    app.ok("token", "create", "--user", "ann@example.org", "--name", "backup", "--expires-days", "30")
    app.ok("token", "create", "--user", "bob@example.org", "--name", "evil\x1b[2Jname", "--scope", "write")
    app.ok("token", "create", "--user", "ann@example.org", "--name", "old", "--expires-days", "1")

    def age(session: Any) -> None:
        old = session.scalars(select(ApiToken).where(ApiToken.name == "old")).one()
        old.expires_at = NOW - timedelta(hours=1)
        backup = session.scalars(select(ApiToken).where(ApiToken.name == "backup")).one()
        backup.last_used_at = NOW - timedelta(minutes=5)

    seed(app, age)
    yield app


def test_token_list_json_and_the_email_filter(tokens: Cli) -> None:
    rows = as_json(tokens.ok("token", "list", "--json"))
    assert [(row["id"], row["name"], row["user"], row["state"]) for row in rows] == [
        (3, "old", "ann@example.org", "expired"),
        (2, "evil\x1b[2Jname", "bob@example.org", "active"),
        (1, "backup", "ann@example.org", "active"),
    ]
    backup = rows[2]
    assert backup["scope"] == "read" and backup["prefix"].startswith("om_") and len(backup["prefix"]) == 10
    assert backup["last_used_at"] == (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert backup["expires_at"].endswith("Z") and rows[1]["expires_at"] is None
    stored = {row.id: row.token_hash for row in tokens.query(select(ApiToken))}
    assert not any(stored[row["id"]] in json.dumps(row) for row in rows)
    assert [row["name"] for row in as_json(tokens.ok("token", "list", "--email", "ANN@example.org", "--json"))] == [
        "old",
        "backup",
    ]
    one_line_error(tokens.run("token", "list", "--email", "nobody@example.org"), "--email")
    one_line_error(tokens.run("token", "list", "--email", "nonsense"), "--email")


def test_token_list_table_escapes_control_characters(tokens: Cli) -> None:
    out = tokens.ok("token", "list").stdout
    assert "\x1b" not in out and "evil\\x1b[2Jname" in out
    columns_line_up(out, ["ID", "USER", "NAME", "TOKEN", "SCOPE", "STATE", "CREATED (UTC)", "EXPIRES (UTC)"])
    header, *lines = out.rstrip("\n").split("\n")
    assert [line.split()[0] for line in lines] == ["3", "2", "1"]
    assert lines[2].endswith((NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M"))


def test_token_revoke(tokens: Cli) -> None:
    done = tokens.ok("token", "revoke", "1")
    assert (
        done.stderr.startswith("API token 1 (om_") and "of ann@example.org revoked: it no longer works" in done.stderr
    )
    [backup] = tokens.query(select(ApiToken).where(ApiToken.id == 1))
    assert backup.revoked_at is not None
    assert [row["state"] for row in as_json(tokens.ok("token", "list", "--json"))] == ["expired", "active", "revoked"]
    again = tokens.ok("token", "revoke", "1")
    assert "was already revoked on" in again.stderr
    [still] = tokens.query(select(ApiToken).where(ApiToken.id == 1))
    assert still.revoked_at == backup.revoked_at
    one_line_error(tokens.run("token", "revoke", "99"), "ID")
    one_line_error(tokens.run("token", "revoke", "one"), "ID")
    assert [row.revoked_at is None for row in tokens.query(select(ApiToken).order_by(ApiToken.id))] == [
        False,
        True,
        True,
    ]


def test_token_list_with_none(app: Cli) -> None:  # noqa: F811
    empty = app.ok("token", "list")
    assert empty.stdout == "" and empty.stderr.strip() == "no API tokens"


# --- the formatter ----------------------------------------------------------------------------


def test_table_cells_and_alignment() -> None:
    assert cell(None) == "-" and cell(True) == "yes" and cell(False) == "no"
    assert cell(datetime(2026, 12, 7, 18, 4, 59)) == "2026-12-07 18:04"  # a naive time is UTC
    assert cell("a\nb\u202ec") == "a\\nb\\u202ec"
    text = table([{"n": 5, "s": "x"}, {"n": 123, "s": "longer"}], [Column("n", "N", right=True), Column("s", "S")])
    assert text.split("\n") == ["  N  S", "  5  x", "123  longer"]


def test_the_list_commands_do_not_import_flask_or_the_web_app(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from forwarder.cli import alias, tables, token, user; "
        "sys.exit(1 if 'flask' in sys.modules or 'web' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[3]).returncode == 0


# --- the same queries on every backend ----------------------------------------------------------


def test_the_list_commands_on_every_backend(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state conditions, the correlated counts and NULLs-last ordering on SQLite, PostgreSQL
    and MariaDB."""
    import os

    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    cli = Cli(tmp_path)
    cli.env["OTHERMAIL_DATABASE_URL"] = migrated_url
    engine = make_engine(migrated_url)
    try:
        with make_session_factory(engine)() as session:
            users = {
                name: User(email=f"{name}@example.org", created_at=NOW - timedelta(days=9 - n))
                for n, name in enumerate(("ann", "bob", "cat"))
            }
            session.add_all(users.values())
            session.flush()
            for address, (owner, age, enabled, expires, limit, messages, forwarded, used) in ALIASES.items():
                session.add(
                    Alias(
                        address=address,
                        user_id=users[owner].id,
                        enabled=enabled,
                        created_at=NOW - timedelta(days=age),
                        expires_at=NOW + timedelta(hours=expires) if expires is not None else None,
                        max_messages=limit,
                        message_count=messages,
                        forwarded_count=forwarded,
                        last_used_at=NOW - timedelta(hours=used) if used is not None else None,
                    )
                )
            session.add(UserSession(user_id=users["bob"].id, token_hash="1" * 64, created_at=NOW, last_seen_at=NOW))
            session.commit()
    finally:
        engine.dispose()

    for state, expected in STATES.items():
        assert set(addresses(cli, "--state", state)) == expected, state
    used = addresses(cli, "--sort", "used")
    assert used[:3] == ["counted@alias.example", "plain@othermail.example", "used-up@alias.example"]
    assert addresses(cli, "--sort", "used", "--reverse")[:3] == used[:3][::-1]
    assert addresses(cli, "--sort", "owner", "--limit", "2") == ["plain@othermail.example", "soon@othermail.example"]
    assert set(addresses(cli, "--domain", "alias.example")) == {a for a in ALIASES if a.endswith("@alias.example")}
    people = as_json(cli.ok("user", "list", "--json"))
    assert [(row["email"], row["aliases"]) for row in people] == [
        ("ann@example.org", 2),
        ("bob@example.org", 2),
        ("cat@example.org", 2),
    ]
    assert [row["last_signin_at"] is not None for row in people] == [False, True, False]
