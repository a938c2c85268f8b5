"""Contacts as their alias's owner manages them (the web, the CLI): list, count, block, delete,
forget an alias's; and the one-click unsubscribe: :class:`ContactManagement`."""

from __future__ import annotations

from sqlalchemy import and_, delete, select, update

from forwarder.adapters.sql.contacts.store import ContactStore
from forwarder.ports import ContactSummary
from models.tables import aliases as _aliases
from models.tables import contacts as _contacts
from models.tables import message_links as _links
from models.tables import sender_rules as _rules
from models.tables import users as _users


class ContactManagement(ContactStore):
    """An alias's contacts, listed and changed one at a time."""

    def contacts_of(self, alias_id: int, alias_domain: str) -> list[ContactSummary]:
        """The alias's contacts, oldest first, their addresses and names opened."""
        with self._connection() as connection:
            rows = connection.execute(
                select(_contacts).where(_contacts.c.alias_id == alias_id).order_by(_contacts.c.id)
            ).all()
        return [
            ContactSummary(
                contact_id=row.id,
                address=self._sealer.open(row.address_sealed),
                name=self._sealer.open(row.name_sealed) if row.name_sealed else "",
                reverse=f"{row.reverse_local}@{alias_domain}",
                origin=row.origin,
                blocked=bool(row.blocked),
                forwarded_count=row.forwarded_count,
                replied_count=row.replied_count,
                blocked_count=row.blocked_count,
                last_seen_at=row.last_seen_at,
                created_at=row.created_at,
            )
            for row in rows
        ]

    def count(self, contact_id: int, *, replied: int = 0, blocked: int = 0) -> None:
        self._change(
            update(_contacts)
            .where(_contacts.c.id == contact_id)
            .values(
                replied_count=_contacts.c.replied_count + replied, blocked_count=_contacts.c.blocked_count + blocked
            )
        )

    def set_blocked(self, alias_id: int, contact_id: int, blocked: bool) -> bool:
        """Block or unblock a contact of the alias; False when the alias has no such contact."""
        statement = update(_contacts).where(_contacts.c.id == contact_id, _contacts.c.alias_id == alias_id)
        return self._change(statement.values(blocked=blocked)) == 1

    def delete_contact(self, alias_id: int, contact_id: int) -> bool:
        """Delete a contact of the alias and its links; False when the alias has no such contact."""
        statement = delete(_contacts).where(_contacts.c.id == contact_id, _contacts.c.alias_id == alias_id)
        return self._change(statement) == 1

    def forget_alias(self, alias_id: int) -> None:
        """Delete the alias's contacts, links and rules: aliases are soft-deleted, so no cascade does it."""
        with self._connection(write=True) as connection:
            for table in (_links, _contacts, _rules):
                connection.execute(delete(table).where(table.c.alias_id == alias_id))
            connection.commit()

    def unsubscribe(self, alias_id: int, contact_id: int) -> str:
        """Do what the alias's owner chose for a one-click unsubscribe (users.unsubscribe_action) and
        say which: ``disable-alias`` (the alias is switched off), ``block-contact`` (the contact is
        blocked), ``pass-through`` (nothing here: the sender's own link was passed on), or
        ``unknown`` (no such alias or contact, or the contact is not the alias's)."""
        with self._connection(write=True) as connection:
            row = connection.execute(
                select(_aliases.c.id, _users.c.unsubscribe_action)
                .join(_users, _users.c.id == _aliases.c.user_id)
                .join(_contacts, and_(_contacts.c.alias_id == _aliases.c.id, _contacts.c.id == contact_id))
                .where(_aliases.c.id == alias_id, _aliases.c.deleted_at.is_(None))
            ).first()
            if row is None:
                return "unknown"
            action = row.unsubscribe_action or "disable-alias"
            if action == "block-contact":
                connection.execute(update(_contacts).where(_contacts.c.id == contact_id).values(blocked=True))
            elif action == "disable-alias":
                connection.execute(
                    update(_aliases)
                    .where(_aliases.c.id == alias_id, _aliases.c.enabled.is_(True))
                    .values(
                        enabled=False,
                        disabled_reason=f"Switched off by a one-click unsubscribe on {self._now():%Y-%m-%d}.",
                    )
                )
            connection.commit()
            return str(action)
