"""``othermail user``: accounts, for operators.

The password, session and token rules are the ones the web app uses too (forwarder/accounts/);
they are imported only inside the commands (Argon2 and SQLAlchemy load when a command runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS
from forwarder.cli.tables import Column, echo_rows, json_option

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
        promoted = admin and not account.is_admin
        if admin:
            account.is_admin = True
        if password is not None:
            account.password_hash = hash_password(password)
            account.password_changed_at = utcnow()
            if not created:  # an administrator's reset: the old sessions and API tokens go
                _end_access(session, account)
        session.commit()
        click.echo(
            created_sentence(
                account,
                created=created,
                promoted=promoted,
                password_set=password is not None,
                url=obj.settings.public_url,
            ),
            err=True,
        )
        click.echo(account.id)


def created_sentence(account: User, *, created: bool, promoted: bool, password_set: bool, url: str) -> str:
    """What ``user create`` did, and how the user signs in (at ``url``, the web app's address, if known)."""
    name = f"{'administrator' if account.is_admin else 'user'} {account.email} (id {account.id})"
    if created:
        what = f"Created the {name}"
    else:
        changes = [
            text for text, done in (("made an administrator", promoted), ("given a new password", password_set)) if done
        ]
        what = (
            f"The {name} already existed and was {' and '.join(changes)}" if changes else f"The {name} already exists"
        )
    signin = f"{url}/signin" if url else "the web app's sign-in page"
    if password_set:
        how = f"They sign in at {signin} with the password given"
    elif account.password_hash:
        how = f"They sign in at {signin} with their password"
    elif url:
        how = f"They have no password yet: they choose one at {url}/reset, then sign in at {signin}"
    else:
        how = "They have no password yet: they choose one through 'Forgot your password?' on the web app's sign-in page"
    return f"{what}. {how}."


USER_COLUMNS = (
    Column("id", "ID", right=True),
    Column("email", "EMAIL"),
    Column("admin", "ADMIN"),
    Column("created_at", "CREATED (UTC)"),
    Column("aliases", "ALIASES", right=True),
    Column("two_factor", "2FA"),
    Column("last_signin_at", "LAST SIGN-IN (UTC)"),
)


@user.command("list")
@json_option
@click.pass_obj
def list_users(obj: CliContext, as_json: bool) -> None:
    """List the accounts (deleted ones left out), oldest first: admin or not, when created, how many
    aliases, two-factor sign-in (totp, passkeys, or off), and the last sign-in among the sessions
    still live (a session that ended takes its sign-in along: "-" then)."""
    from sqlalchemy import func, select

    from models import Alias, User, UserSession, WebAuthnCredential

    aliases = (
        select(func.count(Alias.id))
        .where(Alias.user_id == User.id, Alias.deleted_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    passkeys = select(func.count(WebAuthnCredential.id)).where(WebAuthnCredential.user_id == User.id).correlate(User)
    last_signin = select(func.max(UserSession.created_at)).where(UserSession.user_id == User.id).correlate(User)
    query = (
        select(User, aliases, passkeys.scalar_subquery(), last_signin.scalar_subquery())
        .where(User.deleted_at.is_(None))
        .order_by(User.created_at, User.id)
    )
    with obj.sessions()() as session:
        rows = [
            {
                "id": account.id,
                "email": account.email,
                "admin": account.is_admin,
                "created_at": account.created_at,
                "aliases": alias_count,
                "two_factor": _two_factor(account.totp_enabled_at is not None, passkey_count),
                "totp": account.totp_enabled_at is not None,
                "passkeys": passkey_count,
                "email_verified": account.email_verified_at is not None,
                "last_signin_at": signed_in,
            }
            for account, alias_count, passkey_count, signed_in in session.execute(query)
        ]
    echo_rows(rows, USER_COLUMNS, as_json=as_json, empty="no users yet; create one with: othermail user create EMAIL")


def _two_factor(totp: bool, passkeys: int) -> str:
    return "+".join(name for name, on in (("totp", totp), ("passkeys", passkeys > 0)) if on) or "off"


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


@user.command("reset-2fa")
@click.argument("email", type=ADDRESS)
@click.pass_obj
def reset_2fa(obj: CliContext, email: str) -> None:
    """Remove the two-factor sign-in of EMAIL (authenticator app, recovery codes, passkeys) and end
    every session, for a user who lost their second factor; the password still signs in."""
    from sqlalchemy import select

    from forwarder.accounts import two_factor
    from models import User, normalize_email

    address = normalize_email(email)  # ADDRESS checked it
    with obj.sessions()() as session:
        account = session.scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
        if account is None:
            raise click.ClickException(f"no user {address}")
        ended = two_factor.reset(session, account)
        session.commit()
    click.echo(
        f"Two-factor sign-in of {address} was reset: its authenticator app, recovery codes and passkeys "
        f"are gone and {ended} session(s) ended; the password alone signs in now."
    )
