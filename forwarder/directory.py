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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from forwarder.core import AliasState, Outcome
from forwarder.errors import DatabaseUnavailable
from models import Alias, Delivery

PENDING = "pending"
RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Target:
    """A verified destination of an alias."""

    destination_id: int
    email: str


@dataclass(frozen=True, slots=True)
class ResolvedAlias:
    alias_id: int
    state: AliasState
    targets: tuple[Target, ...]


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


class ClaimState(Enum):
    NEW = "new"
    RESUMED = "resumed"
    DONE = "done"
    BUSY = "busy"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    outcome: str = ""
    attempts: int = 1


def alias_state(alias: Alias, destination_count: int | None = None) -> AliasState:
    """The plain values the core decides on, read from an alias row."""
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


class SqlDirectory:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        claim_timeout: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from models import utcnow

        self._sessions = session_factory
        self._claim_timeout = claim_timeout
        self._now = clock or utcnow

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except OperationalError as exc:
            raise DatabaseUnavailable(f"database error: {exc.orig.__class__.__name__}") from exc
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            raise DatabaseUnavailable(f"database connection lost: {exc.orig.__class__.__name__}") from exc

    def exists(self, address: str) -> bool:
        """Whether ``address`` was ever issued (the SMTP listener's RCPT check; one cheap query)."""
        with self._session() as session:
            found = session.scalar(select(Alias.id).where(Alias.address == Alias.normalize_address(address)))
            return found is not None

    def resolve(self, address: str) -> ResolvedAlias | None:
        normalized = Alias.normalize_address(address)
        with self._session() as session:
            alias = session.scalars(
                select(Alias).where(Alias.address == normalized).options(selectinload(Alias.destinations))
            ).first()
            if alias is None:
                return None
            targets = tuple(
                Target(d.id, d.email) for d in sorted(alias.destinations, key=lambda d: d.id) if d.verified_at
            )
            return ResolvedAlias(alias.id, alias_state(alias, len(targets)), targets)

    def _row(self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: str, reason: str) -> Delivery:
        now = self._now()
        return Delivery(
            inbound_message_id=key.message_id,
            recipient=Alias.normalize_address(key.recipient),
            alias_id=alias_id,
            destination_id=key.destination_id or None,
            destination_key=key.destination_id,
            outcome=outcome,
            reason=reason[:500],
            mail_from=meta.mail_from[:254] or None,
            subject=meta.subject[:255] or None,
            bytes_in=meta.bytes_in,
            received_at=meta.received_at,
            created_at=now,
            updated_at=now,
        )

    def record(
        self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: Outcome, reason: str
    ) -> bool:
        """Record a message-level outcome once; False when this message was recorded before."""
        with self._session() as session:
            try:
                session.add(self._row(key, alias_id, meta, outcome.value, reason))
                session.flush()
                if alias_id is not None and outcome.blocked:
                    session.execute(
                        update(Alias).where(Alias.id == alias_id).values(blocked_count=Alias.blocked_count + 1)
                    )
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
        return True

    def claim(self, key: DeliveryKey, alias_id: int, meta: MessageMeta) -> Claim:
        """Take the right to send ``key``; see the module docstring for the states."""
        with self._session() as session:
            recipient = Alias.normalize_address(key.recipient)
            first = not session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.inbound_message_id == key.message_id, Delivery.recipient == recipient)
            )
            try:
                session.add(self._row(key, alias_id, meta, PENDING, ""))
                session.flush()
                if first and not self._count_message(session, alias_id):
                    session.rollback()
                    return Claim(ClaimState.LIMIT)
                session.commit()
                return Claim(ClaimState.NEW)
            except IntegrityError:
                session.rollback()
        return self._take_over(key)

    def _count_message(self, session: Session, alias_id: int) -> bool:
        """Count one more message for the alias, atomically within its message limit."""
        counted = session.execute(
            update(Alias)
            .where(
                Alias.id == alias_id,
                or_(Alias.max_messages.is_(None), Alias.message_count < Alias.max_messages),
            )
            .values(message_count=Alias.message_count + 1, last_used_at=self._now())
        )
        return counted.rowcount == 1

    def _take_over(self, key: DeliveryKey) -> Claim:
        now = self._now()
        with self._session() as session:
            row = session.scalars(select(Delivery).where(*self._match(key))).one()
            if row.outcome not in (PENDING, RETRY):
                return Claim(ClaimState.DONE, row.outcome, row.attempts)
            stale = row.outcome == PENDING and row.updated_at <= now - self._claim_timeout
            if row.outcome == PENDING and not stale:
                return Claim(ClaimState.BUSY, row.outcome, row.attempts)
            taken = session.execute(
                update(Delivery)
                .where(Delivery.id == row.id, Delivery.outcome == row.outcome, Delivery.updated_at == row.updated_at)
                .values(outcome=PENDING, attempts=Delivery.attempts + 1, updated_at=now)
            )
            session.commit()
            if taken.rowcount != 1:
                return Claim(ClaimState.BUSY, PENDING, row.attempts)
            return Claim(ClaimState.RESUMED, PENDING, row.attempts + 1)

    @staticmethod
    def _match(key: DeliveryKey) -> tuple:
        return (
            Delivery.inbound_message_id == key.message_id,
            Delivery.recipient == Alias.normalize_address(key.recipient),
            Delivery.destination_key == key.destination_id,
        )

    def finish(
        self,
        key: DeliveryKey,
        outcome: Outcome,
        reason: str,
        bytes_out: int | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        now = self._now()
        with self._session() as session:
            row = session.scalars(select(Delivery).where(*self._match(key))).one()
            if outcome is Outcome.FORWARDED and row.alias_id is not None:
                already = session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(
                        Delivery.inbound_message_id == row.inbound_message_id,
                        Delivery.recipient == row.recipient,
                        Delivery.outcome == Outcome.FORWARDED.value,
                    )
                )
                if not already:
                    session.execute(
                        update(Alias)
                        .where(Alias.id == row.alias_id)
                        .values(forwarded_count=Alias.forwarded_count + 1)
                    )
            row.outcome = outcome.value
            row.reason = reason[:500]
            row.bytes_out = bytes_out
            row.provider_message_id = provider_message_id
            row.updated_at = now
            session.commit()

    def release(self, key: DeliveryKey, reason: str) -> None:
        """Mark a claimed delivery for retry after a temporary failure."""
        with self._session() as session:
            session.execute(
                update(Delivery)
                .where(and_(*self._match(key)), Delivery.outcome == PENDING)
                .values(outcome=RETRY, reason=reason[:500], updated_at=self._now())
            )
            session.commit()
