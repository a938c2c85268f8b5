"""The CLI takes the addresses the web app takes, no others (forwarder.accounts.accepted_address),
and ``alias create --owner`` says so when it creates a missing account."""

from __future__ import annotations

import pytest
from click.testing import Result
from sqlalchemy import select

from models import Alias, Destination, User
from tests.forwarder.cli.test_cli import DESTINATION, OWNER, Cli, app  # noqa: F401  (app: the fixture)

ODD = [
    '"quoted local"@example.org',
    '"q x"@example.org',
    "a\\b@example.org",
    "ann@example.org.",
    "ann@example..org",
    "a@b@example.org",
]


def one_line_error(result: Result, name: str) -> str:
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0] and "not an email address" in lines[0], result.stderr
    return lines[0]


@pytest.mark.parametrize("address", ODD)
def test_user_create_refuses_what_the_web_refuses(app: Cli, address: str) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    one_line_error(app.run("user", "create", address), "EMAIL")
    assert app.query(select(User.id)) == []


@pytest.mark.parametrize("address", ODD[:2])
def test_user_reset_password_refuses_what_the_web_refuses(app: Cli, address: str) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    one_line_error(app.run("user", "reset-password", address), "EMAIL")


@pytest.mark.parametrize(
    "option, address",
    [
        ("--destination", '"q x"@example.org'),
        ("--owner", '"quoted local"@example.org'),
        ("--destination", "d@example.org."),
    ],
)
def test_alias_create_refuses_what_the_web_refuses(app: Cli, option: str, address: str) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    args = {"--owner": OWNER, "--destination": DESTINATION, option: address}
    one_line_error(app.run("alias", "create", *[part for pair in args.items() for part in pair]), option)
    assert app.query(select(Alias.id)) == [] and app.query(select(Destination.id)) == []


def test_alias_create_says_when_it_creates_the_owners_account(app: Cli) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    first = app.ok("alias", "create", "--owner", "Nobody@Example.org", "--destination", DESTINATION)
    assert "user nobody@example.org created (no password" in first.stderr
    assert first.stdout.strip().endswith("@othermail.example")  # the alias is still made, exit status 0
    assert app.query(select(User.email, User.password_hash)) == [("nobody@example.org", None)]
    second = app.ok("alias", "create", "--owner", "nobody@example.org", "--destination", DESTINATION)
    assert "created" not in second.stderr  # an existing account: nothing to say
