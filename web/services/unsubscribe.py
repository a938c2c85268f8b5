"""One-click unsubscribe (RFC 8058, issue 14): what a signed ``/u/<token>`` link does.

The token names an alias and one of its contacts (forwarder/flows/unsubscribe.py); the alias's
owner chose what a click does (``users.unsubscribe_action``): switch the alias off (the default),
block that contact, or nothing here (``pass-through``: the sender's own List-Unsubscribe was
passed on as well, and that is the one to use).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from forwarder.flows.unsubscribe import verify
from models import Alias, Contact, User
from web.services.context import ServiceContext
from web.services.errors import not_found

#: Why the alias is off, on its page.
DISABLED_REASON = "unsubscribed with one click (List-Unsubscribe)"


@dataclass(frozen=True)
class Target:
    alias: Alias
    contact_id: int
    action: str


def target(ctx: ServiceContext, db: Session, token: str) -> Target:
    """What ``token`` names, or not found: a forged token, a deleted alias or contact."""
    named = verify(ctx.runtime.unsubscribe_keys, token) if len(token) <= 100 else None
    if named is None:
        raise not_found("link")
    alias_id, contact_id = named
    alias = db.get(Alias, alias_id)
    known = db.scalar(select(Contact.id).where(Contact.id == contact_id, Contact.alias_id == alias_id))
    if alias is None or alias.deleted_at is not None or known is None:
        raise not_found("link")
    action = db.scalar(select(User.unsubscribe_action).where(User.id == alias.user_id)) or "disable-alias"
    return Target(alias, contact_id, action)


def unsubscribe(ctx: ServiceContext, db: Session, token: str) -> Target:
    """Do the owner's chosen action for ``token``; what was done."""
    found = target(ctx, db, token)
    if found.action == "disable-alias":
        found.alias.enabled = False
        found.alias.disabled_reason = DISABLED_REASON
        db.commit()
    elif found.action == "block-contact":
        ctx.runtime.contacts.set_blocked(found.alias.id, found.contact_id, True)
    return found
