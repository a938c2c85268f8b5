"""``othermail user``: accounts, for operators.

The password, session and token rules are the ones the web app uses too (forwarder/accounts/);
they are imported only inside the commands (Argon2 and SQLAlchemy load when a command runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models import User


@click.group()
def user() -> None:
    """Manage user accounts."""


@user.command("create")
@click.argument("email", type=ADDRESS)
@click.option("--admin", is_flag=True, help="Make the user an administrator (promotes an existing user).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a password from the first line of standard input. Without it, the user "
    "chooses one through the password reset link on the sign-in page.",
)
@click.pass_obj
def create(obj: CliContext, email: str, admin: bool, password_stdin: bool) -> None:
    """Create the account EMAIL, or update an existing one, and print its id."""
    from sqlalchemy import select

    from forwarder.accounts.passwords import hash_password
    from models import User, normalize_email, utcnow

    address = normalize_email(email)  # ADDRESS checked it
    password = _password_from_stdin() if password_stdin else None
    with obj.sessions()() as session:
        found = session.scalars(select(User).where(User.email == address)).first()
        created = found is None
        account = found or User(email=address)
        if created:
            session.add(account)
        if admin:
            account.is_admin = True
        if password is not None:
            account.password_hash = hash_password(password)
            account.password_changed_at = utcnow()
            if not created:  # an administrator's reset: the old sessions and API tokens go
                _end_access(session, account)
        session.commit()
        what = "created" if created else ("updated" if admin or password is not None else "exists")
        click.echo(f"user {address} {what}{' (admin)' if account.is_admin else ''}", err=True)
        click.echo(account.id)


@user.command("reset-password")
@click.argument("email", type=ADDRESS)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from the first line of standard input. Without it, the "
    "password is cleared and the user chooses one through the reset link on the sign-in page.",
)
@click.pass_obj
def reset_password(obj: CliContext, email: str, password_stdin: bool) -> None:
    """Reset the password of the account EMAIL: every session ends and every API token is revoked."""
    from sqlalchemy import select

    from forwarder.accounts.passwords import hash_password
    from models import User, normalize_email, utcnow

    address = normalize_email(email)  # ADDRESS checked it
    password = _password_from_stdin() if password_stdin else None
    with obj.sessions()() as session:
        account = session.scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
        if account is None:
            raise click.ClickException(f"no user {address}")
        account.password_hash = hash_password(password) if password is not None else None
        account.password_changed_at = utcnow()
        ended, revoked = _end_access(session, account)
        session.commit()
        click.echo(
            f"user {address}: password {'set' if password is not None else 'cleared'}, "
            f"{ended} session(s) ended, {revoked} API token(s) revoked",
            err=True,
        )


def _password_from_stdin() -> str:
    """The first line of standard input, refused in one line if the password rules refuse it."""
    import sys

    from forwarder.accounts.passwords import password_problem

    password = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(password)
    if problem:
        raise click.ClickException(f"password refused: {problem}")
    return password


def _end_access(session: Session, account: User) -> tuple[int, int]:
    """End every session of ``account`` and revoke its API tokens (not committed)."""
    from forwarder.accounts import sessions, tokens

    return sessions.end_all(session, account, commit=False), tokens.revoke_all(session, account, commit=False)
