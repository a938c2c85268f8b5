"""The SQLAlchemy Core statements of the directory's hot path, built once, and the small helpers
that bind their parameters (forwarder/adapters/sql/directory/__init__.py)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from forwarder.adapters.sql.directory.records import PENDING, RETRY, DeliveryKey, Finished, _Existing, _Seen
from forwarder.core import Outcome
from models.columns import normalize_email
from models.limits import REASON_MAX_LENGTH, clip
from models.tables import alias_destinations
from models.tables import aliases as _aliases
from models.tables import contacts as _contacts
from models.tables import deliveries as _deliveries
from models.tables import destinations as _destinations
from models.tables import message_links as _links
from models.tables import users as _users

# ---------------------------------------------------------------- statements
#
# The hot path runs SQLAlchemy Core statements built once, here: the ORM (unit of work, identity
# map, relationship loading) cost several times more per message. Values come in as bound
# parameters named ``p_...``: SQLAlchemy reserves a table's column names for SET and VALUES.

# The tables are SQLAlchemy Core's (models/tables.py), which the ORM classes map onto: the hot
# path loads no sqlalchemy.orm (issue 15, the Lambda's cold start).
_siblings = _deliveries.alias("sibling")

#: The delivery row of a key.
_KEY = and_(
    _deliveries.c.inbound_message_id == bindparam("p_message_id"),
    _deliveries.c.recipient == bindparam("p_recipient"),
    _deliveries.c.destination_key == bindparam("p_destination_key"),
)

#: What decides whether an alias still forwards (switched on, not deleted, not expired by time,
#: idleness or count) and what an expired one does.
_LIFETIME = (
    _aliases.c.enabled,
    _aliases.c.deleted_at,
    _aliases.c.expires_at,
    _aliases.c.idle_days,
    _aliases.c.max_messages,
    _aliases.c.message_count,
    _aliases.c.created_at,
    _aliases.c.last_used_at,
    _aliases.c.expired_action,
)
#: An alias, its verified destinations (none: one row of NULLs) and its owner.
_ALIAS_DESTINATIONS_OWNER = (
    _aliases.outerjoin(alias_destinations, alias_destinations.c.alias_id == _aliases.c.id)
    .outerjoin(
        _destinations,
        and_(_destinations.c.id == alias_destinations.c.destination_id, _destinations.c.verified_at.is_not(None)),
    )
    .outerjoin(_users, _users.c.id == _aliases.c.user_id)
)

_EXISTS = select(_aliases.c.id).where(_aliases.c.address == bindparam("p_address"))
#: What the RCPT check needs to tell an expired reject-mode alias (no destinations: it never sends).
_RCPT_STATUS = select(_aliases.c.address, *_LIFETIME).where(_aliases.c.address == bindparam("p_address"))

#: The alias and its verified destinations in one query: one row per verified destination, or
#: one row with NULL destination columns when there is none.
_RESOLVE = (
    select(
        _aliases.c.id,
        _aliases.c.address,
        *_LIFETIME,
        _aliases.c.display_name,
        _aliases.c.user_id,
        _users.c.display_format,
        _destinations.c.id.label("destination_id"),
        _destinations.c.email.label("destination_email"),
        _destinations.c.paused_at,
        _destinations.c.pause_reason,
    )
    .select_from(_ALIAS_DESTINATIONS_OWNER)
    .where(_aliases.c.address == bindparam("p_address"))
    .order_by(_destinations.c.id)
)

#: :data:`_RESOLVE` and, in the same query, the message's rows (the claim needs them): each
#: destination's delivery row, the message-level outcome (destination key 0), and whether this
#: (message, alias) has any row at all (a claim counts the message with its first one). One round
#: trip where there were two.
_of_this_message = and_(
    _deliveries.c.inbound_message_id == bindparam("p_message_id"), _deliveries.c.recipient == bindparam("p_address")
)
_claimed = _deliveries.alias("claimed")
_RESOLVE_FOR_MESSAGE = (
    select(
        *_RESOLVE.selected_columns,
        _claimed.c.id.label("claimed_id"),
        _claimed.c.outcome.label("claimed_outcome"),
        _claimed.c.attempts.label("claimed_attempts"),
        _claimed.c.updated_at.label("claimed_updated_at"),
        select(_deliveries.c.outcome)
        .where(_of_this_message, _deliveries.c.destination_key == 0)
        .scalar_subquery()
        .label("message_outcome"),
        exists().where(_of_this_message).label("seen"),
    )
    .select_from(
        _ALIAS_DESTINATIONS_OWNER.outerjoin(
            _claimed,
            and_(
                _claimed.c.inbound_message_id == bindparam("p_message_id"),
                _claimed.c.recipient == _aliases.c.address,
                _claimed.c.destination_key == _destinations.c.id,
            ),
        )
    )
    .where(_aliases.c.address == bindparam("p_address"))
    .order_by(_destinations.c.id)
)

#: The owner of an alias (the user windows of the limits), for :meth:`SqlDirectory.claim`.
_OWNER = select(_aliases.c.user_id).where(_aliases.c.id == bindparam("p_alias_id"))

#: The rows of this (message, alias): the message is counted with its first one, and a row found
#: is taken over rather than inserted.
_OF_MESSAGE = select(
    _deliveries.c.id,
    _deliveries.c.destination_key,
    _deliveries.c.outcome,
    _deliveries.c.attempts,
    _deliveries.c.updated_at,
).where(
    _deliveries.c.inbound_message_id == bindparam("p_message_id"),
    _deliveries.c.recipient == bindparam("p_recipient"),
)

_INSERT = insert(_deliveries)

#: One more message for the alias, atomically within its message limit (rowcount 0: limit reached).
_COUNT_MESSAGE = (
    update(_aliases)
    .where(
        _aliases.c.id == bindparam("p_alias_id"),
        or_(_aliases.c.max_messages.is_(None), _aliases.c.message_count < _aliases.c.max_messages),
    )
    .values(message_count=_aliases.c.message_count + 1, last_used_at=bindparam("p_now"))
)

#: One forwarded message for each of a two-way message's contacts (``p_contact_ids``), counted by
#: its first claim, after the alias row (:meth:`SqlDirectory._claim_in`).
_COUNT_CONTACTS = (
    update(_contacts)
    .where(_contacts.c.id.in_(bindparam("p_contact_ids", expanding=True)))
    .values(forwarded_count=_contacts.c.forwarded_count + 1, last_seen_at=bindparam("p_now"))
)
#: PostgreSQL: :data:`_COUNT_MESSAGE` and :data:`_COUNT_CONTACTS` in one statement (a data-modifying
#: WITH runs whether or not the statement reads it); its row count is the alias's.
_COUNT_MESSAGE_AND_CONTACTS = _COUNT_MESSAGE.add_cte(_COUNT_CONTACTS.returning(_contacts.c.id).cte("contacts_counted"))

_COUNT_BLOCKED = (
    update(_aliases)
    .where(_aliases.c.id == bindparam("p_alias_id"))
    .values(blocked_count=_aliases.c.blocked_count + bindparam("p_count"))
)

#: One blocked message for each of a refused message's known senders (``p_contact_ids``), counted
#: with the message's record, after the alias row (:meth:`SqlDirectory._record_in`).
_COUNT_CONTACTS_BLOCKED = (
    update(_contacts)
    .where(_contacts.c.id.in_(bindparam("p_contact_ids", expanding=True)))
    .values(blocked_count=_contacts.c.blocked_count + 1, last_seen_at=bindparam("p_now"))
)

_COUNT_FORWARDED = (
    update(_aliases)
    .where(_aliases.c.id == bindparam("p_alias_id"))
    .values(forwarded_count=_aliases.c.forwarded_count + 1)
)

#: Take a row over, only if nobody changed it since it was read.
_TAKE_OVER = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("p_id"),
        _deliveries.c.outcome == bindparam("p_outcome"),
        _deliveries.c.updated_at == bindparam("p_updated_at"),
    )
    .values(outcome=PENDING, attempts=_deliveries.c.attempts + 1, updated_at=bindparam("p_now"))
)

#: The row to finish, its alias, its state (only a pending claim is finished), and how many rows of
#: this (message, alias) were forwarded already.
_TO_FINISH = select(
    _deliveries.c.id,
    _deliveries.c.alias_id,
    _deliveries.c.outcome,
    _deliveries.c.destination_key,
    select(func.count())
    .select_from(_siblings)
    .where(
        _siblings.c.inbound_message_id == _deliveries.c.inbound_message_id,
        _siblings.c.recipient == _deliveries.c.recipient,
        _siblings.c.outcome == Outcome.FORWARDED.value,
    )
    .scalar_subquery()
    .label("forwarded_before"),
).where(_KEY)

_FINISHED_VALUES: dict[str, Any] = {
    "outcome": bindparam("p_outcome"),
    "reason": bindparam("p_reason"),
    "bytes_out": bindparam("p_bytes_out"),
    "provider_message_id": bindparam("p_provider_message_id"),
    "updated_at": bindparam("p_now"),
}

#: A claim is finished only while it is pending: a settle that comes after its claim was taken over
#: (it stalled past the claim timeout) and settled by the other worker changes nothing. A
#: message-level row (destination key 0) is never claimed; its recorded outcome may be finished
#: (forwarder/flows/forward.py: a bounce sent, or not).
_FINISHABLE = or_(_deliveries.c.outcome == PENDING, _deliveries.c.destination_key == 0)
_FINISH = update(_deliveries).where(_deliveries.c.id == bindparam("p_id"), _FINISHABLE).values(_FINISHED_VALUES)

#: :data:`_FINISH` by the row's key, without reading its id first.
_FINISH_KEY = update(_deliveries).where(_KEY, _FINISHABLE).values(_FINISHED_VALUES)

#: No other copy of this (message, alias) was forwarded before: the message counts one forward.
_NONE_FORWARDED = ~exists().where(
    _siblings.c.inbound_message_id == bindparam("p_message_id"),
    _siblings.c.recipient == bindparam("p_recipient"),
    _siblings.c.destination_key != bindparam("p_destination_key"),
    _siblings.c.outcome == Outcome.FORWARDED.value,
)

#: SQLite, after :data:`_FINISH_KEY` changed a row: its alias counts the forward unless another
#: copy of the message was forwarded before.
_COUNT_FIRST_FORWARD = _COUNT_FORWARDED.where(_NONE_FORWARDED)

#: :data:`_FINISH_KEY` and the forward counted on the alias in one statement, where the database
#: can write two tables at once; the alias counts only if the claim was still pending (this
#: settle's) and no other copy of the message was forwarded before.
#:
#: PostgreSQL: a data-modifying WITH finishes the claim, and the alias row is updated only if it
#: returned the row, so the claim's row is locked before the alias row. A settle that counts first
#: (:meth:`SqlDirectory._finish_in`) locks them the other way round; PostgreSQL breaks such a
#: deadlock (two settles of one copy, after a takeover) and the settle runs again. There is none
#: with a claim: the foreign key check of a delivery row inserted takes a KEY SHARE lock on the
#: alias row, which an update of its counters does not wait for.
_finished = _FINISH_KEY.returning(_deliveries.c.id).cte("finished")
_FINISH_COUNTING_PG = (
    update(_aliases)
    .where(_aliases.c.id == bindparam("p_alias_id"), exists(select(_finished.c.id)), _NONE_FORWARDED)
    .values(forwarded_count=_aliases.c.forwarded_count + 1)
    .add_cte(_finished)
)
#: MariaDB: a multiple-table UPDATE. Its optimizer reads (and locks) the delivery row first unless
#: told otherwise; STRAIGHT_JOIN makes it lock the alias row first, the order every other
#: transaction writing both keeps (the package docstring). Both rows are read locked, so the
#: conditions see the committed state; the alias's count adds 0 when another copy was forwarded.
_FINISH_COUNTING_MYSQL = text(
    "UPDATE aliases STRAIGHT_JOIN deliveries ON deliveries.alias_id = aliases.id "
    "SET aliases.forwarded_count = aliases.forwarded_count + (NOT EXISTS ("
    "SELECT 1 FROM deliveries AS sibling WHERE sibling.inbound_message_id = :p_message_id "
    "AND sibling.recipient = :p_recipient AND sibling.destination_key <> :p_destination_key "
    f"AND sibling.outcome = '{Outcome.FORWARDED.value}')), "
    "deliveries.outcome = :p_outcome, deliveries.reason = :p_reason, deliveries.bytes_out = :p_bytes_out, "
    "deliveries.provider_message_id = :p_provider_message_id, deliveries.updated_at = :p_now "
    "WHERE aliases.id = :p_alias_id AND deliveries.inbound_message_id = :p_message_id "
    "AND deliveries.recipient = :p_recipient AND deliveries.destination_key = :p_destination_key "
    f"AND deliveries.outcome = '{PENDING}'"
).bindparams(bindparam("p_now", type_=_deliveries.c.updated_at.type))


@functools.cache
def finish_counting_linking_pg() -> Any:
    """PostgreSQL: :data:`_FINISH_COUNTING_PG` and, in the same statement, the message_links rows of
    a two-way message (:func:`_insert_new_links`: those there already kept), one array parameter per
    column (:func:`link_params`), so the settle is one statement, run on an autocommit connection."""
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    rows = (
        func.unnest(*(bindparam(f"p_link_{name}", type_=ARRAY(_links.c[name].type)) for name in _LINK_COLUMNS))
        .table_valued(*_LINK_COLUMNS)
        .render_derived(name="link")
    )
    linked = (
        pg_insert(_links)
        .from_select(list(_LINK_COLUMNS), select(*(rows.c[name] for name in _LINK_COLUMNS)))
        .on_conflict_do_nothing(index_elements=[_links.c.alias_id, _links.c.seen_digest])
        .cte("linked")
    )
    return _FINISH_COUNTING_PG.add_cte(linked)


_LINK_COLUMNS = (
    "alias_id",
    "contact_id",
    "seen_digest",
    "seen_sealed",
    "original_sealed",
    "kind",
    "created_at",
    "expires_at",
)


def link_params(links: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The parameters of :func:`finish_counting_linking_pg`: each column's values, in row order."""
    return {f"p_link_{name}": [link[name] for link in links] for name in _LINK_COLUMNS}


_FINISH_COUNTING: dict[str, Any] = {
    "postgresql": _FINISH_COUNTING_PG,
    "mysql": _FINISH_COUNTING_MYSQL,
    "mariadb": _FINISH_COUNTING_MYSQL,
}

#: A claim left unsent taken back: a new row goes, a row taken over is retry again.
_WITHDRAW = delete(_deliveries).where(_KEY, _deliveries.c.outcome == PENDING)
_GIVE_BACK = (
    update(_deliveries)
    .where(_KEY, _deliveries.c.outcome == PENDING)
    .values(outcome=RETRY, attempts=_deliveries.c.attempts - 1, updated_at=bindparam("p_now"))
)

_RELEASE = (
    update(_deliveries)
    .where(_KEY, _deliveries.c.outcome == PENDING)
    .values(outcome=RETRY, reason=bindparam("p_reason"), updated_at=bindparam("p_now"))
)


def _seen(rows: Sequence[Any]) -> _Seen:
    """The message's rows from :data:`_RESOLVE_FOR_MESSAGE`'s result."""
    found = {
        row.destination_id: _Existing(row.claimed_id, row.claimed_outcome, row.claimed_attempts, row.claimed_updated_at)
        for row in rows
        if row.claimed_id is not None
    }
    if rows and rows[0].message_outcome is not None:
        found[0] = _Existing(0, rows[0].message_outcome, 1, datetime.min)
    return _Seen(found, bool(rows) and bool(rows[0].seen))


def _insert_new_links(connection: Connection, links: Sequence[Mapping[str, Any]]) -> None:
    """Insert the message links not there yet, in one statement (a retried send, or a racing
    delivery of the same message, links again: the first link stands, and the outcomes recorded
    beside it are not rolled back by a duplicate)."""
    connection.execute(_link_once(connection.dialect.name), [dict(link) for link in links])


@functools.lru_cache(maxsize=4)
def _link_once(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL, SQLite) or ``... ON DUPLICATE KEY UPDATE``
    a no-op (MySQL, MariaDB) on message_links' unique (alias_id, seen_digest); built once."""
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(_links).on_duplicate_key_update(seen_digest=_links.c.seen_digest)
    insert_: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as insert_
    else:
        from sqlalchemy.dialects.sqlite import insert as insert_
    return insert_(_links).on_conflict_do_nothing(index_elements=[_links.c.alias_id, _links.c.seen_digest])


def _key_params(key: DeliveryKey) -> dict[str, Any]:
    return {
        "p_message_id": key.message_id,
        "p_recipient": normalize_email(key.recipient),
        "p_destination_key": key.destination_id,
    }


def _reason(reason: str) -> str:
    return clip(reason[:REASON_MAX_LENGTH], REASON_MAX_LENGTH) or ""


def _finished_params(done: Finished, now: datetime) -> dict[str, Any]:
    return {
        "p_outcome": done.outcome.value,
        "p_reason": _reason(done.reason),
        "p_bytes_out": done.bytes_out,
        "p_provider_message_id": done.provider_message_id,
        "p_now": now,
    }
