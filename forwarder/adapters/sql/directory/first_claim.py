"""PostgreSQL: a message's first claim in one statement, on an autocommit connection (issue 15).

Elsewhere the first claim is a transaction (:meth:`SqlDirectory._claim_in`): count the message on
the alias row within its ``max_messages``, insert the claims, count the message in its rate-limit
windows with one upsert, and roll everything back when a window went over its limit. Here one
data-modifying WITH does all of it, so no BEGIN or COMMIT is sent, and a statement is atomic on its
own: it writes everything or nothing.

1. ``locked`` reads the message's window rows ``FOR UPDATE``, in key order (every claim locks them
   in the same order), and ``gate`` finds whether each window has its row and room for one more;
2. ``counted`` counts the message on the alias row only through the gate and within
   ``max_messages`` (checked on the row's latest version, as before);
3. the contacts, the windows and the claims (``INSERT INTO deliveries``) are written only if the
   alias counted the message. A claim already there (a racing delivery of the same message) fails
   the insert's unique key: the whole statement is undone, and the caller starts over.

A window is decided while its row is locked, so concurrent claims count one after the other and a
window never goes over its limit; a message refused by one window is counted in none. A window
without its row cannot be locked: the statement then writes nothing, says so, and the caller opens
the missing rows at 0 (:data:`OPEN_WINDOWS`, committed on its own) and runs it again: the first
message of a window costs two statements more. A row opened at 0 whose claim is then refused is
deleted with the other past windows by the scheduled prune (limit_windows.py).

Lock order: the window rows, then the alias row (``counted``), then the inserted claims. The
transactional claim locks the alias row before the windows; on PostgreSQL the SQLite and MariaDB
path runs only for the rarer claims (a redelivery's take-over, paused destinations) and for
:meth:`SqlDirectory.claim`'s, and a deadlock between the two orders is broken by PostgreSQL and
started over (:meth:`SqlDirectory._claim_in`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Connection, Integer, String, TextClause, bindparam, text

from forwarder.adapters.sql.directory.records import PENDING, Claim, ClaimState
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.mail_limits import Window
from models.base import UTCDateTime

_FIRST_CLAIM = f"""
WITH windows AS (
    SELECT w.key, w.window_start, w.lim, w.n
    FROM unnest(:p_keys, :p_starts, :p_limits) WITH ORDINALITY AS w(key, window_start, lim, n)
),
locked AS MATERIALIZED (
    SELECT h.key, h.window_start, h.count FROM rate_limit_hits AS h
    WHERE (h.key, h.window_start) IN (SELECT windows.key, windows.window_start FROM windows)
    ORDER BY h.key, h.window_start
    FOR UPDATE OF h
),
gate AS MATERIALIZED (
    SELECT count(locked.key) = count(*) AS present,
           coalesce(bool_and(locked.count < windows.lim), true) AS room,
           array_agg(locked.count ORDER BY windows.n) AS counts
    FROM windows LEFT JOIN locked ON locked.key = windows.key AND locked.window_start = windows.window_start
),
counted AS (
    UPDATE aliases SET message_count = aliases.message_count + 1, last_used_at = :p_now
    WHERE aliases.id = :p_alias_id
      AND (aliases.max_messages IS NULL OR aliases.message_count < aliases.max_messages)
      AND (SELECT gate.present AND gate.room FROM gate)
    RETURNING aliases.id
),
contacts_counted AS (
    UPDATE contacts SET forwarded_count = contacts.forwarded_count + 1, last_seen_at = :p_now
    WHERE contacts.id = ANY(:p_contact_ids) AND EXISTS (SELECT 1 FROM counted)
    RETURNING contacts.id
),
hits AS (
    UPDATE rate_limit_hits SET count = rate_limit_hits.count + 1
    FROM locked
    WHERE rate_limit_hits.key = locked.key AND rate_limit_hits.window_start = locked.window_start
      AND EXISTS (SELECT 1 FROM counted)
    RETURNING rate_limit_hits.key
),
claimed AS (
    INSERT INTO deliveries (inbound_message_id, recipient, alias_id, destination_id, destination_key, outcome,
                            reason, mail_from, subject, bytes_in, attempts, received_at, raw_key, created_at,
                            updated_at)
    SELECT :p_message_id, :p_recipient, counted.id, d.id, d.id, '{PENDING}', '', :p_mail_from, :p_subject,
           :p_bytes_in, 1, :p_received_at, :p_raw_key, :p_now, :p_now
    FROM counted CROSS JOIN unnest(:p_destination_ids) AS d(id)
    RETURNING deliveries.id
)
SELECT (SELECT count(*) FROM claimed) AS claimed,
       gate.present, gate.counts,
       (SELECT aliases.max_messages IS NULL OR aliases.message_count < aliases.max_messages
        FROM aliases WHERE aliases.id = :p_alias_id) AS under_max
FROM gate
"""

#: The window rows a claim did not find, opened at 0 (a row there already is left as it is).
_OPEN_WINDOWS = """
INSERT INTO rate_limit_hits (key, window_start, count)
SELECT w.key, w.window_start, 0 FROM unnest(:p_keys, :p_starts) AS w(key, window_start)
ON CONFLICT (key, window_start) DO NOTHING
"""


@functools.cache
def _statements() -> tuple[TextClause, TextClause]:
    """Built at first use (the Lambda on SQLite never builds them); typed, so psycopg is sent
    casts and the UTC datetimes go through :class:`~models.base.UTCDateTime`."""
    arrays = (
        bindparam("p_keys", type_=ARRAY(String)),
        bindparam("p_starts", type_=ARRAY(BigInteger)),
    )
    first = text(_FIRST_CLAIM).bindparams(
        *arrays,
        bindparam("p_limits", type_=ARRAY(Integer)),
        bindparam("p_contact_ids", type_=ARRAY(Integer)),
        bindparam("p_destination_ids", type_=ARRAY(Integer)),
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
    return first, text(_OPEN_WINDOWS).bindparams(*arrays)


def claim_first(
    connection: Connection,
    values: Mapping[str, Any],
    destination_ids: Sequence[int],
    windows: Sequence[Window],
    contacts: Sequence[int],
) -> Claim | None:
    """Claim ``destination_ids`` (new rows, :meth:`SqlDirectory._values`' ``values`` but for the
    destination) and count the message: None when done, else the :class:`Claim` that says why
    nothing was written (LIMIT before RATE_LIMITED, as the transactional claim decides). Raises the
    driver's IntegrityError when a claim is there already (nothing written)."""
    first, open_windows = _statements()
    params = {
        "p_keys": [w.key for w in windows],
        "p_starts": [w.start for w in windows],
        "p_limits": [w.limit for w in windows],
        "p_contact_ids": list(contacts),
        "p_destination_ids": list(destination_ids),
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
    row = connection.execute(first, params).one()
    if not row.claimed and row.under_max and not row.present:
        connection.execute(open_windows, params)
        row = connection.execute(first, params).one()
    if row.claimed:
        return None
    if not row.under_max:  # the message limit first; a deleted alias counts nothing either
        return Claim(ClaimState.LIMIT)
    if not row.present:  # opened, and gone before the claim ran again: not seen in practice
        raise DatabaseUnavailable("the rate-limit windows could not be opened; retry")
    full = next((w for w, hits in zip(windows, row.counts or (), strict=True) if hits >= w.limit), None)
    if full is None:  # through the gate, but the alias reached its message limit meanwhile
        return Claim(ClaimState.LIMIT)
    return Claim(ClaimState.RATE_LIMITED, window=full)
