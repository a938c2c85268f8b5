"""``othermail alias``: aliases, for operators."""

from __future__ import annotations

import click

from forwarder.accounts import (
    AccountError,
    create_alias,
    ensure_destination,
    ensure_user,
    parse_duration,
    verified_destinations,
)
from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS


@click.group()
def alias() -> None:
    """Manage aliases."""


@alias.command("create")
@click.option("--owner", required=True, type=ADDRESS, help="The owner's account email (created when missing).")
@click.option(
    "--destination",
    "destinations",
    multiple=True,
    type=ADDRESS,
    help="A real mailbox to forward to; repeat for several. Counts as verified. "
    "Default: every verified destination of the owner.",
)
@click.option("--domain", help="One of OTHERMAIL_DOMAINS; the first by default.")
@click.option("--local-part", help="A custom local part instead of a generated one.")
@click.option("--expires-in", help="Expire after a duration: 30m, 2h, 7d, 4w.")
@click.option("--idle-days", type=int, help="Expire after this many days without mail.")
@click.option("--max-messages", type=int, help="Expire after this many messages.")
@click.option(
    "--expired-action",
    type=click.Choice(["drop", "reject"]),
    default="drop",
    show_default=True,
    help="What mail gets once the alias has expired. drop: accepted and dropped silently. "
    "reject: the sender gets a bounce (one box: 550 5.1.1 at RCPT; on AWS an SES bounce, "
    "only when the sender's SPF passed, else dropped).",
)
@click.pass_obj
def create(
    obj: CliContext,
    owner: str,
    destinations: tuple[str, ...],
    domain: str | None,
    local_part: str | None,
    expires_in: str | None,
    idle_days: int | None,
    max_messages: int | None,
    expired_action: str,
) -> None:
    """Create an alias and print its address."""
    from sqlalchemy import select

    from models import User, normalize_email, utcnow

    settings = obj.settings
    domain = (domain or settings.domains[0]).lower()
    if domain not in settings.domains:
        raise click.BadParameter(f"{domain} is not one of {', '.join(settings.domains)}", param_hint="--domain")
    try:
        duration = parse_duration(expires_in) if expires_in else None
        now = utcnow()
        with obj.sessions()() as session:
            known = session.scalars(select(User.id).where(User.email == normalize_email(owner))).first()
            user = ensure_user(session, owner)
            targets = [ensure_destination(session, user, d, verified_at=now) for d in destinations]
            if not targets:  # as the web app's one-click button and the API: the owner's verified destinations
                targets = verified_destinations(session, user)
            if not targets:
                raise click.ClickException(
                    f"--destination: {owner} has no verified destination yet; name one with --destination"
                )
            session.commit()
            created = create_alias(
                session,
                user,
                targets,
                domain,
                now,
                local_part=local_part,
                expires_in=duration,
                idle_days=idle_days,
                max_messages=max_messages,
                expired_action=expired_action,
            )
            if known is None:  # a typo in --owner would otherwise go unnoticed
                click.echo(
                    f"user {user.email} created (no password; they choose one through the password "
                    "reset link on the sign-in page)",
                    err=True,
                )
            click.echo(created.address)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
