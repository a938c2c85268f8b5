"""The writing half of a message's claim, or of the record of a message not sent, on the connection
the caller holds: :class:`ClaimWriting`, which :class:`~.sql_directory.SqlDirectory` is built on.

A first claim is one round trip where the database allows it (:mod:`.first_claim`: PostgreSQL,
MariaDB) and a transaction elsewhere (:meth:`ClaimWriting._claim_in`: count the message on the alias
within its ``max_messages``, insert the claims, count the windows with one upsert, roll back over a
limit). A later claim of the same message takes over a row nobody holds (:meth:`_take_over`).
Each returns a :class:`~.records.Claim` (refused, or the state of an existing row), a
:class:`~.records._Claimed` (committed) or an :class:`~.records._Again` (rolled back: start over).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from forwarder.adapters.sql import limit_windows
from forwarder.adapters.sql.connections import transactional
from forwarder.adapters.sql.directory.first_claim import claim_first, opened_meanwhile, procedure_missing
from forwarder.adapters.sql.directory.records import (
    PENDING,
    RETRY,
    Claim,
    ClaimState,
    DeliveryKey,
    MessageMeta,
    Target,
    _Again,
    _Claimed,
    _Seen,
)
from forwarder.adapters.sql.directory.statements import (
    _COUNT_BLOCKED,
    _COUNT_CONTACTS,
    _COUNT_CONTACTS_BLOCKED,
    _COUNT_MESSAGE,
    _COUNT_MESSAGE_AND_CONTACTS,
    _INSERT,
    _TAKE_OVER,
    _reason,
)
from forwarder.core import Outcome
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.mail_limits import MailLimits
from models.columns import normalize_email
from models.limits import EMAIL_MAX_LENGTH, RAW_KEY_MAX_LENGTH, SUBJECT_MAX_LENGTH, clip

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


class ClaimWriting:
    """The claim's and the record's writes; the attributes are the directory's (SqlDirectory sets them)."""

    #: Hourly and daily limits, counted at a message's first claim.
    limits: MailLimits
    _now: Callable[[], datetime]
    #: A pending claim older than this is taken over (its worker is presumed dead).
    _claim_timeout: timedelta
    #: A message's first claim is one round trip (first_claim.py): all but SQLite.
    _first_claim_in_one: bool

    def _values(
        self, key: DeliveryKey, alias_id: int | None, meta: MessageMeta, outcome: str, reason: str
    ) -> dict[str, Any]:
        """A new delivery row, its free text clipped as :class:`~models.Delivery` clips it."""
        now = self._now()
        return {
            "inbound_message_id": key.message_id,
            "recipient": normalize_email(key.recipient),
            "alias_id": alias_id,
            "destination_id": key.destination_id or None,
            "destination_key": key.destination_id,
            "outcome": outcome,
            "reason": _reason(reason),
            "mail_from": clip(meta.mail_from[:EMAIL_MAX_LENGTH] or None, EMAIL_MAX_LENGTH),
            "subject": clip(meta.subject[:SUBJECT_MAX_LENGTH] or None, SUBJECT_MAX_LENGTH),
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
        blocked_contacts: Sequence[int] = (),
    ) -> bool:
        """Insert the message-level row and commit; False when the message was recorded before (the
        insert fails on its key and everything counted here is rolled back with it, so a
        redelivery counts nothing). A blocked outcome counts on the alias and on
        ``blocked_contacts`` (a refused known sender's contact)."""
        if alias_id is not None and outcome.blocked:
            transactional(connection)
        try:
            # the alias row first (the package docstring): the insert's foreign key check then needs no lock
            if alias_id is not None and outcome.blocked:
                connection.execute(_COUNT_BLOCKED, {"p_alias_id": alias_id, "p_count": 1})
                if blocked_contacts:
                    connection.execute(
                        _COUNT_CONTACTS_BLOCKED, {"p_contact_ids": list(blocked_contacts), "p_now": self._now()}
                    )
            connection.execute(_INSERT, self._values(key, alias_id, meta, outcome.value, reason))
            connection.commit()
        except IntegrityError:
            connection.rollback()
            return False
        return True

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
        if first and self._first_claim_in_one:  # every window lock is in first_claim.py
            return self._claim_first(connection, key, alias_id, user_id, meta, sending, paused, now, contacts)
        transactional(connection)
        claims: list[tuple[Target, Claim]] = []
        try:
            # The alias row is updated before any delivery row is inserted (the package docstring). The
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
            return _Again("a deadlock")
        if full is not None:
            connection.rollback()
            return Claim(ClaimState.RATE_LIMITED, window=full)
        connection.commit()
        return _Claimed(tuple(claims), tuple((t, t in new_paused) for t in paused), first)

    def _claim_first(
        self,
        connection: Connection,
        key: DeliveryKey,
        alias_id: int,
        user_id: int | None,
        meta: MessageMeta,
        sending: Sequence[Target],
        paused: Sequence[Target],
        now: datetime,
        contacts: Sequence[int],
    ) -> _Claimed | Claim | _Again:
        """:meth:`_claim_in` for a message's first claim on PostgreSQL, MariaDB and MySQL: one
        statement or one procedure call (first_claim.py), atomic on its own. It is the only claim
        there that locks the rate-limit windows, so they are always locked in one order (the
        transactional upsert's differs)."""
        # MariaDB's procedure commits the connection's transaction as it starts its own: only reads
        # may come before it on this connection (the resolve's, the message's rows)
        values = self._values(DeliveryKey(key.message_id, key.recipient), alias_id, meta, PENDING, "")
        windows = self.limits.windows(alias_id, user_id, now)
        try:
            refused = claim_first(
                connection,
                values,
                [t.destination_id for t in sending],
                windows,
                contacts,
                [(t.destination_id, _reason(t.pause_note)) for t in paused],
            )
        except IntegrityError:  # a racing delivery claimed it first: nothing was written
            connection.rollback()
            return _Again()
        except DBAPIError as exc:
            if procedure_missing(exc):
                raise DatabaseUnavailable(
                    "the database has no stored procedure othermail_first_claim (restored from a dump made"
                    " without --routines?): run othermail db upgrade"
                ) from exc
            if not (_deadlock(exc) or opened_meanwhile(exc)):
                raise
            connection.rollback()
            return _Again("a deadlock" if _deadlock(exc) else "a rate-limit window opened by another claim meanwhile")
        if refused is not None:
            connection.rollback()  # nothing written; ends a transaction SqlDirectory.claim opened
            return refused
        connection.commit()  # nothing to send on an autocommit connection; MariaDB's: empty
        return _Claimed(tuple((t, Claim(ClaimState.NEW)) for t in sending), tuple((t, True) for t in paused), True)

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
