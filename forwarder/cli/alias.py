"""``othermail alias``: aliases, for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from forwarder.accounts import (
    AccountError,
    create_alias,
    ensure_destination,
    ensure_user,
    parse_duration,
    set_alias_enabled,
    verified_destinations,
)
from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS
from forwarder.cli.tables import Column, echo_rows, json_option


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


@alias.command("disable")
@click.argument("address", type=ADDRESS)
@click.pass_obj
def disable(obj: CliContext, address: str) -> None:
    """Switch an alias off (as its owner can in the web app): new mail to it is dropped."""
    found, _ = _switch(obj, address, enabled=False)
    click.echo(f"Disabled {found}: it is switched off, and new mail to it is dropped.")


@alias.command("enable")
@click.argument("address", type=ADDRESS)
@click.pass_obj
def enable(obj: CliContext, address: str) -> None:
    """Switch an alias on again; an expired one still does not forward, and this says why."""
    found, why_expired = _switch(obj, address, enabled=True)
    if why_expired is None:
        click.echo(f"Enabled {found}: it forwards again.")
    else:
        click.echo(f"Enabled {found}, but it still does not forward: {why_expired}.")


def _switch(obj: CliContext, address: str, *, enabled: bool) -> tuple[str, str | None]:
    """Switch the live alias ``address`` on or off: its address and why it has expired (or None);
    an unknown or deleted address is one error line."""
    from sqlalchemy import select

    from forwarder.adapters.sql.directory.records import alias_state
    from forwarder.core.decide import expiry
    from models import Alias, normalize_email, utcnow

    wanted = normalize_email(address)
    with obj.sessions()() as session:
        found = session.scalars(select(Alias).where(Alias.address == wanted, Alias.deleted_at.is_(None))).first()
        if found is None:
            raise click.ClickException(f"no alias {wanted} (unknown or deleted)")
        set_alias_enabled(found, enabled)
        session.commit()
        decision = expiry(alias_state(found), utcnow())
        if decision is None:
            return found.address, None
        fate = "rejected (its sender gets a bounce)" if found.expired_action == "reject" else "dropped"
        return found.address, (
            f"{decision.reason}; new mail to it is {fate} until it is extended or made permanent in the web app"
        )


ALIAS_COLUMNS = (
    Column("id", "ID", right=True),
    Column("address", "ADDRESS"),
    Column("owner", "OWNER"),
    Column("state", "STATE"),
    Column("created_at", "CREATED (UTC)"),
    Column("expires_at", "EXPIRES (UTC)"),
    Column("forwarded", "FORWARDED", right=True),
    Column("blocked", "BLOCKED", right=True),
    Column("last_mail_at", "LAST MAIL (UTC)"),
)
#: --sort: the order each key starts in (--reverse turns it round); ties go by id.
ALIAS_SORTS = {
    "created": "desc",
    "address": "asc",
    "owner": "asc",
    "forwarded": "desc",
    "messages": "desc",
    "used": "desc",
    "expires": "asc",
}
STATE_HELP = (
    "active: forwards (expiring ones included); expiring: active with a time, idle or message limit; "
    "expired: a limit reached; disabled: switched off and not expired."
)


@alias.command("list")
@click.option("--owner", type=ADDRESS, help="Only the aliases of this account.")
@click.option("--domain", help="Only the aliases on this domain.")
@click.option("--state", type=click.Choice(["active", "expiring", "expired", "disabled"]), help=STATE_HELP)
@click.option(
    "--sort",
    type=click.Choice(list(ALIAS_SORTS)),
    default="created",
    show_default=True,
    help="created, forwarded, messages and used (last mail) start with the most; address, owner and "
    "expires (soonest first) with the least.",
)
@click.option("--reverse", is_flag=True, help="Turn the order round.")
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many.")
@json_option
@click.pass_obj
def list_aliases(
    obj: CliContext,
    owner: str | None,
    domain: str | None,
    state: str | None,
    sort: str,
    reverse: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """List aliases (deleted ones left out) with their owner, state and counts."""
    from sqlalchemy import select

    from forwarder.accounts.alias_states import in_state
    from models import Alias, User, normalize_email, utcnow

    now = utcnow()
    query = (
        select(Alias, User.email, _state_column(now))
        .outerjoin(User, User.id == Alias.user_id)
        .where(Alias.deleted_at.is_(None))
    )
    if domain is not None:
        query = query.where(Alias.address.like("%@" + _like_literal(_domain_option(domain)), escape="\\"))
    if state is not None:
        query = query.where(in_state(state, now))
    query = query.order_by(*_alias_order(sort, reverse))
    if limit is not None:
        query = query.limit(limit)
    with obj.sessions()() as session:
        if owner is not None:
            address = normalize_email(owner)  # ADDRESS checked it
            owner_id = session.scalars(select(User.id).where(User.email == address, User.deleted_at.is_(None))).first()
            if owner_id is None:
                raise click.BadParameter(f"no user {address}", param_hint="--owner")
            query = query.where(Alias.user_id == owner_id)
        rows = [
            {
                "id": row.id,
                "address": row.address,
                "owner": owner_email,
                "state": row_state,
                "enabled": row.enabled,
                "created_at": row.created_at,
                "expires_at": row.expires_at,
                "idle_days": row.idle_days,
                "max_messages": row.max_messages,
                "messages": row.message_count,
                "forwarded": row.forwarded_count,
                "blocked": row.blocked_count,
                "last_mail_at": row.last_used_at,
                "label": row.label,
            }
            for row, owner_email, row_state in session.execute(query)
        ]
    echo_rows(rows, ALIAS_COLUMNS, as_json=as_json, empty="no aliases match")


def _state_column(now: datetime) -> Any:
    """The state each alias is shown in: the most telling of the --state words that hold for it."""
    from sqlalchemy import case

    from forwarder.accounts.alias_states import expired, has_limit
    from models import Alias

    return case(
        (expired(now), "expired"),
        (Alias.enabled.is_(False), "disabled"),
        (has_limit(), "expiring"),
        else_="active",
    ).label("state")


def _alias_order(sort: str, reverse: bool) -> list[Any]:
    from models import Alias, User

    column = {
        "created": Alias.created_at,
        "address": Alias.address,
        "owner": User.email,
        "forwarded": Alias.forwarded_count,
        "messages": Alias.message_count,
        "used": Alias.last_used_at,
        "expires": Alias.expires_at,
    }[sort]
    descending = (ALIAS_SORTS[sort] == "desc") != reverse
    # nothing (no owner, never used, no expiry) goes last either way, as the same on every backend
    return [
        column.is_(None),
        column.desc() if descending else column.asc(),
        Alias.id.desc() if descending else Alias.id,
    ]


def _domain_option(raw: str) -> str:
    domain = raw.strip().lower().removeprefix("@")
    if not domain or any(char.isspace() or char in "@/\\" for char in domain):
        raise click.BadParameter(f"{raw!r} is not a domain name", param_hint="--domain")
    return domain


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
