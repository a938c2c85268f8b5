"""The ContactBook of two-way aliases (issue 14) in SQL: contacts, the Message-ID map, sender rules.

Real addresses, display names and Message-IDs are stored sealed and found by their keyed digests
(forwarder/adapters/sealing.py); during a key rotation a lookup tries each key's digest.

A new contact is inserted and committed on its own, so two workers meeting the same new address
both end with the one row: the second one's insert fails on the unique (alias, digest) key, it
rolls back and reads the winner's row.

The hot path is :meth:`SqlContactBook.prepare_forward` (two-way forwarding is on by default): once
the contacts of a message exist, it costs one statement, built once here with bound parameters (so
SQLAlchemy's compiled cache serves it): :data:`_PREPARE` reads the alias, its and its owner's sender
modes, the participants' contacts and the sender rules together (one UNION ALL, its rows told apart
by their ``tag``). It counts nothing forwarded: the message's first claim counts its contacts
(:attr:`~forwarder.ports.ForwardContacts.counted`, forwarder/adapters/sql/directory/), in the
transaction that makes a redelivery find the message claimed, so a message counts once; a refused
known sender's blocked count likewise (:attr:`~forwarder.ports.ForwardContacts.blocked`, counted with
the message's record). No address is opened (decrypted) to forward: the
rewrite needs the reverse addresses, and takes the display names from
the message itself.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from forwarder.adapters.sealing import Sealer
from forwarder.adapters.sql.connections import again_if_dead, connect, database_errors
from forwarder.ports import ContactRef, ContactSummary, ForwardContacts, SenderRuleRow, SenderVerdict
from models import RULE_ACTIONS, RULE_KINDS, Alias, Contact, MessageLink, SenderRule, User, utcnow
from models.limits import CONTACT_NAME_MAX_BYTES, EMAIL_MAX_LENGTH

#: 10 random bytes: 16 characters of lowercase base32, 80 bits.
REVERSE_BYTES = 10


def new_reverse_local() -> str:
    return base64.b32encode(secrets.token_bytes(REVERSE_BYTES)).decode().lower()


def normalize_address(address: str) -> str:
    return address.strip().lower()


def plausible(address: str) -> bool:
    """A normalized address with a local part and a domain, at most 254 octets (RFC 5321)."""
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and len(address.encode()) <= EMAIL_MAX_LENGTH


def normalize_message_id(message_id: str) -> str:
    """A Message-ID without its angle brackets and spaces (the digest ignores case too)."""
    return message_id.strip().strip("<>").strip()


def _cut_name(name: str) -> str:
    return name.strip().encode()[:CONTACT_NAME_MAX_BYTES].decode(errors="ignore")


def _domain_matches(domain: str, rule_value: str) -> bool:
    return domain == rule_value or domain.endswith("." + rule_value)


_contacts = cast(Table, Contact.__table__)
_aliases = cast(Table, Alias.__table__)
_users = cast(Table, User.__table__)
_rules = cast(Table, SenderRule.__table__)
_links = cast(Table, MessageLink.__table__)

#: The ``tag`` of :data:`_PREPARE`'s rows.
_ALIAS_ROW, _CONTACT_ROW, _RULE_ROW, _LINK_ROW = 0, 1, 2, 3
_THE_ALIAS = _aliases.c.address == bindparam("p_address")
#: Everything a forward asks of the database before the rules' verdict, in one round trip: the
#: alias (``id``; ``n``: its owner; ``s1``/``s2``: the alias's and the owner's sender modes), the
#: alias's contacts among ``p_digests`` (``n``: blocked; ``s1``: reverse local part; ``s2``: digest;
#: ``s3``: sealed name), the owner's rules for the alias or the whole account (``id``: the rule's
#: alias; ``s1``..``s3``: action, kind, value), and the alias's unexpired thread links among
#: ``p_seen`` (``s2``: seen digest; ``s3``: sealed original). Each part is found by a unique or
#: indexed key.
_PREPARE = union_all(
    select(
        literal_column(str(_ALIAS_ROW), Integer).label("tag"),
        _aliases.c.id.label("id"),
        _aliases.c.user_id.label("n"),
        _aliases.c.sender_mode.label("s1"),
        _users.c.sender_mode.label("s2"),
        null().label("s3"),
    )
    .select_from(_aliases.outerjoin(_users, _users.c.id == _aliases.c.user_id))
    .where(_THE_ALIAS),
    select(
        literal_column(str(_CONTACT_ROW), Integer),
        _contacts.c.id,
        case((_contacts.c.blocked, literal_column("1", Integer)), else_=literal_column("0", Integer)),
        _contacts.c.reverse_local,
        _contacts.c.address_digest,
        _contacts.c.name_sealed,
    )
    .select_from(_contacts.join(_aliases, _aliases.c.id == _contacts.c.alias_id))
    .where(_THE_ALIAS, _contacts.c.address_digest.in_(bindparam("p_digests", expanding=True))),
    select(
        literal_column(str(_RULE_ROW), Integer),
        _rules.c.alias_id,
        null(),
        _rules.c.action,
        _rules.c.kind,
        _rules.c.value,
    )
    .select_from(_rules.join(_aliases, _aliases.c.user_id == _rules.c.user_id))
    .where(_THE_ALIAS, or_(_rules.c.alias_id.is_(None), _rules.c.alias_id == _aliases.c.id)),
    select(
        literal_column(str(_LINK_ROW), Integer),
        _links.c.id,
        null(),
        null(),
        _links.c.seen_digest,
        _links.c.original_sealed,
    )
    .select_from(_links.join(_aliases, _aliases.c.id == _links.c.alias_id))
    .where(
        _THE_ALIAS,
        _links.c.seen_digest.in_(bindparam("p_seen", expanding=True)),
        _links.c.expires_at > bindparam("p_now"),
    ),
)
#: One forwarded message for each of the contacts ``p_ids``.
_COUNT_FORWARDED = (
    update(_contacts)
    .where(_contacts.c.id.in_(bindparam("p_ids", expanding=True)))
    .values(forwarded_count=_contacts.c.forwarded_count + 1, last_seen_at=bindparam("p_now"))
)
#: A contact by its reverse address's local part, with its alias's address (the reply path).
_BY_REVERSE = (
    select(_contacts, _aliases.c.address.label("alias_address"))
    .join(_aliases, _aliases.c.id == _contacts.c.alias_id)
    .where(_contacts.c.reverse_local == bindparam("p_local"))
)
_FIND = select(_contacts).where(
    _contacts.c.alias_id == bindparam("p_alias_id"),
    _contacts.c.address_digest.in_(bindparam("p_digests", expanding=True)),
)


class _Known(NamedTuple):
    """A contact as :data:`_PREPARE` read it (the attributes :meth:`SqlContactBook._bring_in` uses)."""

    id: int
    reverse_local: str
    name_sealed: str
    blocked: bool


def judge(
    sender: str,
    contact_blocked: bool | None,
    rules: Sequence[tuple[int | None, str, str, str]],
    alias_id: int,
    modes: Sequence[str | None],
) -> SenderVerdict:
    """Whether the sender rules let ``sender`` (normalized, "" for the empty sender) write to the
    alias: a blocked contact first, then the alias's rules, then the account's (``rules``: alias id
    or None, action, kind, value), block over allow at each level; then the allow-only mode of the
    alias or its owner (``modes``), where only known contacts (``contact_blocked`` not None) pass."""
    if contact_blocked:
        return SenderVerdict(False, "blocked-contact")
    domain = sender.rpartition("@")[2] if "@" in sender else ""

    def matches(kind: str, value: str) -> bool:
        if kind == "empty-sender":
            return not sender
        if kind == "address":
            return bool(sender) and sender == value
        return bool(domain) and _domain_matches(domain, value)

    for level, scope in (("alias", alias_id), ("account", None)):
        actions = {action for rule_alias, action, kind, value in rules if rule_alias == scope and matches(kind, value)}
        if "block" in actions:
            return SenderVerdict(False, f"blocked-by-{level}-rule")
        if "allow" in actions:
            return SenderVerdict(True, f"allowed-by-{level}-rule")
    if "allow-only" in modes:
        if contact_blocked is not None:
            return SenderVerdict(True, "known-contact")
        return SenderVerdict(False, "not-allow-listed")
    return SenderVerdict(True, "no-rule")


def _names(people: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``{normalized address: display name cut to fit}`` of the plausible ones of ``people``."""
    names: dict[str, str] = {}
    for address, name in people:
        key = normalize_address(address)
        if plausible(key):
            names[key] = names.get(key) or _cut_name(name)
    return names


class SqlContactBook:
    """See forwarder/ports.py's ContactBook; ``clock`` gives aware UTC datetimes."""

    def __init__(
        self,
        engine: Engine,
        sealer: Sealer,
        clock: Callable[[], datetime] = utcnow,
        thread_days: int = 180,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._now = clock
        self._thread_days = thread_days
        # SQLite has one writer at a time: threads of this process queue here rather than in its
        # busy handler (as SqlDirectory does).
        self._write_lock: AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def _connection(self, write: bool = False, autocommit: bool = False) -> Iterator[Connection]:
        """``autocommit`` (PostgreSQL): each statement commits on its own, no BEGIN or COMMIT is sent
        (for work whose every statement stands alone, as in SqlDirectory)."""
        postgresql = self._engine.dialect.name == "postgresql"
        with (
            database_errors(),
            self._write_lock if write else nullcontext(),
            connect(self._engine, autocommit and postgresql) as connection,
        ):
            yield connection

    # --- contacts -------------------------------------------------------------------------------

    def _by_digest(self, addresses: Iterable[str]) -> dict[str, str]:
        """``{digest: address}`` of ``addresses`` under every key (one digest each, out of a rotation)."""
        return {digest: address for address in addresses for digest in self._sealer.digests(address)}

    def _find(self, connection: Connection, alias_id: int, addresses: Sequence[str]) -> dict[str, Any]:
        """Rows of ``addresses`` (normalized) that exist for the alias, by address."""
        by_digest = self._by_digest(addresses)
        if not by_digest:
            return {}
        rows = connection.execute(_FIND, {"p_alias_id": alias_id, "p_digests": sorted(by_digest)}).all()
        return {by_digest[row.address_digest]: row for row in rows}

    def _insert(
        self, connection: Connection, alias_id: int, address: str, name: str, origin: str, count: int
    ) -> _Known | None:
        """Insert and commit one contact; its row (as :data:`_PREPARE` reads one, without reading it
        again), or None when another writer made it first."""
        for _attempt in range(3):  # a second try only if the random local part collided
            reverse_local = new_reverse_local()
            name_sealed = self._sealer.seal(name) if name else ""
            try:
                inserted = connection.execute(
                    insert(Contact).values(
                        alias_id=alias_id,
                        reverse_local=reverse_local,
                        address_digest=self._sealer.digest(address),
                        address_sealed=self._sealer.seal(address),
                        name_sealed=name_sealed,
                        origin=origin,
                        forwarded_count=count,
                        last_seen_at=self._now() if count else None,
                        created_at=self._now(),
                    )
                ).inserted_primary_key
                connection.commit()
                assert inserted is not None  # an insert of one row
                return _Known(int(inserted[0]), reverse_local, name_sealed, False)
            except IntegrityError:
                connection.rollback()
                if self._find(connection, alias_id, [address]):
                    connection.commit()  # read only; a rollback would drop psycopg's prepared statements
                    return None
        raise RuntimeError("no free reverse address after 3 tries")  # 80 random bits: never in practice

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

    def unsubscribe(self, alias_id: int, contact_id: int) -> str:
        """Do what the alias's owner chose for a one-click unsubscribe (users.unsubscribe_action) and
        say which: ``disable-alias`` (the alias is switched off), ``block-contact`` (the contact is
        blocked), ``pass-through`` (nothing here: the sender's own link was passed on), or
        ``unknown`` (no such alias or contact, or the contact is not the alias's)."""
        with self._connection(write=True) as connection:
            row = connection.execute(
                select(Alias.id, User.unsubscribe_action)
                .join(User, User.id == Alias.user_id)
                .join(Contact, and_(Contact.alias_id == Alias.id, Contact.id == contact_id))
                .where(Alias.id == alias_id, Alias.deleted_at.is_(None))
            ).first()
            if row is None:
                return "unknown"
            action = row.unsubscribe_action or "disable-alias"
            if action == "block-contact":
                connection.execute(update(Contact).where(Contact.id == contact_id).values(blocked=True))
            elif action == "disable-alias":
                connection.execute(
                    update(Alias)
                    .where(Alias.id == alias_id, Alias.enabled.is_(True))
                    .values(
                        enabled=False,
                        disabled_reason=f"Switched off by a one-click unsubscribe on {self._now():%Y-%m-%d}.",
                    )
                )
            connection.commit()
            return str(action)

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
                        update(Contact)
                        .where(Contact.id == row.id)
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
            alias_address = connection.execute(select(Alias.address).where(Alias.id == alias_id)).scalar_one()
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

    def contacts_of(self, alias_id: int, alias_domain: str) -> list[ContactSummary]:
        """The alias's contacts, oldest first, their addresses and names opened."""
        with self._connection() as connection:
            rows = connection.execute(select(Contact).where(Contact.alias_id == alias_id).order_by(Contact.id)).all()
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

    def _change(self, statement: Any) -> int:
        with self._connection(write=True) as connection:
            changed = connection.execute(statement).rowcount
            connection.commit()
        return changed

    def count(self, contact_id: int, *, replied: int = 0, blocked: int = 0) -> None:
        self._change(
            update(Contact)
            .where(Contact.id == contact_id)
            .values(replied_count=Contact.replied_count + replied, blocked_count=Contact.blocked_count + blocked)
        )

    def set_blocked(self, alias_id: int, contact_id: int, blocked: bool) -> bool:
        """Block or unblock a contact of the alias; False when the alias has no such contact."""
        statement = update(Contact).where(Contact.id == contact_id, Contact.alias_id == alias_id)
        return self._change(statement.values(blocked=blocked)) == 1

    def delete_contact(self, alias_id: int, contact_id: int) -> bool:
        """Delete a contact of the alias and its links; False when the alias has no such contact."""
        return self._change(delete(Contact).where(Contact.id == contact_id, Contact.alias_id == alias_id)) == 1

    def forget_alias(self, alias_id: int) -> None:
        """Delete the alias's contacts, links and rules: aliases are soft-deleted, so no cascade does it."""
        with self._connection(write=True) as connection:
            for model in (MessageLink, Contact, SenderRule):
                connection.execute(delete(model).where(model.alias_id == alias_id))
            connection.commit()

    # --- the Message-ID map ---------------------------------------------------------------------

    def link(
        self, alias_id: int, contact_id: int | None, seen_ids: Sequence[str], original_id: str, kind: str = "forward"
    ) -> None:
        rows = self.link_rows(alias_id, contact_id, seen_ids, original_id, kind)
        if not rows:
            return
        with self._connection(write=True) as connection:
            for row in rows:  # one at a time: a row linked before (a retried send) must not undo the others
                try:
                    connection.execute(insert(MessageLink), row)
                    connection.commit()
                except IntegrityError:  # the first link stands
                    connection.rollback()

    def link_rows(
        self,
        alias_id: int,
        contact_id: int | None,
        seen_ids: Sequence[str],
        original_id: str,
        kind: str = "forward",
    ) -> list[dict[str, Any]]:
        """message_links rows (sealed, not written) linking each of ``seen_ids`` to ``original_id``:
        the forward flow has them written with its outcomes (``Directory.settle``)."""
        now = self._now()
        original = self._sealer.seal(original_id.strip())
        return [
            dict(
                alias_id=alias_id,
                contact_id=contact_id,
                seen_digest=self._sealer.digest(seen),
                seen_sealed=self._sealer.seal(seen),
                original_sealed=original,
                kind=kind,
                created_at=now,
                expires_at=now + timedelta(days=self._thread_days),
            )
            for seen in dict.fromkeys(normalize_message_id(s) for s in seen_ids)
            if seen
        ]

    def answers_reply(self, alias_id: int, seen_ids: Sequence[str]) -> bool:
        """Whether any of ``seen_ids`` is the id of a copy the alias sent to a contact (a reply or a
        first message), still in the thread map: what a bounce or an auto-reply to it names."""
        digests = [
            d for seen in dict.fromkeys(map(normalize_message_id, seen_ids)) if seen for d in self._sealer.digests(seen)
        ]
        if not digests:
            return False
        with self._connection() as connection:
            found = connection.execute(
                select(MessageLink.id)
                .where(
                    MessageLink.alias_id == alias_id,
                    MessageLink.kind == "reply",
                    MessageLink.seen_digest.in_(digests),
                    MessageLink.expires_at > self._now(),
                )
                .limit(1)
            ).first()
        return found is not None

    def original_for(self, alias_id: int, seen_id: str) -> str | None:
        digests = self._sealer.digests(normalize_message_id(seen_id))
        with self._connection() as connection:
            sealed = connection.execute(
                select(MessageLink.original_sealed).where(
                    MessageLink.alias_id == alias_id,
                    MessageLink.seen_digest.in_(digests),
                    MessageLink.expires_at > self._now(),
                )
            ).scalar()
        return None if sealed is None else self._sealer.open(sealed)

    def prune(self, now: datetime) -> int:
        with self._connection(write=True) as connection:
            removed = connection.execute(delete(MessageLink).where(MessageLink.expires_at <= now)).rowcount
            connection.commit()
        return removed

    # --- managing sender rules -----------------------------------------------------------------

    def add_rule(self, user_id: int, alias_id: int | None, action: str, kind: str, value: str = "") -> int:
        """Add a rule; its id. ValueError names what is wrong with ``action``, ``kind`` or ``value``."""
        if action not in RULE_ACTIONS:
            raise ValueError(f"a rule's action is one of {', '.join(RULE_ACTIONS)}, not {action!r}")
        if kind not in RULE_KINDS:
            raise ValueError(f"a rule's kind is one of {', '.join(RULE_KINDS)}, not {kind!r}")
        value = "" if kind == "empty-sender" else normalize_address(value).strip(".")
        if kind == "address" and (value.count("@") != 1 or value.startswith("@") or value.endswith("@")):
            raise ValueError(f"{value!r} is not an email address")
        if kind == "domain" and (not value or "@" in value or " " in value or "." not in value):
            raise ValueError(f"{value!r} is not a domain name")
        if len(value) > EMAIL_MAX_LENGTH:
            raise ValueError(f"a rule's value is at most {EMAIL_MAX_LENGTH} characters")
        with self._connection(write=True) as connection:
            inserted = connection.execute(
                insert(SenderRule).values(
                    user_id=user_id, alias_id=alias_id, action=action, kind=kind, value=value, created_at=self._now()
                )
            ).inserted_primary_key
            connection.commit()
        assert inserted is not None  # an insert of one row
        return int(inserted[0])

    def rules(self, user_id: int, alias_id: int | None = None) -> list[SenderRuleRow]:
        """The account's rules (all of them), or only the alias's when ``alias_id`` is given."""
        statement = select(SenderRule).where(SenderRule.user_id == user_id)
        if alias_id is not None:
            statement = statement.where(SenderRule.alias_id == alias_id)
        with self._connection() as connection:
            rows = connection.execute(statement.order_by(SenderRule.id)).all()
        return [SenderRuleRow(row.id, row.alias_id, row.action, row.kind, row.value) for row in rows]

    def remove_rule(self, user_id: int, rule_id: int) -> bool:
        return self._change(delete(SenderRule).where(SenderRule.id == rule_id, SenderRule.user_id == user_id)) == 1

    # --- key rotation ---------------------------------------------------------------------------

    def reseal(self, batch_size: int = 500) -> tuple[int, int]:
        """Re-seal and re-digest every contact and link not yet under the current key, ``batch_size``
        rows a transaction, and say how many of each. Online: until a row is re-sealed, lookups
        find it by its old digest and open it with the old key."""
        return self._reseal_contacts(batch_size), self._reseal_links(batch_size)

    def _stale(self, *sealed: str) -> bool:
        return any(text and not self._sealer.is_current(text) for text in sealed)

    def _reseal_contacts(self, batch_size: int) -> int:
        def fresh(row: Any) -> dict[str, Any] | None:
            if not self._stale(row.address_sealed, row.name_sealed):
                return None
            address = self._sealer.open(row.address_sealed)
            name = self._sealer.open(row.name_sealed) if row.name_sealed else ""
            return {
                "address_digest": self._sealer.digest(address),
                "address_sealed": self._sealer.seal(address),
                "name_sealed": self._sealer.seal(name) if name else "",
            }

        return self._reseal(Contact, (Contact.address_sealed, Contact.name_sealed), fresh, batch_size)

    def _reseal_links(self, batch_size: int) -> int:
        def fresh(row: Any) -> dict[str, Any] | None:
            if not self._stale(row.seen_sealed, row.original_sealed):
                return None
            seen = self._sealer.open(row.seen_sealed)
            return {
                "seen_digest": self._sealer.digest(seen),
                "seen_sealed": self._sealer.seal(seen),
                "original_sealed": self._sealer.seal(self._sealer.open(row.original_sealed)),
            }

        return self._reseal(MessageLink, (MessageLink.seen_sealed, MessageLink.original_sealed), fresh, batch_size)

    def _reseal(
        self, model: Any, columns: tuple[Any, ...], fresh: Callable[[Any], dict[str, Any] | None], batch_size: int
    ) -> int:
        """Walk ``model``'s rows by id, ``batch_size`` to a transaction, writing ``fresh(row)``'s
        values where it gives some (a row sealed under an older key); how many rows changed."""
        done, last = 0, 0
        while True:
            with self._connection(write=True) as connection:
                rows = connection.execute(
                    select(model.id, *columns).where(model.id > last).order_by(model.id).limit(batch_size)
                ).all()
                if not rows:
                    return done
                for row in rows:
                    values = fresh(row)
                    if values is not None:
                        connection.execute(update(model).where(model.id == row.id).values(**values))
                        done += 1
                connection.commit()
                last = rows[-1].id

    # --- sender rules ---------------------------------------------------------------------------

    def sender_allowed(self, user_id: int, alias_id: int, sender_address: str) -> SenderVerdict:
        with self._connection() as connection:
            return self._verdict(connection, user_id, alias_id, sender_address)

    def _verdict(self, connection: Connection, user_id: int, alias_id: int, sender_address: str) -> SenderVerdict:
        sender = normalize_address(sender_address).strip("<>")
        contact = self._find(connection, alias_id, [sender]).get(sender) if sender else None
        rules = connection.execute(
            select(SenderRule.alias_id, SenderRule.action, SenderRule.kind, SenderRule.value).where(
                SenderRule.user_id == user_id, or_(SenderRule.alias_id.is_(None), SenderRule.alias_id == alias_id)
            )
        ).all()
        modes = connection.execute(
            select(Alias.sender_mode, User.sender_mode).join(User, User.id == Alias.user_id).where(Alias.id == alias_id)
        ).first()
        blocked = None if contact is None else bool(contact.blocked)
        found = [(rule.alias_id, rule.action, rule.kind, rule.value) for rule in rules]
        return judge(sender, blocked, found, alias_id, tuple(modes or ()))
