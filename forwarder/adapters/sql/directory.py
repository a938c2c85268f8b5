"""The SQL side of forwarding: resolve aliases, claim deliveries, record outcomes.

One message costs each recipient (alias) these round trips (forwarder/flows/forward.py):

1. :meth:`SqlDirectory.begin`, one transaction: resolve the alias and its verified destinations,
   let the caller decide (the core's pure ``forward()``), then either record the message-level
   outcome (a drop) or claim every unpaused destination, count the message once (``max_messages``,
   the rate-limit windows, and a two-way message's contacts) and record the paused destinations
   as ``dropped-paused``;
2. the caller sends each claimed copy (no transaction);
3. :meth:`SqlDirectory.settle`, one transaction: record what every send did, and free for a retry
   the claim whose send failed for now.

A drop is step 1 alone. Rarely, step 1 takes more than one transaction: a claim that lost a race
with another worker's for the same copy (or a deadlock's victim) starts over and finds that claim;
a message over a limit is rolled back and recorded as dropped; a catch-all alias is created first.

The statements of a forwarded message (one destination, the default limits; bench/statements.py
prints them, tests/forwarder/adapters/sql/test_statements_per_message.py holds them) are five on
PostgreSQL and MariaDB, six on SQLite, the same on the first message of a rate-limit window as on
the next: step 1 reads the alias, its destinations and the message's rows in one query, counts the
message on the alias row, inserts the claim and counts the message in every window with one upsert
(limit_windows.py); step 3 updates the claim by its key and counts the forward on the alias row, in
one statement where the database writes two tables at once (SQLite: two). Each step is one transaction on one
pooled connection, and the first statement of each is run again on a new connection if the pooled
one turns out dead (the pool pings only connections that sat idle, models/engine.py).

Idempotency lives here (warehouse's "check the event id before acting"). Before a message is sent
to a destination, a delivery row ``(inbound message id, alias address, destination)`` is inserted
with the state ``pending`` and committed; the unique constraint on those three columns means only
one worker can hold it. Then:

- the send succeeds: the row becomes ``forwarded`` with the provider's message id;
- the send fails for good: the row becomes ``failed-rejected``;
- the send fails for now: the row becomes ``retry`` and the error propagates, so the event is
  retried; the retry takes the row over and sends.

A redelivered event finds a finished row and sends nothing. It finds a ``pending`` row only while
another worker is sending (it then raises :class:`DeliveryInProgress` and is retried later), or
when a worker died between claiming and finishing: after ``claim_timeout`` the row is taken over and
the message is sent again. A crash after SES accepted a message but before the row was updated
cannot be told apart from a failed send; mail is never lost, so such a message may be sent twice
(``attempts`` > 1 on a forwarded row counts those). A settle finishes only a row still ``pending``:
the worker whose claim was taken over, and settled by the other one, changes and counts nothing.

Message-level outcomes (unknown alias, spam, ...) are rows with ``destination_key`` 0.

Lock order (MariaDB): a transaction that writes the alias row (the message count, the blocked and
forwarded counts) does so before it inserts or updates delivery rows. An insert's foreign key check
takes a shared lock on the alias row; two transactions each holding one, then both updating the
row, deadlock. The settle that writes both in one multiple-table UPDATE names the alias first with
STRAIGHT_JOIN (left to itself, the optimizer locks the delivery row first). PostgreSQL's foreign
key check takes a lock an update of the alias's counters does not wait for.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
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
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forwarder.adapters.sql import limit_windows
from forwarder.adapters.sql.connections import again_if_dead, database_errors
from forwarder.adapters.sql.user_domains import UserDomains
from forwarder.core import AliasState, Decision, Outcome
from forwarder.core.decide import expiry
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.mail_limits import MailLimits, Window
from models import Alias, Contact, Delivery, Destination, MessageLink, User, alias_destinations
from models.deliveries import RAW_KEY_MAX_LENGTH, REASON_MAX_LENGTH, SUBJECT_MAX_LENGTH, _clip
from models.users import EMAIL_MAX_LENGTH

PENDING = "pending"
RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Target:
    """A verified destination of an alias; a paused one (SES feedback, forwarder/adapters/sql/feedback_store.py)
    gets nothing until its owner resumes it."""

    destination_id: int
    email: str
    paused_at: datetime | None = None
    pause_reason: str = ""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def pause_note(self) -> str:
        """The reason a ``dropped-paused`` row gives (it may name the address: its owner reads it)."""
        when = self.paused_at.strftime("%Y-%m-%d %H:%M UTC") if self.paused_at else "earlier"
        why = f": {self.pause_reason}" if self.pause_reason else ""
        return f"destination paused on {when}{why}"


@dataclass(frozen=True, slots=True)
class ResolvedAlias:
    alias_id: int
    state: AliasState
    targets: tuple[Target, ...]
    #: What mail gets once the alias has expired: "drop" or "reject" (forwarder/flows/expired_reject.py).
    expired_action: str = "drop"
    #: The alias's name on mail it sends (replies of a two-way alias); "" for none.
    display_name: str = ""
    user_id: int | None = None
    #: How forwarded mail names its sender (the owner's choice; forwarder/core/twoway.py).
    display_format: str = "name-and-address"


class AddressStatus(Enum):
    """What the SMTP listener's RCPT check learns of an address (:meth:`SqlDirectory.address_status`)."""

    UNKNOWN = "unknown"
    ACCEPTS = "accepts"
    #: accepts now, but may expire (a count, a date, idleness) with expired_action reject: the RCPT
    #: check must not remember it, or it would answer 250 for mail the alias no longer takes
    ACCEPTS_UNCACHED = "accepts-uncached"
    #: expired, and its owner chose reject: refused at RCPT
    REJECTS_EXPIRED = "rejects-expired"


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    message_id: str
    recipient: str
    destination_id: int = 0


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What the delivery log keeps of a message besides its outcome."""

    mail_from: str = ""
    subject: str = ""
    bytes_in: int = 0
    received_at: datetime | None = None
    #: The raw message's key in the mail store, when it is kept there (see Inbound.raw_key).
    raw_key: str | None = None


class ClaimState(Enum):
    NEW = "new"
    RESUMED = "resumed"
    DONE = "done"
    BUSY = "busy"
    LIMIT = "limit"
    #: over an hourly or daily limit (forwarder/flows/mail_limits.py); nothing was claimed
    RATE_LIMITED = "rate-limited"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    outcome: str = ""
    attempts: int = 1
    #: RATE_LIMITED: the limit reached (None: a redelivery of a message dropped for it before)
    window: Window | None = None

    @property
    def dropped(self) -> Decision:
        """LIMIT or RATE_LIMITED: the message-level outcome recorded in place of the claims."""
        if self.state is ClaimState.LIMIT:
            return Decision(Outcome.DROPPED_EXPIRED_COUNT, "the alias reached its message limit")
        reason = self.window.reason() if self.window else "an hourly or daily message limit was reached"
        return Decision(Outcome.DROPPED_RATE_LIMITED, reason)


class Planned(Protocol):
    """What the caller of :meth:`SqlDirectory.begin` decided for a recipient: FORWARDED claims the
    alias's destinations, anything else is recorded as the message's outcome."""

    @property
    def decision(self) -> Decision: ...


P = TypeVar("P", bound=Planned)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Opening(Generic[P]):
    """What :meth:`SqlDirectory.begin` did for one recipient."""

    resolved: ResolvedAlias | None
    #: The caller's decision, made on ``resolved``.
    plan: P
    #: The message-level outcome recorded: the plan's, or a limit reached in place of the claims.
    #: None: the destinations were claimed.
    recorded: Decision | None = None
    #: Whether ``recorded`` is new (False: this message was recorded before).
    fresh: bool = True
    #: The unpaused destinations in order, each with its claim (NEW, RESUMED or DONE); a BUSY one
    #: ends the list, the destinations after it are not claimed.
    claims: tuple[tuple[Target, Claim], ...] = ()
    #: The paused destinations, recorded as ``dropped-paused``, each with whether its row is new.
    paused: tuple[tuple[Target, bool], ...] = ()
    #: The claims are this message's first (no row of it existed): none of its copies was forwarded
    #: before (:attr:`Finished.first`).
    first: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """What the send of a claimed copy did (:meth:`SqlDirectory.settle`)."""

    key: DeliveryKey
    outcome: Outcome
    reason: str
    bytes_out: int | None = None
    provider_message_id: str | None = None
    #: The claim's alias, given with ``first`` (:attr:`Opening.first`): nothing of this message was
    #: forwarded before, so :meth:`SqlDirectory.settle` counts a forward without reading the row.
    alias_id: int | None = None
    first: bool = False


@dataclass(frozen=True, slots=True)
class _Claimed:
    claims: tuple[tuple[Target, Claim], ...]
    paused: tuple[tuple[Target, bool], ...]
    first: bool


@dataclass(frozen=True, slots=True)
class _Again:
    """A claim rolled back, to start over: a race for a row was lost (the next attempt finds the
    other worker's row), or the database chose this transaction as a deadlock's victim."""


@dataclass(frozen=True, slots=True)
class _Existing:
    """A delivery row of the message being claimed (what :meth:`SqlDirectory._take_over` needs)."""

    id: int
    outcome: str
    attempts: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class _Seen:
    """The rows of one (message, alias) found before its claim: by destination key (0: the
    message-level outcome), and whether there was any at all (a row of a destination the alias no
    longer has counts: the message was counted when it was claimed)."""

    rows: Mapping[int, _Existing]
    any: bool


#: Attempts of a claim: a race for a row is lost, a deadlock is broken, a catch-all alias is made.
_ATTEMPTS = 5


def alias_state(alias: Any, destination_count: int | None = None) -> AliasState:
    """The plain values the core decides on, read from an alias.

    ``alias`` is an ORM :class:`~models.Alias` or any row with the same column names (what
    :meth:`SqlDirectory.resolve` selects); a row needs ``destination_count``.
    """
    if destination_count is None:
        destination_count = sum(1 for d in alias.destinations if d.verified_at)
    return AliasState(
        address=alias.address,
        enabled=alias.enabled,
        deleted=alias.deleted_at is not None,
        expires_at=alias.expires_at,
        idle_days=alias.idle_days,
        max_messages=alias.max_messages,
        message_count=alias.message_count,
        created_at=alias.created_at,
        last_used_at=alias.last_used_at,
        destination_count=destination_count,
    )


# ---------------------------------------------------------------- statements
#
# The hot path runs SQLAlchemy Core statements built once, here: the ORM (unit of work, identity
# map, relationship loading) cost several times more per message. Values come in as bound
# parameters named ``p_...``: SQLAlchemy reserves a table's column names for SET and VALUES.

# mypy sees a mapped class's __table__ as a FromClause; it is a Table
_aliases = cast(Table, Alias.__table__)
_deliveries = cast(Table, Delivery.__table__)
_destinations = cast(Table, Destination.__table__)
_users = cast(Table, User.__table__)
_links = cast(Table, MessageLink.__table__)
_contacts = cast(Table, Contact.__table__)
_siblings = _deliveries.alias("sibling")

#: The delivery row of a key.
_KEY = and_(
    _deliveries.c.inbound_message_id == bindparam("p_message_id"),
    _deliveries.c.recipient == bindparam("p_recipient"),
    _deliveries.c.destination_key == bindparam("p_destination_key"),
)

_EXISTS = select(_aliases.c.id).where(_aliases.c.address == bindparam("p_address"))
#: What the RCPT check needs to tell an expired reject-mode alias (no destinations: it never sends).
_RCPT_STATUS = select(
    _aliases.c.address,
    _aliases.c.enabled,
    _aliases.c.deleted_at,
    _aliases.c.expires_at,
    _aliases.c.idle_days,
    _aliases.c.max_messages,
    _aliases.c.message_count,
    _aliases.c.created_at,
    _aliases.c.last_used_at,
    _aliases.c.expired_action,
).where(_aliases.c.address == bindparam("p_address"))

#: The alias and its verified destinations in one query: one row per verified destination, or
#: one row with NULL destination columns when there is none.
_RESOLVE = (
    select(
        _aliases.c.id,
        _aliases.c.address,
        _aliases.c.enabled,
        _aliases.c.deleted_at,
        _aliases.c.expires_at,
        _aliases.c.idle_days,
        _aliases.c.max_messages,
        _aliases.c.message_count,
        _aliases.c.created_at,
        _aliases.c.last_used_at,
        _aliases.c.expired_action,
        _aliases.c.display_name,
        _aliases.c.user_id,
        _users.c.display_format,
        _destinations.c.id.label("destination_id"),
        _destinations.c.email.label("destination_email"),
        _destinations.c.paused_at,
        _destinations.c.pause_reason,
    )
    .select_from(
        _aliases.outerjoin(alias_destinations, alias_destinations.c.alias_id == _aliases.c.id)
        .outerjoin(
            _destinations,
            and_(_destinations.c.id == alias_destinations.c.destination_id, _destinations.c.verified_at.is_not(None)),
        )
        .outerjoin(_users, _users.c.id == _aliases.c.user_id)
    )
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
        _aliases.outerjoin(alias_destinations, alias_destinations.c.alias_id == _aliases.c.id)
        .outerjoin(
            _destinations,
            and_(_destinations.c.id == alias_destinations.c.destination_id, _destinations.c.verified_at.is_not(None)),
        )
        .outerjoin(_users, _users.c.id == _aliases.c.user_id)
        .outerjoin(
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
#: transaction writing both keeps (the module docstring). Both rows are read locked, so the
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


#: What a deadlock looks like from the driver: PostgreSQL's SQLSTATE, MariaDB's and MySQL's error number.
_PG_DEADLOCK = "40P01"
_MYSQL_DEADLOCK = 1213


def _deadlock(exc: DBAPIError) -> bool:
    """Whether the database broke a deadlock by rolling this transaction back (it may start over)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_DEADLOCK:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] == _MYSQL_DEADLOCK


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
        "p_recipient": Alias.normalize_address(key.recipient),
        "p_destination_key": key.destination_id,
    }


def _reason(reason: str) -> str:
    return _clip(reason[:REASON_MAX_LENGTH], REASON_MAX_LENGTH) or ""


def _finished_params(done: Finished, now: datetime) -> dict[str, Any]:
    return {
        "p_outcome": done.outcome.value,
        "p_reason": _reason(done.reason),
        "p_bytes_out": done.bytes_out,
        "p_provider_message_id": done.provider_message_id,
        "p_now": now,
    }


class SqlDirectory:
    """The directory on SQL: every operation is one short transaction on a pooled connection.

    Built from a session factory bound to an engine (what the callers have), or from the engine.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session] | Engine,
        claim_timeout: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] | None = None,
        limits: MailLimits | None = None,
    ) -> None:
        from models import utcnow

        if isinstance(session_factory, Engine):
            engine = session_factory
        else:
            bound = session_factory.kw.get("bind")
            if not isinstance(bound, Engine):
                raise TypeError("SqlDirectory needs a session factory bound to an engine (models.make_session_factory)")
            engine = bound
        self._sessions = session_factory
        self._engine: Engine = engine
        self._claim_timeout = claim_timeout
        self._now = clock or utcnow
        #: Hourly and daily limits, counted at a message's first claim; none unless given.
        self.limits = limits or MailLimits()
        # SQLite lets one writer in at a time and makes the others sleep in its busy handler (1 ms,
        # then 2, 5, 10...); threads of this process queue on a lock instead and go in as soon as
        # the writer before them commits. Other processes still meet the busy timeout. begin()
        # takes it on a connection it opened (and read on) before.
        self._write_lock: AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        #: Users' own domains: accepted domains, suspension, the catch-all (forwarder/adapters/sql/user_domains.py).
        self.user_domains = UserDomains(self._connection)

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[Connection]:
        """A pooled connection; leaving it without ``commit()`` rolls back. ``write``: the
        transaction writes (on SQLite, one such transaction of this process at a time)."""
        with database_errors(), self._write_lock if write else nullcontext(), self._engine.connect() as connection:
            yield connection

    @staticmethod
    def _again_if_dead(connection: Connection, work: Callable[[Connection], T]) -> T:
        """:func:`~forwarder.adapters.sql.connections.again_if_dead`: the forwarder's transactions
        run again on a new connection if the pooled one turns out dead."""
        return again_if_dead(connection, work)

    @classmethod
    def _again_if_lost(cls, connection: Connection, work: Callable[[Connection], T]) -> T:
        """:meth:`_again_if_dead`, and also run again (up to ``_ATTEMPTS`` times) when the database
        broke a deadlock by rolling this transaction back: racing deliveries of one message can
        make its settle wait on a claim that waits on it. The transaction was rolled back whole."""
        for _ in range(_ATTEMPTS - 1):
            try:
                return cls._again_if_dead(connection, work)
            except DBAPIError as exc:
                if not _deadlock(exc):
                    raise
            connection.rollback()
        return cls._again_if_dead(connection, work)

    @classmethod
    def _first(cls, connection: Connection, statement: Any, params: Mapping[str, Any]) -> Any:
        """Run the first statement of a transaction (:meth:`_again_if_dead`)."""
        return cls._again_if_dead(connection, lambda again: again.execute(statement, params))

    def exists(self, address: str) -> bool:
        """Whether ``address`` was ever issued, or its domain's catch-all would create it (the SMTP
        listener's RCPT check; one cheap query)."""
        with self._connection() as connection:
            found = connection.execute(_EXISTS, {"p_address": Alias.normalize_address(address)}).first()
        return found is not None or self.user_domains.catch_all_accepts(address)

    def address_status(self, address: str) -> AddressStatus:
        """:meth:`exists`, and whether an existing alias has expired with ``expired_action`` reject
        (the SMTP listener answers it 550 5.1.1) or may do so at any time (its answer is not to be
        cached). One cheap query."""
        with self._connection() as connection:
            row = connection.execute(_RCPT_STATUS, {"p_address": Alias.normalize_address(address)}).first()
        if row is None:
            return AddressStatus.ACCEPTS if self.user_domains.catch_all_accepts(address) else AddressStatus.UNKNOWN
        if row.expired_action != "reject":
            return AddressStatus.ACCEPTS
        if expiry(alias_state(row, 1), self._now()) is not None:
            return AddressStatus.REJECTS_EXPIRED
        if row.max_messages is None and row.expires_at is None and row.idle_days is None:
            return AddressStatus.ACCEPTS
        return AddressStatus.ACCEPTS_UNCACHED

    def accepts_domain(self, domain: str) -> bool:
        """Whether mail for ``domain``, not one of the service's own, is accepted (a user's domain)."""
        return self.user_domains.accepts(domain)

    def user_domain_names(self) -> tuple[str, ...]:
        return self.user_domains.names()

    def resolve(self, address: str) -> ResolvedAlias | None:
        """The alias at ``address`` (made from its domain's catch-all if need be), or None."""
        with self._connection() as connection:
            rows = connection.execute(_RESOLVE, {"p_address": Alias.normalize_address(address)}).all()
        if not rows and self.user_domains.catch_all(address, self._now()):
            with self._connection() as connection:
                rows = connection.execute(_RESOLVE, {"p_address": Alias.normalize_address(address)}).all()
        return self._resolved(rows)

    def _resolved(self, rows: Sequence[Any]) -> ResolvedAlias | None:
        if not rows:
            return None
        targets = tuple(
            Target(row.destination_id, row.destination_email, row.paused_at, row.pause_reason or "")
            for row in rows
            if row.destination_id is not None
        )
        return self.user_domains.hold(
            ResolvedAlias(
                rows[0].id,
                alias_state(rows[0], len(targets)),
                targets,
                rows[0].expired_action or "drop",
                rows[0].display_name or "",
                rows[0].user_id,
                rows[0].display_format or "name-and-address",
            )
        )

    def begin(
        self, message_id: str, recipient: str, meta: MessageMeta, decide: Callable[[ResolvedAlias | None], P]
    ) -> Opening[P]:
        """Resolve ``recipient``, decide, and claim or record, in one transaction (the module docstring).

        ``decide`` is pure and fast: it runs before the transaction writes, and again should an
        attempt start over and find the alias changed. The claims count the message once, against
        the alias's ``max_messages`` and in the windows of :attr:`limits`; over either, nothing is
        claimed and the message-level outcome is recorded instead (:attr:`Opening.recorded`).
        """
        address = Alias.normalize_address(recipient)
        planned: tuple[ResolvedAlias | None, P] | None = None
        catch_all = self.user_domains.catch_all_accepts(recipient)
        params = {"p_address": address, "p_message_id": message_id}
        for _ in range(_ATTEMPTS):
            opened: Opening[P] | _Again | None = None
            with self._connection() as connection:
                rows = self._first(connection, _RESOLVE_FOR_MESSAGE, params).all()
                if rows or not catch_all:
                    resolved = self._resolved(rows)
                    if planned is None or planned[0] != resolved:
                        planned = (resolved, decide(resolved))
                    # decided before the writes: on SQLite, the lock is held by writers alone
                    with self._write_lock:
                        opened = self._open(connection, message_id, address, meta, _seen(rows), *planned)
            if isinstance(opened, Opening):
                return opened
            if opened is None:  # an unknown address on a catch-all domain: made now, or never
                catch_all = False
                self.user_domains.catch_all(recipient, self._now())
        raise DatabaseUnavailable("the message could not be claimed (a race, a deadlock); retry")

    def _open(
        self,
        connection: Connection,
        message_id: str,
        address: str,
        meta: MessageMeta,
        seen: _Seen,
        resolved: ResolvedAlias | None,
        plan: P,
    ) -> Opening[P] | _Again:
        """The writing half of :meth:`begin`, on its connection."""
        key = DeliveryKey(message_id, address)
        decision = plan.decision
        if resolved is None or not decision.forwards:
            alias_id = resolved.alias_id if resolved is not None else None
            fresh = self._record_in(connection, key, alias_id, meta, decision.outcome, decision.reason)
            return Opening(resolved, plan, decision, fresh)
        contacts: Sequence[int] = getattr(plan, "contacts", ())
        claimed = self._claim_in(
            connection, key, resolved.alias_id, resolved.user_id, meta, resolved.targets, self._now(), seen, contacts
        )
        if isinstance(claimed, _Again):
            return claimed
        if isinstance(claimed, Claim):  # over a limit: rolled back, or nothing written
            dropped = claimed.dropped
            fresh = self._record_in(connection, key, resolved.alias_id, meta, dropped.outcome, dropped.reason)
            return Opening(resolved, plan, dropped, fresh)
        return Opening(resolved, plan, claims=claimed.claims, paused=claimed.paused, first=claimed.first)

    def _values(
        self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: str, reason: str
    ) -> dict[str, Any]:
        """A new delivery row, its free text clipped as :class:`~models.Delivery` clips it."""
        now = self._now()
        return {
            "inbound_message_id": key.message_id,
            "recipient": Alias.normalize_address(key.recipient),
            "alias_id": alias_id,
            "destination_id": key.destination_id or None,
            "destination_key": key.destination_id,
            "outcome": outcome,
            "reason": _reason(reason),
            "mail_from": _clip(meta.mail_from[:EMAIL_MAX_LENGTH] or None, EMAIL_MAX_LENGTH),
            "subject": _clip(meta.subject[:SUBJECT_MAX_LENGTH] or None, SUBJECT_MAX_LENGTH),
            "bytes_in": meta.bytes_in,
            "attempts": 1,
            "received_at": meta.received_at,
            "raw_key": meta.raw_key if meta.raw_key and len(meta.raw_key) <= RAW_KEY_MAX_LENGTH else None,
            "created_at": now,
            "updated_at": now,
        }

    def _record_in(
        self,
        connection: Connection,
        key: DeliveryKey,
        alias_id: int | None,
        meta: MessageMeta,
        outcome: Outcome,
        reason: str,
    ) -> bool:
        try:
            # the alias row first (the module docstring): the insert's foreign key check then needs no lock
            if alias_id is not None and outcome.blocked:
                connection.execute(_COUNT_BLOCKED, {"p_alias_id": alias_id, "p_count": 1})
            connection.execute(_INSERT, self._values(key, alias_id, meta, outcome.value, reason))
            connection.commit()
        except IntegrityError:
            connection.rollback()
            return False
        return True

    def record(self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: Outcome, reason: str) -> bool:
        """Record a message-level outcome once; False when this message was recorded before."""
        with self._connection(write=True) as connection:
            return self._record_in(connection, key, alias_id, meta, outcome, reason)

    def claim(self, key: DeliveryKey, alias_id: int, meta: MessageMeta) -> Claim:
        """Take the right to send ``key`` alone; see the module docstring for the states, and
        :meth:`begin` for the counting. Over a limit (LIMIT, RATE_LIMITED) nothing is claimed or
        counted, and the caller records the message-level outcome; a redelivery of a message
        dropped as rate-limited is RATE_LIMITED again, never sent.
        """
        for _ in range(_ATTEMPTS):
            with self._connection(write=True) as connection:
                found = self._first(
                    connection, _OF_MESSAGE, {"p_message_id": key.message_id, "p_recipient": key.recipient}
                ).all()
                seen = _Seen(
                    {
                        row.destination_key: _Existing(row.id, row.outcome, row.attempts, row.updated_at)
                        for row in found
                    },
                    bool(found),
                )
                user_id = (
                    connection.execute(_OWNER, {"p_alias_id": alias_id}).scalar() if self.limits.per_user else None
                )
                claimed = self._claim_in(
                    connection, key, alias_id, user_id, meta, (Target(key.destination_id, ""),), self._now(), seen
                )
            if isinstance(claimed, Claim):
                return claimed
            if isinstance(claimed, _Claimed):
                return claimed.claims[0][1]
        raise DatabaseUnavailable("the message could not be claimed (a race, a deadlock); retry")

    def _claim_in(
        self,
        connection: Connection,
        key: DeliveryKey,
        alias_id: int,
        user_id: int | None,
        meta: MessageMeta,
        targets: Sequence[Target],
        now: datetime,
        seen: _Seen,
        contacts: Sequence[int] = (),
    ) -> _Claimed | Claim | _Again:
        """Claim the unpaused ``targets`` and record the paused ones, committed (:class:`_Claimed`);
        or a limit reached, rolled back (:class:`Claim` LIMIT or RATE_LIMITED); or start over.
        ``seen``: the message's rows, read in this transaction. ``contacts``: a two-way message's
        contacts, counted with the message (its first claim) and so never again by a redelivery."""
        rows = seen.rows
        if 0 in rows and rows[0].outcome == Outcome.DROPPED_RATE_LIMITED.value:
            return Claim(ClaimState.RATE_LIMITED, rows[0].outcome)
        sending = [t for t in targets if not t.paused]
        paused = [t for t in targets if t.paused]
        first = not seen.any and bool(sending)  # the message's first claim counts it
        new_paused = [t for t in paused if t.destination_id not in rows]
        claims: list[tuple[Target, Claim]] = []
        try:
            # The alias row is updated before any delivery row is inserted (the module docstring). The
            # inserts still decide first: a worker that waited for another's claim of this message
            # starts over, finds that claim and takes it over (or finds it busy).
            counted = self._count_message(connection, alias_id, contacts, now) if first else 1
            if new_paused:
                connection.execute(_COUNT_BLOCKED, {"p_alias_id": alias_id, "p_count": len(new_paused)})
            for target in sending:
                copy = DeliveryKey(key.message_id, key.recipient, target.destination_id)
                row = rows.get(target.destination_id)
                if row is None:
                    connection.execute(_INSERT, self._values(copy, alias_id, meta, PENDING, ""))
                    claim = Claim(ClaimState.NEW)
                else:
                    claim = self._take_over(connection, row, now)
                claims.append((target, claim))
                if claim.state is ClaimState.BUSY:
                    break
            for target in new_paused:
                copy = DeliveryKey(key.message_id, key.recipient, target.destination_id)
                values = self._values(copy, alias_id, meta, Outcome.DROPPED_PAUSED.value, target.pause_note)
                connection.execute(_INSERT, values)
            if counted != 1:
                connection.rollback()
                return Claim(ClaimState.LIMIT)
            # the windows last: their rows stay locked the shortest time (limit_windows.py)
            full = limit_windows.count(connection, self.limits, alias_id, user_id, now) if first else None
        except IntegrityError:
            connection.rollback()
            return _Again()
        except DBAPIError as exc:
            if not _deadlock(exc):
                raise
            connection.rollback()
            return _Again()
        if full is not None:
            connection.rollback()
            return Claim(ClaimState.RATE_LIMITED, window=full)
        connection.commit()
        return _Claimed(tuple(claims), tuple((t, t in new_paused) for t in paused), first)

    @staticmethod
    def _count_message(connection: Connection, alias_id: int, contacts: Sequence[int], now: datetime) -> int:
        """Count the message on the alias row (1, or 0 at its message limit), then its contacts."""
        params = {"p_alias_id": alias_id, "p_now": now}
        if not contacts:
            return int(connection.execute(_COUNT_MESSAGE, params).rowcount)
        if connection.dialect.name == "postgresql":
            return int(
                connection.execute(_COUNT_MESSAGE_AND_CONTACTS, {**params, "p_contact_ids": list(contacts)}).rowcount
            )
        counted = int(connection.execute(_COUNT_MESSAGE, params).rowcount)
        connection.execute(_COUNT_CONTACTS, {"p_contact_ids": list(contacts), "p_now": now})
        return counted

    def prune_limit_windows(self, now: datetime | None = None) -> int:
        """Delete the rate-limit windows of days before today (UTC); how many. Run by the scheduled
        jobs (limit_windows.py), never per message."""
        with self._connection(write=True) as connection:
            removed = limit_windows.prune(connection, now or self._now())
            connection.commit()
        return removed

    def _take_over(self, connection: Connection, row: Any, now: datetime) -> Claim:
        """Claim a copy whose row exists (``row``, from :data:`_OF_MESSAGE`), if nobody holds it."""
        if row.outcome not in (PENDING, RETRY):
            return Claim(ClaimState.DONE, row.outcome, row.attempts)
        stale = row.outcome == PENDING and row.updated_at <= now - self._claim_timeout
        if row.outcome == PENDING and not stale:
            return Claim(ClaimState.BUSY, row.outcome, row.attempts)
        taken = connection.execute(
            _TAKE_OVER, {"p_id": row.id, "p_outcome": row.outcome, "p_updated_at": row.updated_at, "p_now": now}
        )
        if taken.rowcount != 1:
            return Claim(ClaimState.BUSY, PENDING, row.attempts)
        return Claim(ClaimState.RESUMED, PENDING, row.attempts + 1)

    def settle(
        self,
        finished: Sequence[Finished],
        retry: tuple[DeliveryKey, str] | None = None,
        unsent: Sequence[tuple[DeliveryKey, Claim]] = (),
        links: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record what the sends of one message did, in one transaction. ``retry``: a claimed copy
        whose send failed for now, and why, freed for a later attempt; ``unsent``: the claims left
        unsent after it, taken back as if never taken (a NEW row goes, a RESUMED one is retry again);
        ``links``: message_links rows of two-way aliases (``ContactBook.link_rows``), those not
        linked before."""
        if not finished and retry is None and not unsent and not links:
            return
        now = self._now()

        def record(connection: Connection) -> bool:
            if not self._finish_in(connection, finished, now):
                return False
            if links:
                _insert_new_links(connection, links)
            if retry is not None:
                key, reason = retry
                connection.execute(_RELEASE, {**_key_params(key), "p_reason": _reason(reason), "p_now": now})
            for key, claim in unsent:
                statement = _WITHDRAW if claim.state is ClaimState.NEW else _GIVE_BACK
                params = _key_params(key) if claim.state is ClaimState.NEW else {**_key_params(key), "p_now": now}
                connection.execute(statement, params)
            return True

        with self._connection(write=True) as connection:
            # the sends are done: a connection found dead now must not leave their claims pending
            for _ in range(2):
                if self._again_if_lost(connection, record):
                    connection.commit()
                    return
                connection.rollback()  # raced (:meth:`_finish_in`): read again
        raise DatabaseUnavailable("the outcomes could not be recorded (a race with another worker); retry")

    def _finish_in(self, connection: Connection, finished: Sequence[Finished], now: datetime) -> bool:
        """Record what the sends did; False when a claim read as pending was settled by another
        worker before this transaction changed it (it is rolled back and run again)."""
        if finished and all(done.first and done.alias_id is not None for done in finished):
            self._finish_first(connection, finished, now)
            return True
        read = [connection.execute(_TO_FINISH, _key_params(done.key)).one() for done in finished]
        # a claim no longer pending was taken over and settled by another worker: left as it is
        mine = [
            (done, row)
            for done, row in zip(finished, read, strict=True)
            if row.outcome == PENDING or row.destination_key == 0
        ]
        # the alias row first (the module docstring); a message counts once as forwarded
        counted: set[int] = set()
        for done, row in mine:
            if done.outcome is not Outcome.FORWARDED or row.alias_id is None or row.forwarded_before:
                continue
            if row.alias_id not in counted:
                connection.execute(_COUNT_FORWARDED, {"p_alias_id": row.alias_id})
                counted.add(row.alias_id)
        for done, row in mine:
            changed = connection.execute(_FINISH, {"p_id": row.id, **_finished_params(done, now)}).rowcount
            if changed != 1:  # settled by another worker since it was read
                return False
        return True

    def _finish_first(self, connection: Connection, finished: Sequence[Finished], now: datetime) -> None:
        """:meth:`_finish_in` for the copies of a message claimed first (:attr:`Finished.first`):
        each row is updated by its key, none read first, and only while its claim is pending (a late
        settle changes nothing); its alias counts one forward if a copy went and no other copy was
        forwarded before. Where the database can, a forwarded copy's update counts the forward in
        the same statement (:data:`_FINISH_COUNTING`)."""
        counting = _FINISH_COUNTING.get(connection.dialect.name)
        counted: set[int] = set()
        # the copies that count a forward first
        for done in sorted(finished, key=lambda done: done.outcome is not Outcome.FORWARDED):
            params = {**_key_params(done.key), **_finished_params(done, now)}
            forwarded = done.outcome is Outcome.FORWARDED and done.alias_id is not None
            if forwarded and counting is not None:
                connection.execute(counting, {**params, "p_alias_id": done.alias_id})
                continue
            changed = connection.execute(_FINISH_KEY, params).rowcount
            if forwarded and changed == 1 and done.alias_id not in counted:
                connection.execute(_COUNT_FIRST_FORWARD, {**params, "p_alias_id": done.alias_id})
                counted.add(cast(int, done.alias_id))

    def finish(
        self,
        key: DeliveryKey,
        outcome: Outcome,
        reason: str,
        bytes_out: int | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        """Record the outcome of one claimed row (:meth:`settle` for one)."""
        self.settle([Finished(key, outcome, reason, bytes_out, provider_message_id)])

    def release(self, key: DeliveryKey, reason: str) -> None:
        """Mark a claimed delivery for retry after a temporary failure."""
        self.settle([], (key, reason))
