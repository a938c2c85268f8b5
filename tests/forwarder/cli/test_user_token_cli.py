"""``othermail user create`` and ``othermail token create`` through click's CliRunner on SQLite."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from forwarder.cli.main import cli
from models import ApiToken, User, make_engine, make_session_factory

PASSWORD = "correct horse battery"


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path
        self.env = {"OTHERMAIL_DATA_DIR": str(tmp_path), "OTHERMAIL_SENDER": "outbox"}
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(cli, list(args), env=self.env, input=input, catch_exceptions=True)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def query(self, statement: Any) -> list:
        engine = make_engine(f"sqlite:///{(self.data_dir / 'othermail.db').resolve()}")
        try:
            with make_session_factory(engine)() as session:
                return list(session.scalars(statement).all())
        finally:
            engine.dispose()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path)
    runner.ok("db", "upgrade")
    yield runner


def test_user_create_prints_the_id_and_leaves_the_password_unset(app: Cli) -> None:
    result = app.ok("user", "create", "Ann@Example.org")
    [user] = app.query(select(User))
    assert result.stdout.strip() == str(user.id)
    assert user.email == "ann@example.org"
    assert user.password_hash is None and not user.is_admin


def test_user_create_with_admin_promotes_an_existing_user(app: Cli) -> None:
    first = app.ok("user", "create", "ann@example.org").stdout.strip()
    again = app.ok("user", "create", "ann@example.org", "--admin").stdout.strip()
    assert first == again
    [user] = app.query(select(User))
    assert user.is_admin


def test_user_create_reads_a_password_from_stdin(app: Cli) -> None:
    from argon2 import PasswordHasher

    app.ok("user", "create", "ann@example.org", "--password-stdin", input=PASSWORD + "\n")
    [user] = app.query(select(User))
    assert PasswordHasher().verify(user.password_hash, PASSWORD)
    assert user.password_changed_at is not None
    short = app.run("user", "create", "bob@example.org", "--password-stdin", input="short\n")
    assert short.exit_code != 0 and "password refused" in short.output
    assert [u.email for u in app.query(select(User))] == ["ann@example.org"]


def test_user_create_refuses_a_non_address(app: Cli) -> None:
    result = app.run("user", "create", "not-an-address")
    assert result.exit_code == 2
    assert app.query(select(User)) == []


def test_token_create_prints_a_secret_whose_sha256_is_stored(app: Cli) -> None:
    user_id = int(app.ok("user", "create", "ann@example.org").stdout.strip())
    result = app.ok(
        "token", "create", "--user", "ann@example.org", "--scope", "write", "--name", "backup", "--expires-days", "30"
    )
    secret = result.stdout.strip()
    assert secret and "\n" not in secret
    [token] = app.query(select(ApiToken))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in token.token_hash
    assert (token.user_id, token.scope, token.name) == (user_id, "write", "backup")
    assert token.expires_at is not None and secret.startswith(token.prefix)


def test_token_create_needs_an_existing_user_and_a_known_scope(app: Cli) -> None:
    assert app.run("token", "create", "--user", "nobody@example.org").exit_code == 1
    app.ok("user", "create", "ann@example.org")
    assert app.run("token", "create", "--user", "ann@example.org", "--scope", "admin").exit_code == 2
    assert app.query(select(ApiToken)) == []


def test_importing_the_cli_does_not_import_flask() -> None:
    code = "import sys, forwarder.cli.main; sys.exit(1 if 'flask' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[3]).returncode == 0


def _token_and_session(app: Cli) -> None:
    """An API token and a signed-in session for ann@example.org."""
    from models import UserSession, utcnow

    app.ok("token", "create", "--user", "ann@example.org")
    engine = make_engine(f"sqlite:///{(app.data_dir / 'othermail.db').resolve()}")
    try:
        with make_session_factory(engine)() as session:
            user = session.scalars(select(User)).one()
            session.add(UserSession(user_id=user.id, token_hash="0" * 64, created_at=utcnow(), last_seen_at=utcnow()))
            session.commit()
    finally:
        engine.dispose()


def test_an_administrators_reset_revokes_tokens_and_ends_sessions(app: Cli) -> None:
    """Issue 12.9: API tokens survived a password reset."""
    from models import UserSession

    app.ok("user", "create", "ann@example.org", "--password-stdin", input=PASSWORD + "\n")
    _token_and_session(app)
    result = app.ok("user", "reset-password", "ann@example.org", "--password-stdin", input="a new long password\n")
    assert "1 session(s) ended, 1 API token(s) revoked" in result.output
    [token] = app.query(select(ApiToken))
    assert token.revoked_at is not None
    assert app.query(select(UserSession)) == []
    [user] = app.query(select(User))
    from argon2 import PasswordHasher

    assert PasswordHasher().verify(user.password_hash, "a new long password")

    cleared = app.ok("user", "reset-password", "ann@example.org")
    assert "password cleared" in cleared.output
    assert app.query(select(User))[0].password_hash is None
    assert app.run("user", "reset-password", "nobody@example.org").exit_code == 1


def test_setting_the_password_of_an_existing_user_is_a_reset_too(app: Cli) -> None:
    from models import UserSession

    app.ok("user", "create", "ann@example.org", "--password-stdin", input=PASSWORD + "\n")
    _token_and_session(app)
    app.ok("user", "create", "ann@example.org", "--admin")  # no password: nothing ends
    assert app.query(select(ApiToken))[0].revoked_at is None and len(app.query(select(UserSession))) == 1
    app.ok("user", "create", "ann@example.org", "--password-stdin", input="a new long password\n")
    assert app.query(select(ApiToken))[0].revoked_at is not None
    assert app.query(select(UserSession)) == []
