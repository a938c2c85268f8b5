"""The contact book, :class:`SqlContactBook`: the forward and reply paths' contacts, and the roles
it is made of (:mod:`.sender_rules`, :mod:`.links`, :mod:`.managing`, :mod:`.resealing`).

The hot path is :meth:`SqlContactBook.prepare_forward` (two-way forwarding is on by default): once
the contacts of a message exist, it costs one statement, built once with bound parameters (so
SQLAlchemy's compiled cache serves it): :data:`~.statements._PREPARE` reads the alias, its and its
owner's sender modes, the participants' contacts and the sender rules together (one UNION ALL, its
rows told apart by their ``tag``). It counts nothing forwarded: the message's first claim counts its
contacts (:attr:`~forwarder.ports.ForwardContacts.counted`, forwarder/adapters/sql/directory/), in the
transaction that makes a redelivery find the message claimed, so a message counts once; a refused
known sender's blocked count likewise (:attr:`~forwarder.ports.ForwardContacts.blocked`, counted with
the message's record). No address is opened (decrypted) to forward: the
rewrite needs the reverse addresses, and takes the display names from
the message itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from forwarder.adapters.sql.connections import again_if_dead
from forwarder.adapters.sql.contacts.addresses import (
    _cut_name,
    _names,
    normalize_address,
    normalize_message_id,
    plausible,
)
from forwarder.adapters.sql.contacts.links import ThreadLinks
from forwarder.adapters.sql.contacts.managing import ContactManagement
from forwarder.adapters.sql.contacts.resealing import Resealing
from forwarder.adapters.sql.contacts.sender_rules import SenderRules, judge
from forwarder.adapters.sql.contacts.statements import (
    _BY_REVERSE,
    _CONTACT_ROW,
    _COUNT_FORWARDED,
    _LINK_ROW,
    _PREPARE,
    _RULE_ROW,
    _Known,
)
from forwarder.ports import ContactRef, ForwardContacts, SenderVerdict
from models.limits import EMAIL_MAX_LENGTH
from models.tables import aliases as _aliases
from models.tables import contacts as _contacts


class SqlContactBook(ContactManagement, SenderRules, ThreadLinks, Resealing):
    """See forwarder/ports.py's ContactBook; ``clock`` gives aware UTC datetimes. Built as
    :class:`~.store.ContactStore` is (engine, sealer, clock, thread_days)."""

    def contacts_for(self, alias_id: int, alias_domain: str, people: Sequence[tuple[str, str]]) -> dict[str, str]:
        with self._connection(write=True) as connection:
            return self._contacts_in(connection, alias_id, alias_domain, people)[0]

    def prepare_forward(
        self, alias_address: str, people: Sequence[tuple[str, str]], sender: str, thread_ids: Sequence[str] = ()
    ) -> ForwardContacts | None:
        """What forwarding a message to ``alias_address`` needs of its contacts, in one transaction:
        whether the sender rules let ``sender`` through, and (if so) the reverse address of each of
        ``people``, made when new, and the originals of ``thread_ids`` (as :meth:`original_for`).
        None: no such alias. Once the contacts exist: :data:`_PREPARE` alone, and nothing counted:
        the contacts to count are :attr:`ForwardContacts.counted` (forwarded) or
        :attr:`ForwardContacts.blocked` (a refused known sender), counted by the message's first
        claim or record. Every path ends its transaction with a commit, never a rollback (psycopg's
        rollback drops the connection's prepared statements)."""
        names = _names(people)
        sender_key = normalize_address(sender).strip("<>")
        by_digest = self._by_digest([*names, sender_key] if sender_key else names)
        seen: dict[str, list[str]] = {}
        for seen_id in thread_ids:
            if normalize_message_id(seen_id):
                for digest in self._sealer.digests(normalize_message_id(seen_id)):
                    seen.setdefault(digest, []).append(seen_id)
        now = self._now()
        params = {
            "p_address": normalize_address(alias_address),
            "p_digests": sorted(by_digest),
            "p_seen": sorted(seen),
            "p_now": now,
        }
        # each statement stands alone (the read; each new contact's insert; a name added): autocommit
        with self._connection(write=True, autocommit=True) as connection:
            alias: Any = None
            found: dict[str, _Known] = {}
            rules: list[tuple[int | None, str, str, str]] = []
            linked: dict[str, str] = {}
            for row in again_if_dead(connection, lambda again: again.execute(_PREPARE, params).all()):
                if row.tag == _CONTACT_ROW:
                    found[by_digest[row.s2]] = _Known(row.id, row.s1, row.s3, bool(row.n))
                elif row.tag == _RULE_ROW:
                    rules.append((row.id, row.s1, row.s2, row.s3))
                elif row.tag == _LINK_ROW:
                    linked.update(dict.fromkeys(seen[row.s2], row.s3))
                else:
                    alias = row
            # read only so far: ended by a commit, since psycopg's rollback runs DEALLOCATE ALL and the
            # connection's prepared statements would be prepared again
            if alias is None:
                connection.commit()
                return None
            known = found.get(sender_key) if sender_key else None
            verdict = (
                judge(sender_key, None if known is None else known.blocked, rules, alias.id, (alias.s1, alias.s2))
                if alias.n is not None
                else SenderVerdict(True, "no-rule")
            )
            if not verdict.allowed:  # the message's record counts the blocked contact (ForwardContacts.blocked)
                connection.commit()
                return ForwardContacts(alias.id, verdict, {}, blocked=(known.id,) if known is not None else ())
            domain = alias_address.rpartition("@")[2].lower()
            in_message = {address: row for address, row in found.items() if address in names}
            contacts, rows = self._bring_in(connection, alias.id, domain, names, in_message, count=False)
            connection.commit()  # a no-op unless nothing was written
        sender_row = rows.get(sender_key)
        originals = {seen_id: self._sealer.open(sealed) for seen_id, sealed in linked.items()}
        counted = tuple(sorted(rows[address].id for address in contacts))
        return ForwardContacts(
            alias.id, verdict, contacts, sender_row.id if sender_row is not None else None, originals, counted
        )

    def _contacts_in(
        self, connection: Connection, alias_id: int, alias_domain: str, people: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, str], dict[str, Any]]:
        names = _names(people)
        if not names:
            return {}, {}
        return self._bring_in(connection, alias_id, alias_domain, names, self._find(connection, alias_id, list(names)))

    def _bring_in(
        self,
        connection: Connection,
        alias_id: int,
        alias_domain: str,
        names: dict[str, str],
        found: dict[str, Any],
        count: bool = True,
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Make the contacts of ``names`` (``{address: display name}``) not in ``found`` (their rows,
        by address), count one forwarded message for each of them if ``count``, and commit; their
        reverse addresses and rows, by address. A contact without a name gets the one the message
        shows. A forward does not count here: its first claim counts (:attr:`ForwardContacts.counted`)."""
        if not names:
            return {}, {}
        now = self._now()
        if found:
            if count:
                connection.execute(_COUNT_FORWARDED, {"p_ids": [row.id for row in found.values()], "p_now": now})
            for address, row in found.items():
                if not row.name_sealed and names[address]:
                    connection.execute(
                        update(_contacts)
                        .where(_contacts.c.id == row.id)
                        .values(name_sealed=self._sealer.seal(names[address]))
                    )
            connection.commit()
        addresses = sorted(names)
        rows = dict(found)
        lost = []
        for address in (a for a in addresses if a not in found):
            made = self._insert(connection, alias_id, address, names[address], "forward", int(count))
            if made is None:
                lost.append(address)
            else:
                rows[address] = made
        if lost:  # made by another writer meanwhile: read, and count this message for them too
            rows |= self._find(connection, alias_id, lost)
            if count:
                connection.execute(_COUNT_FORWARDED, {"p_ids": [rows[a].id for a in lost], "p_now": now})
            connection.commit()
        return {address: f"{rows[address].reverse_local}@{alias_domain}" for address in addresses}, rows

    def create(
        self, alias_id: int, alias_domain: str, address: str, name: str = "", origin: str = "user"
    ) -> ContactRef:
        key = normalize_address(address)
        if not plausible(key):
            raise ValueError(f"{address!r} is not an email address of at most {EMAIL_MAX_LENGTH} octets")
        with self._connection(write=True) as connection:
            if not self._find(connection, alias_id, [key]):
                connection.rollback()
                self._insert(connection, alias_id, key, _cut_name(name), origin, 0)
            row = self._find(connection, alias_id, [key])[key]
            alias_address = connection.execute(select(_aliases.c.address).where(_aliases.c.id == alias_id)).scalar_one()
        return self._ref(row, alias_address, f"{row.reverse_local}@{alias_domain}")

    def _ref(self, row: Any, alias_address: str, reverse: str) -> ContactRef:
        return ContactRef(
            contact_id=row.id,
            alias_id=row.alias_id,
            alias_address=alias_address,
            address=self._sealer.open(row.address_sealed),
            name=self._sealer.open(row.name_sealed) if row.name_sealed else "",
            blocked=bool(row.blocked),
            reverse=reverse,
        )

    def by_reverse(self, address: str) -> ContactRef | None:
        local, at, domain = normalize_address(address).rpartition("@")
        if not (local and at and domain):
            return None
        with self._connection() as connection:
            row = again_if_dead(connection, lambda again: again.execute(_BY_REVERSE, {"p_local": local}).first())
        if row is None or row.alias_address.rpartition("@")[2] != domain:
            return None
        return self._ref(row, row.alias_address, f"{local}@{domain}")
