"""``othermail token``: API tokens, for operators.

The token rules are the ones the web app uses too (``forwarder.accounts.tokens``); they are
imported only inside the command, so importing this module stays cheap.
"""

from __future__ import annotations

import click

from forwarder.cli.context import CliContext


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
