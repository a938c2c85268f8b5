"""The ``othermail`` operator CLI through click's CliRunner, on SQLite and a Maildir outbox.

Every invocation gets its whole OTHERMAIL_* environment from the test: whatever the developer's
shell exports is removed first.
"""

from __future__ import annotations

import json
import mailbox
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from forwarder.cli.main import cli
from models import Alias, Delivery, Destination, User, alias_destinations, make_engine, make_session_factory, utcnow

OWNER = "o@example.org"
DESTINATION = "d@example.org"
DOMAINS = "othermail.example,second.example"

ORDER = (
    b"From: Shop <shop@store.example>\n"
    b"To: {to}\n"
    b"Subject: Your order shipped\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
    b"Message-ID: <order-1@store.example>\n"
    b"\n"
    b"Tracking number 12345.\n"
)
SPAM = (
    b"From: Prize Team <win@prize.example>\n"
    b"To: {to}\n"
    b"X-SES-Spam-Verdict: FAIL\n"
    b"X-SES-Virus-Verdict: PASS\n"
    b"Subject: You won\n"
    b"Date: Mon, 23 Nov 2026 11:00:00 +0000\n"
    b"Message-ID: <spam-1@prize.example>\n"
    b"\n"
    b"Claim your prize now.\n"
)
LINE_KEYS = {"file", "outcome", "reason", "bytes_in", "bytes_out"}


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.data_dir = tmp_path / "var"
        self.outbox = self.data_dir / "outbox"
        self.env = {
            "OTHERMAIL_DATA_DIR": str(self.data_dir),
            "OTHERMAIL_DOMAINS": DOMAINS,
            "OTHERMAIL_SENDER": "outbox",
        }
        self.runner = CliRunner()

    def run(self, *args: str, **env: str) -> Result:
        return self.runner.invoke(cli, list(args), env={**self.env, **env}, catch_exceptions=True)

    def ok(self, *args: str, **env: str) -> Result:
        result = self.run(*args, **env)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'othermail.db').resolve()}"

    def query(self, statement: Any) -> list:
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session:
                return list(session.execute(statement).all())
        finally:
            engine.dispose()

    def create_alias(self, *extra: str) -> str:
        self.ok("db", "upgrade")
        result = self.ok("alias", "create", "--owner", OWNER, "--destination", DESTINATION, *extra)
        return result.stdout.strip()

    def message(self, name: str, template: bytes, to: str) -> Path:
        path = self.tmp / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(template.replace(b"{to}", to.encode()))
        return path

    def outbox_messages(self) -> list[bytes]:
        if not self.outbox.exists():
            return []
        box = mailbox.Maildir(str(self.outbox), create=False)
        return [box.get_bytes(key) for key in box.keys()]


def json_lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    yield Cli(tmp_path)


# --------------------------------------------------------------------------- db, alias


def test_db_upgrade_creates_the_sqlite_database_and_is_repeatable(app: Cli) -> None:
    first = app.ok("db", "upgrade")
    assert "database at revision" in first.stdout
    assert (app.data_dir / "othermail.db").is_file()
    second = app.ok("db", "upgrade")
    assert second.stdout == first.stdout


def test_alias_create_prints_an_address_on_the_first_domain_and_stores_the_limits(app: Cli) -> None:
    app.ok("db", "upgrade")
    before = utcnow()
    result = app.ok(
        "alias", "create", "--owner", OWNER, "--destination", DESTINATION, "--expires-in", "2h", "--max-messages", "3"
    )
    after = utcnow()
    address = result.stdout.strip()
    local, _, domain = address.partition("@")
    assert domain == "othermail.example"
    assert local and "\n" not in address
    [(alias,)] = app.query(select(Alias))
    assert alias.address == address
    assert alias.max_messages == 3
    assert alias.idle_days is None
    slack = timedelta(seconds=1)
    assert before + timedelta(hours=2) - slack <= alias.expires_at <= after + timedelta(hours=2) + slack
    [(email, verified_at)] = app.query(
        select(Destination.email, Destination.verified_at)
        .join(alias_destinations, alias_destinations.c.destination_id == Destination.id)
        .where(alias_destinations.c.alias_id == alias.id)
    )
    assert email == DESTINATION and verified_at is not None
    [(owner,)] = app.query(select(User.email).where(User.id == alias.user_id))
    assert owner == OWNER


def test_alias_create_on_another_domain_with_a_custom_local_part(app: Cli) -> None:
    address = app.create_alias("--domain", "Second.Example", "--local-part", "Shop", "--idle-days", "30")
    assert address == "shop@second.example"
    [(idle_days, expires_at)] = app.query(select(Alias.idle_days, Alias.expires_at))
    assert idle_days == 30 and expires_at is None


def test_alias_create_refuses_a_taken_local_part(app: Cli) -> None:
    app.create_alias("--local-part", "shop")
    result = app.run("alias", "create", "--owner", OWNER, "--destination", DESTINATION, "--local-part", "SHOP")
    assert result.exit_code == 1
    assert "is taken" in result.output
    assert len(app.query(select(Alias.id))) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--expires-in", "2y"], "not a duration"),
        (["--local-part", "postmaster"], "reserved"),
        (["--max-messages", "0"], "--max-messages"),
    ],
)
def test_alias_create_reports_bad_input_without_a_traceback(app: Cli, args: list, message: str) -> None:
    app.ok("db", "upgrade")
    result = app.run("alias", "create", "--owner", OWNER, "--destination", DESTINATION, *args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert message in result.output
    assert app.query(select(Alias.id)) == []


def test_alias_create_on_an_unknown_domain_is_a_usage_error(app: Cli) -> None:
    app.ok("db", "upgrade")
    result = app.run("alias", "create", "--owner", OWNER, "--destination", DESTINATION, "--domain", "evil.example")
    assert result.exit_code == 2
    assert "evil.example is not one of othermail.example, second.example" in result.output


# --------------------------------------------------------------------------- forward


def test_forward_dry_run_prints_one_line_per_file_and_writes_only_forwarded_ones(app: Cli) -> None:
    alias = app.create_alias()
    order = app.message("order.eml", ORDER, alias)
    spam = app.message("spam.eml", SPAM, alias)
    out = app.tmp / "preview"
    result = app.ok("forward", "--dry-run", "--recipient", alias, "--out", str(out), str(order), str(spam))
    lines = json_lines(result)
    assert len(lines) == 2
    assert all(set(line) == LINE_KEYS for line in lines)
    first, second = lines
    assert first["file"] == str(order)
    assert first["outcome"] == "forwarded"
    assert first["bytes_in"] == len(order.read_bytes())
    assert second["file"] == str(spam)
    assert second["outcome"] == "dropped-spam"
    assert second["reason"]
    assert second["bytes_in"] == len(spam.read_bytes()) and second["bytes_out"] is None
    # Only the forwarded file is written, and it is the rewritten message.
    assert sorted(p.name for p in out.iterdir()) == ["order.eml"]
    written = (out / "order.eml").read_bytes()
    assert len(written) == first["bytes_out"]
    assert b"Tracking number 12345." in written
    assert b"Subject: Your order shipped" in written
    assert b"\nFrom: Shop <shop@store.example>" not in b"\n" + written  # From is rewritten to the alias
    # Nothing sent, nothing recorded.
    assert app.outbox_messages() == []
    assert app.query(select(func.count()).select_from(Delivery)) == [(0,)]
    assert app.query(select(Alias.message_count)) == [(0,)]


def test_forward_dry_run_without_out_writes_nothing(app: Cli) -> None:
    alias = app.create_alias()
    order = app.message("order.eml", ORDER, alias)
    result = app.ok("forward", "--dry-run", "--recipient", alias, str(order))
    assert [line["outcome"] for line in json_lines(result)] == ["forwarded"]
    assert sorted(p.name for p in (app.tmp / "in").iterdir()) == ["order.eml"]
    assert app.outbox_messages() == []


def test_forward_unknown_recipient_is_dropped_with_exit_code_0(app: Cli) -> None:
    app.create_alias()
    order = app.message("order.eml", ORDER, "nobody@othermail.example")
    for extra in (["--dry-run"], []):
        result = app.run("forward", *extra, "--recipient", "nobody@othermail.example", str(order))
        assert result.exit_code == 0, result.output
        [line] = json_lines(result)
        assert line["outcome"] == "dropped-unknown-alias"
        assert line["bytes_out"] is None
    assert app.outbox_messages() == []


def test_forward_spam_is_dropped(app: Cli) -> None:
    alias = app.create_alias()
    spam = app.message("spam.eml", SPAM, alias)
    [line] = json_lines(app.ok("forward", "--recipient", alias, str(spam)))
    assert line["outcome"] == "dropped-spam"
    assert app.outbox_messages() == []
    assert app.query(select(Delivery.outcome)) == [("dropped-spam",)]


def test_forward_to_the_outbox_delivers_exactly_once_across_runs(app: Cli) -> None:
    alias = app.create_alias()
    order = app.message("order.eml", ORDER, alias)
    [first] = json_lines(app.ok("forward", "--recipient", alias, str(order)))
    assert first["outcome"] == "forwarded"
    assert set(first) == LINE_KEYS
    [message] = app.outbox_messages()
    assert message.startswith(f"Delivered-To: {DESTINATION}\n".encode())
    assert len(message) - len(f"Delivered-To: {DESTINATION}\n") == first["bytes_out"]
    assert b"Tracking number 12345." in message

    [second] = json_lines(app.ok("forward", "--recipient", alias, str(order)))
    assert second["outcome"] == "duplicate"
    assert app.outbox_messages() == [message]
    assert app.query(select(Delivery.outcome)) == [("forwarded",)]


def test_forward_outbox_path_is_configurable(app: Cli) -> None:
    alias = app.create_alias()
    order = app.message("order.eml", ORDER, alias)
    box = app.tmp / "elsewhere"
    app.ok("forward", "--recipient", alias, str(order), OTHERMAIL_OUTBOX=str(box))
    assert len(mailbox.Maildir(str(box), create=False)) == 1
    assert app.outbox_messages() == []


def test_forward_a_missing_file_is_a_usage_error(app: Cli) -> None:
    app.create_alias()
    result = app.run("forward", "--recipient", "x@othermail.example", str(app.tmp / "missing.eml"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


# --------------------------------------------------------------------------- settings, demo


@pytest.mark.parametrize(
    "name, value",
    [
        ("OTHERMAIL_SES_API", "v3"),
        ("OTHERMAIL_SENDER", "pigeon"),
        ("OTHERMAIL_DROP_SPAM", "maybe"),
        ("OTHERMAIL_CLAIM_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_bad_settings_exit_non_zero_naming_the_variable(app: Cli, name: str, value: str) -> None:
    result = app.run("db", "upgrade", **{name: value})
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a clean error, not a traceback
    assert name in result.output
    assert not (app.data_dir / "othermail.db").exists()


def test_demo_twice_sends_nothing_the_second_time(app: Cli) -> None:
    first = app.ok("demo", "--in-place")
    assert "alias demo@othermail.example forwards to you@example.org" in first.stdout
    first_lines = json_lines(first)
    assert first_lines and all(set(line) == LINE_KEYS for line in first_lines)
    forwarded = [line for line in first_lines if line["outcome"] == "forwarded"]
    assert forwarded
    count = len(app.outbox_messages())
    assert count == len(forwarded)
    assert f"holds {count} forwarded message(s)" in first.stdout

    second = app.ok("demo", "--in-place")
    second_lines = json_lines(second)
    assert [line["file"] for line in second_lines] == [line["file"] for line in first_lines]
    assert all(line["outcome"] == "duplicate (already handled)" for line in second_lines)
    assert len(app.outbox_messages()) == count
    assert f"holds {count} forwarded message(s)" in second.stdout
