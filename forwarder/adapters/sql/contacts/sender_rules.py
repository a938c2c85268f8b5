"""Sender rules: :func:`judge` (whether the rules let a sender write to an alias, the verdict the
forward path's one read feeds too) and :class:`SenderRules`, their management and a sender's
verdict read on its own."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, or_, select

from forwarder.adapters.sql.contacts.addresses import normalize_address
from forwarder.adapters.sql.contacts.store import ContactStore
from forwarder.ports import SenderRuleRow, SenderVerdict
from models.limits import EMAIL_MAX_LENGTH
from models.tables import RULE_ACTIONS, RULE_KINDS
from models.tables import aliases as _aliases
from models.tables import sender_rules as _rules
from models.tables import users as _users


def _domain_matches(domain: str, rule_value: str) -> bool:
    return domain == rule_value or domain.endswith("." + rule_value)


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


class SenderRules(ContactStore):
    """Add, list and remove an account's or an alias's sender rules; judge a sender."""

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
                insert(_rules).values(
                    user_id=user_id, alias_id=alias_id, action=action, kind=kind, value=value, created_at=self._now()
                )
            ).inserted_primary_key
            connection.commit()
        assert inserted is not None  # an insert of one row
        return int(inserted[0])

    def rules(self, user_id: int, alias_id: int | None = None) -> list[SenderRuleRow]:
        """The account's rules (all of them), or only the alias's when ``alias_id`` is given."""
        statement = select(_rules).where(_rules.c.user_id == user_id)
        if alias_id is not None:
            statement = statement.where(_rules.c.alias_id == alias_id)
        with self._connection() as connection:
            rows = connection.execute(statement.order_by(_rules.c.id)).all()
        return [SenderRuleRow(row.id, row.alias_id, row.action, row.kind, row.value) for row in rows]

    def remove_rule(self, user_id: int, rule_id: int) -> bool:
        return self._change(delete(_rules).where(_rules.c.id == rule_id, _rules.c.user_id == user_id)) == 1

    def sender_allowed(self, user_id: int, alias_id: int, sender_address: str) -> SenderVerdict:
        with self._connection() as connection:
            return self._verdict(connection, user_id, alias_id, sender_address)

    def _verdict(self, connection: Connection, user_id: int, alias_id: int, sender_address: str) -> SenderVerdict:
        sender = normalize_address(sender_address).strip("<>")
        contact = self._find(connection, alias_id, [sender]).get(sender) if sender else None
        rules = connection.execute(
            select(_rules.c.alias_id, _rules.c.action, _rules.c.kind, _rules.c.value).where(
                _rules.c.user_id == user_id, or_(_rules.c.alias_id.is_(None), _rules.c.alias_id == alias_id)
            )
        ).all()
        modes = connection.execute(
            select(_aliases.c.sender_mode, _users.c.sender_mode)
            .join(_users, _users.c.id == _aliases.c.user_id)
            .where(_aliases.c.id == alias_id)
        ).first()
        blocked = None if contact is None else bool(contact.blocked)
        found = [(rule.alias_id, rule.action, rule.kind, rule.value) for rule in rules]
        return judge(sender, blocked, found, alias_id, tuple(modes or ()))
