"""``othermail keys new`` and ``othermail keys rotate`` (issue 14) through click's CliRunner on SQLite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from forwarder.adapters.sealing import Sealer, parse_keys
from forwarder.adapters.sql.contacts import SqlContactBook
from forwarder.cli.main import cli
from models import Alias, Contact, MessageLink, User, make_engine, make_session_factory

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path
        self.env = {"OTHERMAIL_DATA_DIR": str(tmp_path), "OTHERMAIL_SENDER": "outbox"}
        self.runner = CliRunner()
        self.url = f"sqlite:///{(tmp_path / 'othermail.db').resolve()}"

    def run(self, *args: str, **env: str) -> Result:
        return self.runner.invoke(cli, list(args), env=self.env | env, catch_exceptions=True)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path)
    assert runner.run("db", "upgrade").exit_code == 0
    yield runner


def test_keys_new_prints_one_fresh_entry(app: Cli) -> None:
    first, second = app.run("keys", "new"), app.run("keys", "new")
    assert first.exit_code == 0 and second.exit_code == 0
    entry = first.stdout.strip()
    assert len(first.stdout.strip().splitlines()) == 1 and entry != second.stdout.strip()
    ((key_id, key),) = parse_keys(entry)
    assert len(key) == 32 and entry.startswith(key_id + ":")
    assert "OTHERMAIL_CONTACT_KEYS" in first.stderr


def test_rotate_reseals_every_row_and_lookups_work_before_during_and_after(app: Cli) -> None:
    old = app.run("keys", "new").stdout.strip()
    new = app.run("keys", "new").stdout.strip()
    engine = make_engine(app.url)
    try:
        with make_session_factory(engine)() as session:
            user = User(email="owner@example.org")
            session.add(user)
            session.flush()
            alias = Alias(address="shop@othermail.example", user_id=user.id)
            session.add(alias)
            session.commit()
            alias_id = alias.id
        before = SqlContactBook(engine, Sealer(parse_keys(old)), lambda: NOW)
        ref = before.create(alias_id, "othermail.example", "ann@example.net", "Ann")
        before.link(alias_id, ref.contact_id, ["<s1@email.amazonses.com>"], "<o1@example.net>")

        def works(keys: str) -> None:
            contacts = SqlContactBook(engine, Sealer(parse_keys(keys)), lambda: NOW)
            found = contacts.by_reverse(ref.reverse)
            assert found is not None and found.address == "ann@example.net"
            assert contacts.original_for(alias_id, "<s1@email.amazonses.com>") == "<o1@example.net>"

        works(old)
        result = app.run("keys", "rotate", OTHERMAIL_CONTACT_KEYS=f"{new},{old}")
        assert result.exit_code == 0, result.output
        assert (
            result.stdout.strip().splitlines()[-1]
            == f"re-sealed 1 contacts, 1 message links and 0 two-factor secrets under key {new.split(':')[0]}"
        )
        works(f"{new},{old}")
        works(new)
        with engine.connect() as connection:
            sealed = connection.execute(select(Contact.address_sealed)).scalars().all()
            sealed += connection.execute(select(MessageLink.original_sealed)).scalars().all()
        assert sealed and all(text.startswith(new.split(":")[0] + ":") for text in sealed)
    finally:
        engine.dispose()


def test_rotate_with_a_key_missing_is_one_line(app: Cli) -> None:
    old = app.run("keys", "new").stdout.strip()
    engine = make_engine(app.url)
    try:
        with make_session_factory(engine)() as session:
            user = User(email="owner@example.org")
            session.add(user)
            session.flush()
            alias = Alias(address="shop@othermail.example", user_id=user.id)
            session.add(alias)
            session.commit()
            SqlContactBook(engine, Sealer(parse_keys(old)), lambda: NOW).create(
                alias.id, "othermail.example", "a@b.example"
            )
    finally:
        engine.dispose()
    result = app.run("keys", "rotate", OTHERMAIL_CONTACT_KEYS=app.run("keys", "new").stdout.strip())
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "key" in result.output
    bad = app.run("keys", "rotate", OTHERMAIL_CONTACT_KEYS="junk")
    assert bad.exit_code != 0 and bad.output.strip().startswith("Error: OTHERMAIL_CONTACT_KEYS")
    assert len(bad.output.strip().splitlines()) == 1


def test_rotate_reseals_totp_secrets_so_the_old_key_can_go(app: Cli) -> None:
    """Issue 16: a TOTP secret sealed under the old key still opens after rotating with the new key alone."""
    old = app.run("keys", "new").stdout.strip()
    new = app.run("keys", "new").stdout.strip()
    engine = make_engine(app.url)
    try:
        with make_session_factory(engine)() as session:
            session.add(User(email="owner@example.org", totp_secret=Sealer(parse_keys(old)).seal("JBSWY3DPEHPK3PXP")))
            session.add(User(email="other@example.org"))  # no TOTP: nothing to re-seal
            session.commit()
        result = app.run("keys", "rotate", OTHERMAIL_CONTACT_KEYS=f"{new},{old}")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith("and 1 two-factor secrets under key " + new.split(":")[0])
        with engine.connect() as connection:
            sealed = connection.execute(select(User.totp_secret).where(User.totp_secret.is_not(None))).scalar_one()
        assert Sealer(parse_keys(new)).open(sealed) == "JBSWY3DPEHPK3PXP"  # the old key is no longer needed
    finally:
        engine.dispose()
