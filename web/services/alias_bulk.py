"""Several of a user's aliases at once: disable, enable or delete up to :data:`MAX_BULK` of them in
one transaction (the alias list's bulk form). Any id that is not one of the user's live aliases
refuses the whole request.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from forwarder import accounts
from models import Alias, User
from web.services import contacts
from web.services.aliases import mark_deleted
from web.services.errors import ServiceError, not_found

BULK_ACTIONS = ("disable", "enable", "delete")
#: The most aliases one bulk action takes (two pages of the list).
MAX_BULK = 100


def owned_many(db: Session, user: User, ids: list[int]) -> list[Alias]:
    """The user's live aliases with these ids, by address; any id that is not one is refused whole."""
    wanted = set(ids)
    if not wanted:
        raise ServiceError("nothing_chosen", "Choose at least one alias.")
    if len(wanted) > MAX_BULK:
        raise ServiceError("too_many", f"Choose at most {MAX_BULK} aliases at a time.")
    found = list(
        db.scalars(
            select(Alias)
            .where(Alias.id.in_(wanted), Alias.user_id == user.id, Alias.deleted_at.is_(None))
            .order_by(Alias.address)
        )
    )
    if len(found) != len(wanted):
        raise not_found("alias")
    return found


def bulk_changes(action: str, chosen: list[Alias]) -> list[Alias]:
    """Which of ``chosen`` the action changes: switching off the ones on, on the ones off; deleting all."""
    if action == "disable":
        return [alias for alias in chosen if alias.enabled]
    if action == "enable":
        return [alias for alias in chosen if not alias.enabled]
    if action == "delete":
        return list(chosen)
    raise ServiceError("invalid_action", "Choose switch off, switch on or delete.")


def bulk(db: Session, user: User, action: str, ids: list[int]) -> list[Alias]:
    """Apply ``action`` to the user's aliases ``ids`` in one transaction; the ones it changed."""
    changed = bulk_changes(action, owned_many(db, user, ids))
    if action == "delete":
        contacts.forget_two_way(db, [alias.id for alias in changed])
        for alias in changed:
            mark_deleted(alias)
    else:
        for alias in changed:
            accounts.set_alias_enabled(alias, action == "enable")
    db.commit()
    return changed
