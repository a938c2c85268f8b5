"""The SQL side of forwarding: resolve aliases, claim deliveries, record outcomes.

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
(``attempts`` > 1 on a forwarded row counts those).

Message-level outcomes (unknown alias, spam, ...) are rows with ``destination_key`` 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from forwarder.adapters.sql import limit_windows
from forwarder.adapters.sql.user_domains import UserDomains
from forwarder.core import AliasState, Outcome
from forwarder.core.decide import expiry
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.mail_limits import MailLimits, Window
from models import Alias, Delivery, Destination, alias_destinations
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


@dataclass(frozen=True, slots=True)
class ResolvedAlias:
    alias_id: int
    state: AliasState
    targets: tuple[Target, ...]
    #: What mail gets once the alias has expired: "drop" or "reject" (forwarder/flows/expired_reject.py).
    expired_action: str = "drop"


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
        _destinations.c.id.label("destination_id"),
        _destinations.c.email.label("destination_email"),
        _destinations.c.paused_at,
        _destinations.c.pause_reason,
    )
    .select_from(
        _aliases.outerjoin(alias_destinations, alias_destinations.c.alias_id == _aliases.c.id).outerjoin(
            _destinations,
            and_(_destinations.c.id == alias_destinations.c.destination_id, _destinations.c.verified_at.is_not(None)),
        )
    )
    .where(_aliases.c.address == bindparam("p_address"))
    .order_by(_destinations.c.id)
)

#: Whether this (message, alias) has a row yet: the message is counted with its first one. The
#: message-level row (destination_key 0) comes first, if there is one.
_ANY_OF_MESSAGE = (
    select(_deliveries.c.destination_key, _deliveries.c.outcome)
    .where(
        _deliveries.c.inbound_message_id == bindparam("p_message_id"),
        _deliveries.c.recipient == bindparam("p_recipient"),
    )
    .order_by(_deliveries.c.destination_key)
    .limit(1)
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

_COUNT_BLOCKED = (
    update(_aliases).where(_aliases.c.id == bindparam("p_alias_id")).values(blocked_count=_aliases.c.blocked_count + 1)
)

_COUNT_FORWARDED = (
    update(_aliases)
    .where(_aliases.c.id == bindparam("p_alias_id"))
    .values(forwarded_count=_aliases.c.forwarded_count + 1)
)

_CLAIMED = select(_deliveries.c.id, _deliveries.c.outcome, _deliveries.c.attempts, _deliveries.c.updated_at).where(_KEY)

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

#: The row to finish, its alias, and how many rows of this (message, alias) were forwarded already.
_TO_FINISH = select(
    _deliveries.c.id,
    _deliveries.c.alias_id,
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

_FINISH = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("p_id"))
    .values(
        outcome=bindparam("p_outcome"),
        reason=bindparam("p_reason"),
        bytes_out=bindparam("p_bytes_out"),
        provider_message_id=bindparam("p_provider_message_id"),
        updated_at=bindparam("p_now"),
    )
)

_RELEASE = (
    update(_deliveries)
    .where(_KEY, _deliveries.c.outcome == PENDING)
    .values(outcome=RETRY, reason=bindparam("p_reason"), updated_at=bindparam("p_now"))
)


@contextmanager
def database_errors() -> Iterator[None]:
    """The database unreachable or the connection lost, as the retryable
    :class:`DatabaseUnavailable` (naming the driver's error class, never its message)."""
    try:
        yield
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {exc.orig.__class__.__name__}") from exc
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise DatabaseUnavailable(f"database connection lost: {exc.orig.__class__.__name__}") from exc


def _key_params(key: DeliveryKey) -> dict[str, Any]:
    return {
        "p_message_id": key.message_id,
        "p_recipient": Alias.normalize_address(key.recipient),
        "p_destination_key": key.destination_id,
    }


def _reason(reason: str) -> str:
    return _clip(reason[:REASON_MAX_LENGTH], REASON_MAX_LENGTH) or ""


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
        # the writer before them commits. Other processes still meet the busy timeout. Reentrant:
        # claim() takes a row over (_take_over) from inside its own rolled-back write transaction.
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

    def resolve(self, address: str) -> ResolvedAlias | None:
        with self._connection() as connection:
            rows = connection.execute(_RESOLVE, {"p_address": Alias.normalize_address(address)}).all()
        if not rows and self.user_domains.catch_all(address, self._now()):
            with self._connection() as connection:
                rows = connection.execute(_RESOLVE, {"p_address": Alias.normalize_address(address)}).all()
        if not rows:
            return None
        targets = tuple(
            Target(row.destination_id, row.destination_email, row.paused_at, row.pause_reason or "")
            for row in rows
            if row.destination_id is not None
        )
        return self.user_domains.hold(
            ResolvedAlias(rows[0].id, alias_state(rows[0], len(targets)), targets, rows[0].expired_action or "drop")
        )

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

    def record(self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: Outcome, reason: str) -> bool:
        """Record a message-level outcome once; False when this message was recorded before."""
        with self._connection(write=True) as connection:
            try:
                # the alias row first (see claim): the insert's foreign key check then needs no lock
                if alias_id is not None and outcome.blocked:
                    connection.execute(_COUNT_BLOCKED, {"p_alias_id": alias_id})
                connection.execute(_INSERT, self._values(key, alias_id, meta, outcome.value, reason))
                connection.commit()
            except IntegrityError:
                connection.rollback()
                return False
        return True

    def claim(self, key: DeliveryKey, alias_id: int, meta: MessageMeta) -> Claim:
        """Take the right to send ``key``; see the module docstring for the states.

        The first claim of a (message, alias) counts the message, in the same transaction: against
        the alias's ``max_messages`` (LIMIT) and in the windows of :attr:`limits` (RATE_LIMITED).
        Either way nothing is claimed or counted, and the caller records the message-level outcome;
        a redelivery of a message dropped as rate-limited is RATE_LIMITED again, never sent.
        """
        values = self._values(key, alias_id, meta, PENDING, "")
        now = self._now()
        for _ in range(3):  # a first message of a window opens it, then counts again
            with self._connection(write=True) as connection:
                prior = connection.execute(
                    _ANY_OF_MESSAGE, {"p_message_id": key.message_id, "p_recipient": values["recipient"]}
                ).first()
                if (
                    prior is not None
                    and prior.destination_key == 0
                    and (prior.outcome == Outcome.DROPPED_RATE_LIMITED.value)
                ):
                    return Claim(ClaimState.RATE_LIMITED, prior.outcome)
                # The alias row is updated before the delivery row is inserted: the insert's
                # foreign key check takes a shared lock on the alias row (MariaDB), and two claims
                # each holding one, then both updating the row, deadlock. The insert still decides
                # first: a worker that waited for another's claim of this key takes it over.
                counted = (
                    connection.execute(_COUNT_MESSAGE, {"p_alias_id": alias_id, "p_now": now}).rowcount
                    if prior is None
                    else 1
                )
                try:
                    connection.execute(_INSERT, values)
                except IntegrityError:
                    connection.rollback()
                    return self._take_over(key)
                if counted != 1:
                    connection.rollback()
                    return Claim(ClaimState.LIMIT)
                missing: list[Window] = []
                if prior is None:
                    full, missing = limit_windows.count(connection, self.limits, alias_id, now)
                    if full is not None:
                        connection.rollback()
                        return Claim(ClaimState.RATE_LIMITED, window=full)
                if not missing:
                    connection.commit()
                    return Claim(ClaimState.NEW)
                connection.rollback()
            self._open_windows(missing)
        raise DatabaseUnavailable("the message's rate-limit windows could not be opened; retry")

    def _open_windows(self, windows: list[Window]) -> None:
        """Open each new window in a transaction of its own (see :func:`limit_windows.open_window`)."""
        for window in windows:
            with self._connection(write=True) as connection:
                limit_windows.open_window(connection, window)

    def _take_over(self, key: DeliveryKey) -> Claim:
        now = self._now()
        with self._connection(write=True) as connection:
            row = connection.execute(_CLAIMED, _key_params(key)).one()
            if row.outcome not in (PENDING, RETRY):
                return Claim(ClaimState.DONE, row.outcome, row.attempts)
            stale = row.outcome == PENDING and row.updated_at <= now - self._claim_timeout
            if row.outcome == PENDING and not stale:
                return Claim(ClaimState.BUSY, row.outcome, row.attempts)
            taken = connection.execute(
                _TAKE_OVER, {"p_id": row.id, "p_outcome": row.outcome, "p_updated_at": row.updated_at, "p_now": now}
            )
            connection.commit()
        if taken.rowcount != 1:
            return Claim(ClaimState.BUSY, PENDING, row.attempts)
        return Claim(ClaimState.RESUMED, PENDING, row.attempts + 1)

    def finish(
        self,
        key: DeliveryKey,
        outcome: Outcome,
        reason: str,
        bytes_out: int | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        now = self._now()
        with self._connection(write=True) as connection:
            row = connection.execute(_TO_FINISH, _key_params(key)).one()
            if outcome is Outcome.FORWARDED and row.alias_id is not None and not row.forwarded_before:
                connection.execute(_COUNT_FORWARDED, {"p_alias_id": row.alias_id})
            connection.execute(
                _FINISH,
                {
                    "p_id": row.id,
                    "p_outcome": outcome.value,
                    "p_reason": _reason(reason),
                    "p_bytes_out": bytes_out,
                    "p_provider_message_id": provider_message_id,
                    "p_now": now,
                },
            )
            connection.commit()

    def release(self, key: DeliveryKey, reason: str) -> None:
        """Mark a claimed delivery for retry after a temporary failure."""
        with self._connection(write=True) as connection:
            connection.execute(_RELEASE, {**_key_params(key), "p_reason": _reason(reason), "p_now": self._now()})
            connection.commit()
