"""A message's first claim in one round trip, atomic on its own (issue 15): one statement on
PostgreSQL, one stored procedure on MariaDB and MySQL.

Elsewhere (SQLite) the first claim is a transaction (:meth:`SqlDirectory._claim_in`): count the
message on the alias row within its ``max_messages``, insert the claims, count the message in its
rate-limit windows with one upsert, and roll everything back when a window went over its limit.

MariaDB and MySQL: ``CALL othermail_first_claim(...)``, the procedure migration 0010 creates
(migrations/versions/0010_first_claim_procedure.py says how it decides); the lists go as JSON. It
locks the window rows in key order, then the alias row, like the statement below.

PostgreSQL: one data-modifying WITH does all of it on an autocommit connection, so no BEGIN or
COMMIT is sent, and a statement is atomic on its own: it writes everything or nothing.

1. ``locked`` reads the message's window rows ``FOR UPDATE``, in key order (every claim locks them
   in the same order), and ``gate`` finds whether each has room for one more (a window without its
   row yet has room: every limit is 1 or more);
2. ``counted`` counts the message on the alias row only through the gate and within
   ``max_messages`` (checked on the row's latest version, as before);
3. the contacts, the window rows found, the window rows not there yet (``opened``, inserted at 1)
   and the claims (``INSERT INTO deliveries``: pending, and ``dropped-paused`` for the paused
   destinations) are written only if the alias counted the message.
   A claim already there (a racing delivery of the same message) fails the insert's unique key:
   the whole statement is undone, and the caller starts over.

A window is decided while its row is locked, so concurrent claims count one after the other and a
window never goes over its limit; a message refused by one window is counted in none. One case is
left: a window row another claim inserted after this statement took its snapshot is neither
locked (not seen) nor inserted (``ON CONFLICT DO NOTHING``), so this message would not be counted
in it. The statement then fails on purpose (a division by zero, ``complete``): nothing is kept,
and the caller starts over, when the row is seen and locked. It takes two messages of one alias
or user in the same instant, the first ones of their window.

Lock order: the window rows found (in key order), then the alias row (``counted``), then the rows
inserted (claims, windows opened) and the contacts. On PostgreSQL every first claim is this
statement (on MariaDB the procedure), paused destinations or not (they are recorded
``dropped-paused`` by ``claimed`` and counted blocked by ``counted``), so no other claim locks
window rows: the transactional claim's upsert (limit_windows.py, SQLite's) locks the alias row
first and the hour before the day, and the two orders deadlocked
(tests/forwarder/adapters/sql/test_first_claim_lock_order.py). A deadlock with any other path is
still retried by the caller (SqlDirectory.begin: up to 5 attempts in all).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Connection, Integer, String, TextClause, bindparam, text
from sqlalchemy.exc import DBAPIError

from forwarder.adapters.sql.directory.records import PENDING, Claim, ClaimState
from forwarder.core import Outcome
from forwarder.flows.mail_limits import Window
from models.columns import UTCDateTime

_FIRST_CLAIM = """
WITH windows AS (
    SELECT w.key, w.window_start, w.lim, w.n
    FROM unnest(:p_keys, :p_starts, :p_limits) WITH ORDINALITY AS w(key, window_start, lim, n)
),
-- the window rows there already, locked one after the other in key order (LockRows above the sort)
locked AS MATERIALIZED (
    SELECT h.key, h.window_start, h.count FROM rate_limit_hits AS h
    WHERE (h.key, h.window_start) IN (SELECT windows.key, windows.window_start FROM windows)
    ORDER BY h.key, h.window_start
    FOR UPDATE OF h
),
-- room in every window (a window without a row has room, every limit is 1 or more); fresh = rows missing
gate AS MATERIALIZED (
    SELECT coalesce(bool_and(locked.count < windows.lim), true) AS room,
           array_agg(locked.count ORDER BY windows.n) AS counts,
           count(*) - count(locked.key) AS fresh
    FROM windows LEFT JOIN locked ON locked.key = windows.key AND locked.window_start = windows.window_start
),
-- the gate of the whole statement; max_messages is checked on the row's latest version
counted AS (
    UPDATE aliases SET message_count = aliases.message_count + 1, last_used_at = :p_now,
                       blocked_count = aliases.blocked_count + :p_paused
    WHERE aliases.id = :p_alias_id
      AND (aliases.max_messages IS NULL OR aliases.message_count < aliases.max_messages)
      AND (SELECT gate.room FROM gate)
    RETURNING aliases.id
),
contacts_counted AS (
    UPDATE contacts SET forwarded_count = contacts.forwarded_count + 1, last_seen_at = :p_now
    WHERE contacts.id = ANY(:p_contact_ids) AND EXISTS (SELECT 1 FROM counted)
    RETURNING contacts.id
),
windows_counted AS (
    UPDATE rate_limit_hits SET count = rate_limit_hits.count + 1
    FROM locked
    WHERE rate_limit_hits.key = locked.key AND rate_limit_hits.window_start = locked.window_start
      AND EXISTS (SELECT 1 FROM counted)
    RETURNING rate_limit_hits.key
),
-- a row another claim inserted after this statement's snapshot conflicts and is skipped (complete)
opened AS (
    INSERT INTO rate_limit_hits (key, window_start, count)
    SELECT windows.key, windows.window_start, 1 FROM windows
    WHERE EXISTS (SELECT 1 FROM counted)
      AND NOT EXISTS (SELECT 1 FROM locked
                      WHERE locked.key = windows.key AND locked.window_start = windows.window_start)
    ORDER BY windows.n
    ON CONFLICT (key, window_start) DO NOTHING
    RETURNING rate_limit_hits.key
),
claimed AS (
    INSERT INTO deliveries (inbound_message_id, recipient, alias_id, destination_id, destination_key, outcome,
                            reason, mail_from, subject, bytes_in, attempts, received_at, raw_key, created_at,
                            updated_at)
    SELECT :p_message_id, :p_recipient, counted.id, d.id, d.id, d.outcome, d.reason, :p_mail_from, :p_subject,
           :p_bytes_in, 1, :p_received_at, :p_raw_key, :p_now, :p_now
    FROM counted CROSS JOIN unnest(:p_destination_ids, :p_outcomes, :p_reasons) AS d(id, outcome, reason)
    RETURNING deliveries.id
)
-- under_max reads the snapshot (not counted's update), complete fails the statement on purpose
SELECT (SELECT count(*) FROM claimed) AS claimed,
       gate.counts,
       (SELECT aliases.max_messages IS NULL OR aliases.message_count < aliases.max_messages
        FROM aliases WHERE aliases.id = :p_alias_id) AS under_max,
       1 / CASE WHEN NOT EXISTS (SELECT 1 FROM counted) OR gate.fresh = (SELECT count(*) FROM opened) THEN 1 ELSE 0 END
         AS complete
FROM gate
"""

DROPPED_PAUSED = Outcome.DROPPED_PAUSED.value

#: SQLSTATE division_by_zero: ``complete`` failed the statement, a window was opened meanwhile.
_OPENED_MEANWHILE = "22012"


def opened_meanwhile(exc: DBAPIError) -> bool:
    """Whether the first claim failed on purpose, a window row having been inserted by another claim
    after it began (nothing was written; start over)."""
    return getattr(exc.orig, "sqlstate", None) == _OPENED_MEANWHILE


@functools.cache
def _statement() -> TextClause:
    """Built at first use (the Lambda on SQLite never builds it); typed, so psycopg is sent casts
    and the UTC datetimes go through :class:`~models.base.UTCDateTime`."""
    return text(_FIRST_CLAIM).bindparams(
        bindparam("p_keys", type_=ARRAY(String)),
        bindparam("p_starts", type_=ARRAY(BigInteger)),
        bindparam("p_limits", type_=ARRAY(Integer)),
        bindparam("p_contact_ids", type_=ARRAY(Integer)),
        bindparam("p_destination_ids", type_=ARRAY(Integer)),
        bindparam("p_outcomes", type_=ARRAY(String)),
        bindparam("p_reasons", type_=ARRAY(String)),
        bindparam("p_paused", type_=Integer),
        bindparam("p_alias_id", type_=Integer),
        bindparam("p_message_id", type_=String),
        bindparam("p_recipient", type_=String),
        bindparam("p_mail_from", type_=String),
        bindparam("p_subject", type_=String),
        bindparam("p_bytes_in", type_=Integer),
        bindparam("p_raw_key", type_=String),
        bindparam("p_now", type_=UTCDateTime()),
        bindparam("p_received_at", type_=UTCDateTime()),
    )


#: MariaDB's and MySQL's error number: no such stored procedure.
_NO_SUCH_PROCEDURE = 1305


def procedure_missing(exc: DBAPIError) -> bool:
    """Whether the CALL failed for want of the procedure (a dump restored without it; ``othermail
    db upgrade`` makes it again: migrations.restore_routines)."""
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == _NO_SUCH_PROCEDURE


#: MariaDB and MySQL: migration 0010's procedure (migrations/versions/0010_first_claim_procedure.py).
_CALL = (
    "CALL othermail_first_claim(:p_windows, :p_contact_ids, :p_claims, :p_paused, :p_alias_id, :p_message_id,"
    " :p_recipient, :p_mail_from, :p_subject, :p_bytes_in, :p_raw_key, :p_now, :p_received_at)"
)

#: The dialects whose first claim is :data:`_CALL`.
PROCEDURE_DIALECTS = frozenset({"mysql", "mariadb"})


@functools.cache
def _call() -> TextClause:
    return text(_CALL).bindparams(
        bindparam("p_now", type_=UTCDateTime()), bindparam("p_received_at", type_=UTCDateTime())
    )


def claim_first(
    connection: Connection,
    values: Mapping[str, Any],
    destination_ids: Sequence[int],
    windows: Sequence[Window],
    contacts: Sequence[int],
    paused: Sequence[tuple[int, str]] = (),
) -> Claim | None:
    """Claim ``destination_ids`` (new rows, :meth:`SqlDirectory._values`' ``values`` but for the
    destination), record ``paused`` (destination id, reason) as ``dropped-paused`` and count them
    blocked on the alias, and count the message: None when done, else the :class:`Claim` that says why
    nothing was written (LIMIT before RATE_LIMITED, as the transactional claim decides). Raises the
    driver's IntegrityError when a claim is there already, and on PostgreSQL the error
    :func:`opened_meanwhile` tells when a window was opened by another claim meanwhile (nothing
    written either way)."""
    claims = [
        *((destination_id, PENDING, "") for destination_id in destination_ids),
        *((destination_id, DROPPED_PAUSED, reason) for destination_id, reason in paused),
    ]
    params = {
        "p_contact_ids": list(contacts),
        "p_paused": len(paused),
        "p_alias_id": values["alias_id"],
        "p_message_id": values["inbound_message_id"],
        "p_recipient": values["recipient"],
        "p_mail_from": values["mail_from"],
        "p_subject": values["subject"],
        "p_bytes_in": values["bytes_in"],
        "p_raw_key": values["raw_key"],
        "p_now": values["created_at"],
        "p_received_at": values["received_at"],
    }
    claim = _by_procedure if connection.dialect.name in PROCEDURE_DIALECTS else _by_statement
    claimed, under_max, full = claim(connection, params, windows, claims)
    if claimed:
        return None
    if not under_max or full is None:
        # the message limit first; a deleted alias counts nothing either; or through the gate, but
        # the alias reached its message limit meanwhile
        return Claim(ClaimState.LIMIT)
    return Claim(ClaimState.RATE_LIMITED, window=full)


_Outcome = tuple[int, bool, Window | None]


def _by_procedure(
    connection: Connection, params: dict[str, Any], windows: Sequence[Window], claims: list[tuple[int, str, str]]
) -> _Outcome:
    """MariaDB: the claim rows inserted, whether the alias had room, the first window found full."""
    # locked in key order; the position says which the caller checks first
    placed = sorted((w.key, w.start, w.limit, n) for n, w in enumerate(windows, start=1))
    row = connection.execute(
        _call(),
        {
            **params,
            "p_windows": json.dumps(placed),
            "p_contact_ids": json.dumps(params["p_contact_ids"]),
            "p_claims": json.dumps(claims),
        },
    ).one()
    return row.claimed, bool(row.under_max), windows[row.full_window - 1] if row.full_window else None


def _by_statement(
    connection: Connection, params: dict[str, Any], windows: Sequence[Window], claims: list[tuple[int, str, str]]
) -> _Outcome:
    """PostgreSQL: :func:`_by_procedure`'s answer from :data:`_FIRST_CLAIM`."""
    destination_ids, outcomes, reasons = ([claim[n] for claim in claims] for n in range(3))
    row = connection.execute(
        _statement(),
        {
            **params,
            "p_keys": [w.key for w in windows],
            "p_starts": [w.start for w in windows],
            "p_limits": [w.limit for w in windows],
            "p_destination_ids": destination_ids,
            "p_outcomes": outcomes,
            "p_reasons": reasons,
        },
    ).one()
    counts = row.counts or ()
    full = next((w for w, hits in zip(windows, counts, strict=True) if hits is not None and hits >= w.limit), None)
    return row.claimed, bool(row.under_max), full
