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
prints them, tests/forwarder/adapters/sql/test_statements_per_message.py holds them) are six on
SQLite, the same on the first message of a rate-limit window as on the next: step 1 reads the
alias, its destinations and the message's rows in one query, counts the message on the alias row,
inserts the claim and counts the message in every window with one upsert (limit_windows.py); step 3
updates the claim by its key and counts the forward on the alias row (two statements). Each step is
one transaction on one pooled connection, and the first statement of each is run again on a new
connection if the pooled one turns out dead (the pool pings only connections that sat idle,
models/engine.py).

On PostgreSQL and MariaDB they are three: the read, the first claim in one round trip
(:mod:`.first_claim`: the alias row, the claims, the windows and a two-way message's contacts, all
or nothing, the windows without a row yet opened by it; on MariaDB a stored procedure's CALL), and
the settle, one statement that writes both tables. PostgreSQL runs each step that is one statement
on an autocommit connection (no BEGIN or COMMIT round trip), and its settle writes a two-way
message's links in its one statement; on MariaDB each step still ends with a COMMIT (the claim's
is empty: the procedure commits its own transaction), since PyMySQL would send two statements to
turn autocommit on and off again. The rarer paths
(a redelivery taking a claim over, a drop that counts a blocked message, a
settle of several copies) are transactions as elsewhere (:func:`~forwarder.adapters.sql.connections.transactional`).

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

The package, by role: :mod:`.records` (what the directory hands its callers: resolved aliases,
claims, openings, finished sends), :mod:`.statements` (the Core statements, built once),
:mod:`.settle` (what a settle writes), :mod:`.first_claim` (the first claim in one round trip on
PostgreSQL and MariaDB), :mod:`.claiming` (the claim's and the record's writes, on the caller's
connection) and :mod:`.sql_directory` (:class:`SqlDirectory`: resolve, claim, and the settle's
transaction). Each imports only those before it; import from the package.

Lock order (MariaDB): a transaction that writes the alias row (the message count, the blocked and
forwarded counts) does so before it inserts or updates delivery rows. An insert's foreign key check
takes a shared lock on the alias row; two transactions each holding one, then both updating the
row, deadlock. The settle that writes both in one multiple-table UPDATE names the alias first with
STRAIGHT_JOIN (left to itself, the optimizer locks the delivery row first). PostgreSQL's foreign
key check takes a lock an update of the alias's counters does not wait for.
"""

from __future__ import annotations

from forwarder.adapters.sql.connections import database_errors
from forwarder.adapters.sql.directory.records import (
    PENDING,
    RETRY,
    AddressStatus,
    Claim,
    ClaimState,
    DeliveryKey,
    Finished,
    MessageMeta,
    Opening,
    Planned,
    ResolvedAlias,
    Target,
    alias_state,
)
from forwarder.adapters.sql.directory.sql_directory import SqlDirectory

__all__ = [
    "AddressStatus",
    "Claim",
    "ClaimState",
    "DeliveryKey",
    "Finished",
    "MessageMeta",
    "Opening",
    "PENDING",
    "Planned",
    "RETRY",
    "ResolvedAlias",
    "SqlDirectory",
    "Target",
    "alias_state",
    "database_errors",
]
