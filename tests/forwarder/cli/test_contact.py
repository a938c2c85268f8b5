"""``othermail contact create|list`` and ``othermail rule add|list|remove`` (issue 14) through CliRunner on SQLite."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forwarder.cli.main import cli


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.env = {
            "OTHERMAIL_DATA_DIR": str(tmp_path),
            "OTHERMAIL_SENDER": "outbox",
            "OTHERMAIL_DOMAINS": "othermail.example",
        }
        self.runner = CliRunner()

    def run(self, *args: str) -> Result:
        return self.runner.invoke(cli, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path)
    assert runner.run("db", "upgrade").exit_code == 0
    yield runner


@pytest.fixture
def alias(app: Cli) -> str:
    created = app.run("alias", "create", "--owner", "ann@example.org", "--destination", "home@real.example")
    assert created.exit_code == 0, created.output
    return created.stdout.strip().splitlines()[-1]


def test_contact_create_prints_the_reverse_address_alone_on_its_last_line(app: Cli, alias: str) -> None:
    result = app.run("contact", "create", alias, "Bob@Example.NET", "--name", "Bob")
    assert result.exit_code == 0, result.output
    reverse = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-z2-7]{16}@othermail\.example", reverse), reverse
    again = app.run("contact", "create", alias, "bob@example.net")
    assert again.stdout.strip().splitlines()[-1] == reverse
    listed = app.run("contact", "list", alias)
    assert listed.exit_code == 0
    (line,) = listed.stdout.strip().splitlines()
    assert line.startswith(f"{reverse}\tbob@example.net\tforwarded=0 replied=0 blocked=0\tlast seen never")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("nobody@othermail.example", "bob@example.net"), "is not a live alias"),
        (("ALIAS", "x@othermail.example"), "an address of this service"),
        (("ALIAS", "home@real.example"), "the alias owner's own address"),
        (("ALIAS", "ann@example.org"), "the alias owner's own address"),
        (("ALIAS", "not-an-address"), "is not an email address"),
    ],
)
def test_contact_create_errors_are_one_line(app: Cli, alias: str, args: tuple[str, str], words: str) -> None:
    result = app.run("contact", "create", *(alias if a == "ALIAS" else a for a in args))
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert words in result.stderr


def test_rules_add_list_remove(app: Cli, alias: str) -> None:
    on_alias = app.run("rule", "add", "--alias", alias, "block", "domain", "Spam.Example")
    assert on_alias.exit_code == 0, on_alias.output
    on_account = app.run("rule", "add", "--owner", "ann@example.org", "allow", "empty-sender")
    assert on_account.exit_code == 0, on_account.output
    alias_rule, account_rule = on_alias.stdout.strip(), on_account.stdout.strip()
    assert app.run("rule", "list", "--alias", alias).stdout.splitlines() == [
        f"{alias_rule}\talias 1\tblock\tdomain\tspam.example"
    ]
    assert app.run("rule", "list", "--owner", "ann@example.org").stdout.splitlines() == [
        f"{alias_rule}\talias 1\tblock\tdomain\tspam.example",
        f"{account_rule}\taccount\tallow\tempty-sender\t",
    ]
    assert app.run("rule", "remove", alias_rule).exit_code == 0
    assert app.run("rule", "list", "--alias", alias).stdout == ""
    gone = app.run("rule", "remove", alias_rule)
    assert gone.exit_code != 0 and f"no rule {alias_rule}" in gone.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("add", "block", "address", "no-at-sign"), "is not an email address"),
        (("add", "--owner", "ann@example.org", "--alias", "ALIAS", "block", "empty-sender"), "exactly one of"),
        (("add", "block", "sometimes", "x"), "'sometimes' is not one of"),
    ],
)
def test_rule_errors_are_one_line(app: Cli, alias: str, args: tuple[str, ...], words: str) -> None:
    args = tuple(alias if a == "ALIAS" else a for a in args)
    if "--owner" not in args:
        args = (args[0], "--alias", alias, *args[1:])
    result = app.run("rule", *args)
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
