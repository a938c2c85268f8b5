"""Sender rules (issue 14): block or allow an address, a domain (with its subdomains) or the empty
sender, for one alias or for every alias of the account. The forwarder checks them before anything
is stored or counted (``SqlContactBook.sender_allowed``: alias rules over account rules, block over
allow); here the owner lists, adds and removes them."""

from __future__ import annotations

from forwarder.ports import SenderRuleRow
from models import Alias, User
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

#: Rules an account may have, over all its aliases.
MAX_RULES = 1000


def listed(ctx: ServiceContext, user: User, alias: Alias | None = None) -> list[SenderRuleRow]:
    """The alias's rules, or (``alias`` None) the account-wide ones."""
    rows = ctx.runtime.contacts.rules(user.id, alias.id if alias is not None else None)
    return rows if alias is not None else [row for row in rows if row.alias_id is None]


def add(ctx: ServiceContext, user: User, alias: Alias | None, action: str, kind: str, value: str = "") -> SenderRuleRow:
    book = ctx.runtime.contacts
    if len(book.rules(user.id)) >= MAX_RULES:
        raise ServiceError("limit_reached", f"An account may have {MAX_RULES} rules. Remove some first.", 409)
    if "\x00" in value:
        raise ServiceError("invalid_rule", "A rule's value may not contain NUL characters.")
    try:
        rule_id = book.add_rule(user.id, alias.id if alias is not None else None, action, kind, value)
    except ValueError as exc:
        raise ServiceError("invalid_rule", str(exc)[:1].upper() + str(exc)[1:] + ".") from None
    return next(row for row in book.rules(user.id) if row.id == rule_id)


def remove(ctx: ServiceContext, user: User, rule_id: int) -> None:
    if not ctx.runtime.contacts.remove_rule(user.id, rule_id):
        raise not_found("rule")
