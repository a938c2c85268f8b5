"""``othermail user reset-2fa EMAIL``: an operator removes a user's second factors (issue 16)."""

from __future__ import annotations

from sqlalchemy import func, select

from forwarder.accounts import sessions
from models import RecoveryCode, User, UserSession, WebAuthnCredential, make_engine, make_session_factory, utcnow
from tests.forwarder.cli.test_user_token_cli import PASSWORD, Cli, app  # noqa: F401  # app: the fixture

__all__ = ["app"]


def give_second_factors(cli: Cli, email: str) -> None:
    engine = make_engine(f"sqlite:///{(cli.data_dir / 'othermail.db').resolve()}")
    try:
        with make_session_factory(engine)() as db:
            user = db.scalars(select(User).where(User.email == email)).one()
            user.totp_secret, user.totp_enabled_at, user.totp_last_step = "k1:sealed", utcnow(), 5
            db.add(RecoveryCode(user_id=user.id, code_hash="a" * 64))
            db.add(WebAuthnCredential(user_id=user.id, credential_id=f"id-{email}", public_key=b"k", name="key"))
            db.commit()
            sessions.start(db, user, "192.0.2.1", "test")
            sessions.start(db, user, "192.0.2.2", "test")
    finally:
        engine.dispose()


def count(cli: Cli, model: type, email: str) -> int:
    [user] = cli.query(select(User).where(User.email == email))
    [n] = cli.query(select(func.count()).select_from(model).where(model.user_id == user.id))  # type: ignore[attr-defined]
    return int(n)


def test_reset_2fa_removes_every_second_factor_and_ends_the_sessions(app: Cli) -> None:  # noqa: F811
    for email in ("ann@example.org", "bob@example.org"):
        app.ok("user", "create", email, "--password-stdin", input=PASSWORD + "\n")
        give_second_factors(app, email)

    result = app.ok("user", "reset-2fa", "Ann@Example.org")

    assert result.stdout == (
        "Two-factor sign-in of ann@example.org was reset: its authenticator app, recovery codes and passkeys "
        "are gone and 2 session(s) ended; the password alone signs in now.\n"
    )
    [ann] = app.query(select(User).where(User.email == "ann@example.org"))
    assert (ann.totp_secret, ann.totp_enabled_at, ann.totp_last_step) == (None, None, None)
    assert ann.password_hash is not None  # the password stays
    assert [count(app, model, "ann@example.org") for model in (RecoveryCode, WebAuthnCredential, UserSession)] == [
        0, 0, 0,
    ]  # fmt: skip
    # bob is untouched
    [bob] = app.query(select(User).where(User.email == "bob@example.org"))
    assert bob.totp_enabled_at is not None
    assert [count(app, model, "bob@example.org") for model in (RecoveryCode, WebAuthnCredential, UserSession)] == [
        1, 1, 2,
    ]  # fmt: skip


def test_reset_2fa_of_an_unknown_user_is_one_line_naming_it(app: Cli) -> None:  # noqa: F811
    result = app.run("user", "reset-2fa", "nobody@example.org")
    assert result.exit_code == 1
    assert result.output == "Error: no user nobody@example.org\n"
