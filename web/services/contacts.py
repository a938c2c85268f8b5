"""Contacts of a two-way alias (issue 14): list, create to write first, block or unblock, delete.

A contact is an external address reached through its reverse address on the alias's domain; its
real address is stored sealed by the runtime's ContactBook (``ctx.runtime.contacts``), which these
functions call once the alias is known to be the user's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from forwarder import accounts
from forwarder.adapters.sql.user_domains import RECEIVING
from forwarder.ports import ContactSummary
from models import Alias, Contact, Destination, MessageLink, SenderRule, User, UserDomain
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

NAME_MAX_LENGTH = 100


def alias_domain(alias: Alias) -> str:
    return alias.address.rpartition("@")[2]


def listed(ctx: ServiceContext, alias: Alias) -> list[ContactSummary]:
    """The alias's contacts, oldest first, with their real addresses opened."""
    return ctx.runtime.contacts.contacts_of(alias.id, alias_domain(alias))


def one(ctx: ServiceContext, alias: Alias, contact_id: int) -> ContactSummary:
    for contact in listed(ctx, alias):
        if contact.contact_id == contact_id:
            return contact
    raise not_found("contact")


def owned(db: Session, user: User, contact_id: int) -> Alias:
    """The alias of the user's contact ``contact_id``; not found for anyone else's."""
    alias_id = db.scalar(select(Contact.alias_id).where(Contact.id == contact_id))
    alias = db.get(Alias, alias_id) if alias_id is not None else None
    if alias is None or alias.user_id != user.id or alias.deleted_at is not None:
        raise not_found("contact")
    return alias


def _external(ctx: ServiceContext, db: Session, user: User, raw: str) -> str:
    """``raw`` as a stored address, refused when it is an address of this service or of the user."""
    address = accounts.accepted_address(raw)
    if address is None:
        raise ServiceError("invalid_email", "Enter a valid email address.")
    domain = address.rpartition("@")[2]
    served = db.scalar(select(UserDomain.id).where(UserDomain.name == domain, UserDomain.status.in_(sorted(RECEIVING))))
    if domain in ctx.settings.domains or served is not None:
        raise ServiceError("invalid_contact", "A contact is an outside address, not an alias of this service.")
    own = db.scalar(select(Destination.id).where(Destination.user_id == user.id, Destination.email == address))
    if own is not None or address == user.email:
        raise ServiceError("invalid_contact", "That is your own address: a contact is someone you write to.")
    return address


def create(
    ctx: ServiceContext, db: Session, user: User, alias: Alias, raw_address: str, name: str = ""
) -> ContactSummary:
    """The contact of ``alias`` for an outside address (made when new), to write to through its
    reverse address."""
    address = _external(ctx, db, user, raw_address)
    if not name.isprintable():
        raise ServiceError("invalid_text", "The name may hold no control characters.")
    ref = ctx.runtime.contacts.create(alias.id, alias_domain(alias), address, name.strip()[:NAME_MAX_LENGTH])
    return one(ctx, alias, ref.contact_id)


def set_blocked(ctx: ServiceContext, alias: Alias, contact_id: int, blocked: bool) -> ContactSummary:
    if not ctx.runtime.contacts.set_blocked(alias.id, contact_id, blocked):
        raise not_found("contact")
    return one(ctx, alias, contact_id)


def delete(ctx: ServiceContext, alias: Alias, contact_id: int) -> None:
    """Delete the contact and its message links; mail from it later makes a new one."""
    if not ctx.runtime.contacts.delete_contact(alias.id, contact_id):
        raise not_found("contact")


def forget_two_way(db: Session, alias_ids: Any) -> None:
    """Delete the contacts, message links and sender rules of ``alias_ids`` (ids or a subquery):
    aliases are soft-deleted, so no foreign-key cascade does it."""
    for model in (MessageLink, Contact, SenderRule):
        db.execute(sql_delete(model).where(model.alias_id.in_(alias_ids)).execution_options(synchronize_session=False))
