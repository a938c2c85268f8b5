"""``othermail token``: API tokens, for operators.

The token rules are the ones the web app uses too (``forwarder.accounts.tokens``); they are
imported only inside the command, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from forwarder.cli.context import CliContext
from forwarder.cli.tables import Column, echo_rows, json_option

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--user", "email", required=True, help="The account the token acts for.")
@click.option(
    "--scope",
    type=click.Choice(["read", "write"]),
    default="read",
    show_default=True,
    help="read may only list and inspect; write may also create and change aliases.",
)
@click.option("--name", default="cli", show_default=True, help="A name to tell the token apart later.")
@click.option("--expires-days", type=click.IntRange(min=1), help="Expire after this many days (default: never).")
@click.pass_obj
def create(obj: CliContext, email: str, scope: str, name: str, expires_days: int | None) -> None:
    """Create an API token and print its secret, which is shown this once only."""
    from sqlalchemy import select

    from forwarder.accounts import tokens
    from forwarder.accounts.errors import ServiceError
    from models import User, normalize_email

    try:
        address = normalize_email(email)
    except (TypeError, ValueError):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="--user") from None
    with obj.sessions()() as session:
        account = session.scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
        if account is None:
            raise click.ClickException(f"no user {address}; create it with: othermail user create {address}")
        try:
            row, secret = tokens.create(session, account, name, scope, expires_days)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
        session.commit()
        expiry = f", expires {row.expires_at:%Y-%m-%d}" if row.expires_at else ""
        click.echo(
            f"token {row.prefix}… ({row.scope}{expiry}) for {address}; store the secret now, it is not shown again",
            err=True,
        )
        click.echo(secret)


TOKEN_COLUMNS = (
    Column("id", "ID", right=True),
    Column("user", "USER"),
    Column("name", "NAME"),
    Column("prefix", "TOKEN"),
    Column("scope", "SCOPE"),
    Column("state", "STATE"),
    Column("created_at", "CREATED (UTC)"),
    Column("expires_at", "EXPIRES (UTC)"),
    Column("last_used_at", "LAST USED (UTC)"),
)


@token.command("list")
@click.option("--email", help="Only the tokens of this account.")
@json_option
@click.pass_obj
def list_tokens(obj: CliContext, email: str | None, as_json: bool) -> None:
    """List API tokens (revoked and expired ones too), newest first. Secrets are never shown: a
    token is known by its first characters."""
    from sqlalchemy import select

    from models import ApiToken, User, utcnow

    with obj.sessions()() as session:
        query = select(ApiToken, User.email).join(User, User.id == ApiToken.user_id)
        if email is not None:
            query = query.where(User.id == _user_id(session, email))
        now = utcnow()
        rows = [
            {
                "id": row.id,
                "user": address,
                "name": row.name,
                "prefix": row.prefix,
                "scope": row.scope,
                "state": "revoked" if row.revoked_at else ("active" if row.is_active(now) else "expired"),
                "created_at": row.created_at,
                "expires_at": row.expires_at,
                "last_used_at": row.last_used_at,
                "revoked_at": row.revoked_at,
            }
            for row, address in session.execute(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
        ]
    echo_rows(rows, TOKEN_COLUMNS, as_json=as_json, empty="no API tokens" + (f" for {email}" if email else ""))


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@click.pass_obj
def revoke(obj: CliContext, token_id: int) -> None:
    """Revoke the API token ID (from ``othermail token list``): it stops working at once."""
    from forwarder.accounts import tokens
    from models import ApiToken, User

    with obj.sessions()() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise click.BadParameter(f"no API token has the id {token_id} (see: othermail token list)", param_hint="ID")
        owner = session.get(User, row.user_id)
        label = f"API token {row.id} ({row.prefix}…) of {owner.email if owner else 'a deleted user'}"
        if row.revoked_at is not None:
            click.echo(f"{label} was already revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC", err=True)
            return
        tokens.revoke(session, row)
        click.echo(f"{label} revoked: it no longer works", err=True)


def _user_id(session: Session, email: str) -> int:
    """The id of the live account ``email``; a usage error naming --email if there is none."""
    from sqlalchemy import select

    from models import User, normalize_email

    try:
        address = normalize_email(email)
    except (TypeError, ValueError):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="--email") from None
    found = session.scalars(select(User.id).where(User.email == address, User.deleted_at.is_(None))).first()
    if found is None:
        raise click.BadParameter(f"no user {address}", param_hint="--email")
    return found
