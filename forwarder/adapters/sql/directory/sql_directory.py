"""The directory on SQL, :class:`SqlDirectory`: resolve and claim (step 1), settle (step 3); see
forwarder/adapters/sql/directory/__init__.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
)
from sqlalchemy.exc import DBAPIError

from forwarder.adapters.sql import limit_windows
from forwarder.adapters.sql.connections import again_if_dead, connect, database_errors, one_connection
from forwarder.adapters.sql.directory.claiming import ClaimWriting, _deadlock
from forwarder.adapters.sql.directory.first_claim import PROCEDURE_DIALECTS
from forwarder.adapters.sql.directory.records import (
    _ATTEMPTS,
    AddressStatus,
    Claim,
    ClaimState,
    DeliveryKey,
    Finished,
    MessageMeta,
    Opening,
    P,
    ResolvedAlias,
    T,
    Target,
    _Again,
    _Claimed,
    _Existing,
    _Seen,
    alias_state,
)
from forwarder.adapters.sql.directory.settle import finish
from forwarder.adapters.sql.directory.statements import (
    _EXISTS,
    _GIVE_BACK,
    _OF_MESSAGE,
    _OWNER,
    _RCPT_STATUS,
    _RELEASE,
    _RESOLVE,
    _RESOLVE_FOR_MESSAGE,
    _WITHDRAW,
    _insert_new_links,
    _key_params,
    _reason,
    _seen,
)
from forwarder.adapters.sql.user_domains import UserDomains
from forwarder.core import Outcome
from forwarder.core.decide import expiry
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.mail_limits import MailLimits
from models.columns import normalize_email, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


class SqlDirectory(ClaimWriting):
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
        #: PostgreSQL: a step that is one statement runs it on an autocommit connection, no BEGIN
        #: or COMMIT round trip (first_claim.py). Not on MariaDB: PyMySQL would send SET AUTOCOMMIT
        #: there and back, and the isolation level again, to save one COMMIT.
        self._autocommits = engine.dialect.name == "postgresql"
        #: A message's first claim is one round trip (first_claim.py): all but SQLite.
        self._first_claim_in_one = self._autocommits or engine.dialect.name in PROCEDURE_DIALECTS
        #: Users' own domains: accepted domains, suspension, the catch-all (forwarder/adapters/sql/user_domains.py).
        self.user_domains = UserDomains(self._connection)

    @contextmanager
    def _connection(self, write: bool = False, autocommit: bool = False) -> Iterator[Connection]:
        """A pooled connection (the message's, within :meth:`one_connection`); leaving it without
        ``commit()`` rolls back. ``write``: the transaction writes (on SQLite, one such transaction
        of this process at a time).
        ``autocommit`` (PostgreSQL): each statement commits on its own, no BEGIN or COMMIT is sent,
        until :func:`transactional` (the statements that must be one transaction)."""
        with (
            database_errors(),
            self._write_lock if write else nullcontext(),
            connect(self._engine, autocommit and self._autocommits) as connection,
        ):
            yield connection

    def one_connection(self) -> AbstractContextManager[None]:
        """One message's steps on this thread share one pooled connection (connections.py)."""
        return one_connection(self._engine)

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
        with self._connection(autocommit=True) as connection:
            found = connection.execute(_EXISTS, {"p_address": normalize_email(address)}).first()
            connection.commit()  # not a rollback: psycopg's drops the connection's prepared statements
        return found is not None or self.user_domains.catch_all_accepts(address)

    def address_status(self, address: str) -> AddressStatus:
        """:meth:`exists`, and whether an existing alias has expired with ``expired_action`` reject
        (the SMTP listener answers it 550 5.1.1) or may do so at any time (its answer is not to be
        cached). One cheap query."""
        with self._connection(autocommit=True) as connection:
            row = connection.execute(_RCPT_STATUS, {"p_address": normalize_email(address)}).first()
            connection.commit()  # not a rollback (exists)
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
        with self._connection(autocommit=True) as connection:
            rows = connection.execute(_RESOLVE, {"p_address": normalize_email(address)}).all()
            connection.commit()  # not a rollback (exists)
        if not rows and self.user_domains.catch_all(address, self._now()):
            with self._connection(autocommit=True) as connection:
                rows = connection.execute(_RESOLVE, {"p_address": normalize_email(address)}).all()
                connection.commit()
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
        """Resolve ``recipient``, decide, and claim or record, in one transaction (the package docstring).

        ``decide`` is pure and fast: it runs before the transaction writes, and again should an
        attempt start over and find the alias changed. The claims count the message once, against
        the alias's ``max_messages`` and in the windows of :attr:`limits`; over either, nothing is
        claimed and the message-level outcome is recorded instead (:attr:`Opening.recorded`).
        """
        address = normalize_email(recipient)
        planned: tuple[ResolvedAlias | None, P] | None = None
        catch_all = self.user_domains.catch_all_accepts(recipient)
        params = {"p_address": address, "p_message_id": message_id}
        why = "a catch-all alias not made"
        for _ in range(_ATTEMPTS):
            opened: Opening[P] | _Again | None = None
            with self._connection(autocommit=True) as connection:
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
            if isinstance(opened, _Again):
                why = opened.why
            if opened is None:  # an unknown address on a catch-all domain: made now, or never
                catch_all = False
                self.user_domains.catch_all(recipient, self._now())
        raise DatabaseUnavailable(f"the message could not be claimed in {_ATTEMPTS} attempts (the last: {why}); retry")

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
            blocked: Sequence[int] = getattr(plan, "blocked_contacts", ())
            fresh = self._record_in(connection, key, alias_id, meta, decision.outcome, decision.reason, blocked)
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

    def record(self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: Outcome, reason: str) -> bool:
        """Record a message-level outcome once; False when this message was recorded before."""
        with self._connection(write=True) as connection:
            return self._record_in(connection, key, alias_id, meta, outcome, reason)

    def claim(self, key: DeliveryKey, alias_id: int, meta: MessageMeta) -> Claim:
        """Take the right to send ``key`` alone; see the package docstring for the states, and
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

    def prune_limit_windows(self, now: datetime | None = None) -> int:
        """Delete the rate-limit windows of days before today (UTC); how many. Run by the scheduled
        jobs (limit_windows.py), never per message."""
        with self._connection(write=True) as connection:
            removed = limit_windows.prune(connection, now or self._now())
            connection.commit()
        return removed

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
        # PostgreSQL, the usual settle (one copy of a first claim): one statement, the links in it
        alone = (
            self._autocommits
            and retry is None
            and not unsent
            and len(finished) == 1
            and finished[0].first
            and finished[0].alias_id is not None
        )
        folded = links if alone and finished[0].outcome is Outcome.FORWARDED else ()
        alone = alone and (bool(folded) or not links)

        def record(connection: Connection) -> bool:
            if not finish(connection, finished, now, folded):
                return False
            if links and not folded:
                _insert_new_links(connection, links)
            if retry is not None:
                key, reason = retry
                connection.execute(_RELEASE, {**_key_params(key), "p_reason": _reason(reason), "p_now": now})
            for key, claim in unsent:
                statement = _WITHDRAW if claim.state is ClaimState.NEW else _GIVE_BACK
                params = _key_params(key) if claim.state is ClaimState.NEW else {**_key_params(key), "p_now": now}
                connection.execute(statement, params)
            return True

        with self._connection(write=True, autocommit=alone) as connection:
            # the sends are done: a connection found dead now must not leave their claims pending
            for _ in range(2):
                if self._again_if_lost(connection, record):
                    connection.commit()
                    return
                connection.rollback()  # raced (settle.finish): read again
        raise DatabaseUnavailable("the outcomes could not be recorded (a race with another worker); retry")

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
