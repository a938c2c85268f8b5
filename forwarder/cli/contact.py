"""``othermail contact`` and ``othermail rule``: two-way aliases' contacts and sender rules (issue 14).

``othermail contact create ALIAS ADDRESS`` prints the contact's reverse address alone on its last
line: mail from one of the alias's destinations to it leaves from the alias (write first).
"""

from __future__ import annotations

from typing import Any

import click

from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS


def _alias(obj: CliContext, address: str) -> Any:
    """The live alias ``address`` (its row, detached), or a one-line error naming ALIAS."""
    from sqlalchemy import select

    from models import Alias

    with obj.sessions()() as session:
        found = session.scalars(
            select(Alias).where(Alias.address == address.strip().lower(), Alias.deleted_at.is_(None))
        ).first()
        if found is None:
            raise click.BadParameter(f"{address} is not a live alias", param_hint="ALIAS")
        session.expunge(found)
    return found


def _outside(obj: CliContext, alias: Any, address: str) -> str:
    """``address`` lowercased, refused when it is an address of this service or of the alias's owner."""
    from sqlalchemy import select

    from models import Destination, User, UserDomain

    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    with obj.sessions()() as session:
        served = session.scalar(select(UserDomain.id).where(UserDomain.name == domain))
        owned = session.scalar(
            select(Destination.id).where(Destination.user_id == alias.user_id, Destination.email == address)
        )
        owner = session.scalar(select(User.email).where(User.id == alias.user_id))
    if domain in obj.settings.domains or served is not None:
        raise click.BadParameter(f"{address} is an address of this service, not a contact", param_hint="ADDRESS")
    if owned is not None or address == owner:
        raise click.BadParameter(f"{address} is the alias owner's own address, not a contact", param_hint="ADDRESS")
    return address


@click.group()
def contact() -> None:
    """Contacts of two-way aliases: the people an alias writes with, each behind a reverse address."""


@contact.command("create")
@click.argument("alias", type=ADDRESS)
@click.argument("address", type=ADDRESS)
@click.option("--name", default="", help="Their name, shown to the alias's owner.")
@click.pass_obj
def create(obj: CliContext, alias: str, address: str, name: str) -> None:
    """Create (or find) ALIAS's contact for ADDRESS and print its reverse address."""
    row = _alias(obj, alias)
    ref = obj.runtime().contacts.create(row.id, row.address.rpartition("@")[2], _outside(obj, row, address), name)
    click.echo(f"write to this address from a destination of {row.address} to reach {ref.address}:", err=True)
    click.echo(ref.reverse)


@contact.command("list")
@click.argument("alias", type=ADDRESS)
@click.pass_obj
def list_(obj: CliContext, alias: str) -> None:
    """ALIAS's contacts: reverse address, real address, counts, last seen; one a line."""
    row = _alias(obj, alias)
    for one in obj.runtime().contacts.contacts_of(row.id, row.address.rpartition("@")[2]):
        seen = one.last_seen_at.strftime("%Y-%m-%d %H:%M") if one.last_seen_at else "never"
        blocked = "\tBLOCKED" if one.blocked else ""
        click.echo(
            f"{one.reverse}\t{one.address}\tforwarded={one.forwarded_count} replied={one.replied_count} "
            f"blocked={one.blocked_count}\tlast seen {seen}{blocked}"
        )


@click.group()
def rule() -> None:
    """Sender rules: block or allow an address, a domain (and its subdomains) or the empty sender."""


def _scope(obj: CliContext, alias: str | None, owner: str | None) -> tuple[int, int | None]:
    """(user id, alias id or None for the whole account) from exactly one of --alias and --owner."""
    if (alias is None) == (owner is None):
        raise click.UsageError("name exactly one of --alias (one alias) and --owner (every alias of the account)")
    if alias is not None:
        row = _alias(obj, alias)
        return row.user_id, row.id
    from sqlalchemy import select

    from models import User, normalize_email

    with obj.sessions()() as session:
        user_id = session.scalar(select(User.id).where(User.email == normalize_email(str(owner))))
    if user_id is None:
        raise click.BadParameter(f"no account {owner}", param_hint="--owner")
    return user_id, None


SCOPE = (
    click.option("--alias", type=ADDRESS, help="The alias the rule is for."),
    click.option("--owner", type=ADDRESS, help="The account whose every alias the rule is for."),
)


def _scoped(command: Any) -> Any:
    for option in reversed(SCOPE):
        command = option(command)
    return command


@rule.command("add")
@_scoped
@click.argument("action", type=click.Choice(["block", "allow"]))
@click.argument("kind", type=click.Choice(["address", "domain", "empty-sender"]))
@click.argument("value", required=False, default="")
@click.pass_obj
def add(obj: CliContext, alias: str | None, owner: str | None, action: str, kind: str, value: str) -> None:
    """Add a rule (VALUE: the address or domain; none for empty-sender) and print its id."""
    user_id, alias_id = _scope(obj, alias, owner)
    try:
        rule_id = obj.runtime().contacts.add_rule(user_id, alias_id, action, kind, value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="VALUE") from None
    click.echo(rule_id)


@rule.command("list")
@_scoped
@click.pass_obj
def list_rules(obj: CliContext, alias: str | None, owner: str | None) -> None:
    """The alias's rules, or (--owner) every rule of the account; one a line: id, scope, action, kind, value."""
    user_id, alias_id = _scope(obj, alias, owner)
    for row in obj.runtime().contacts.rules(user_id, alias_id):
        scope = "account" if row.alias_id is None else f"alias {row.alias_id}"
        click.echo(f"{row.id}\t{scope}\t{row.action}\t{row.kind}\t{row.value}")


@rule.command("remove")
@click.argument("rule_id", type=click.IntRange(min=1))
@click.pass_obj
def remove(obj: CliContext, rule_id: int) -> None:
    """Remove the rule RULE_ID."""
    from sqlalchemy import select

    from models import SenderRule

    with obj.sessions()() as session:
        user_id = session.scalar(select(SenderRule.user_id).where(SenderRule.id == rule_id))
    if user_id is None or not obj.runtime().contacts.remove_rule(user_id, rule_id):
        raise click.BadParameter(f"no rule {rule_id}", param_hint="RULE_ID")
    click.echo(f"removed rule {rule_id}")
