"""The SQLAlchemy Core statements of the contact book's hot path, built once with bound parameters
(so SQLAlchemy's compiled cache serves them), and :class:`_Known`, a contact as :data:`_PREPARE`
reads it."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Integer, bindparam, case, literal_column, null, or_, select, union_all, update

from models.tables import aliases as _aliases
from models.tables import contacts as _contacts
from models.tables import message_links as _links
from models.tables import sender_rules as _rules
from models.tables import users as _users

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
    """A contact as :data:`_PREPARE` read it (the attributes :meth:`~.book.SqlContactBook._bring_in` uses)."""

    id: int
    reverse_local: str
    name_sealed: str
    blocked: bool
