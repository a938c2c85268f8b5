"""The SQL side of the mail limits (forwarder/flows/mail_limits.py): counting a message in the windows
of the ``rate_limit_hits`` table, atomically, within a claim's transaction. A message's first claim
on PostgreSQL and MariaDB counts them in its one round trip instead (directory/first_claim.py);
this upsert is SQLite's, and prunes every backend's past windows.

Each window is one row (key, window start, count). A message is counted in all its windows by one
upsert, whatever rows exist yet::

    INSERT INTO rate_limit_hits VALUES (<window>, 1), ...
    ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1   -- PostgreSQL, SQLite
    ON DUPLICATE KEY UPDATE count = count + 1                         -- MariaDB, MySQL
    RETURNING key, window_start, count

and the counts it returns are checked against the limits: over one, the caller rolls the whole claim
back, so a count over its limit is never committed. The upsert locks each row (alias windows before
user windows, the hour before the day: every claim in the same order) until the claim commits or
rolls back, so concurrent claims count one after the other and never exceed a limit. A window
without a row yet is opened by the same statement, in the claim's transaction (PostgreSQL's
speculative insertion and InnoDB's lock on a duplicate primary key make a second claim of a new
window wait for the first, then update its row). MariaDB returns the rows the upsert wrote (10.5
and later); where the server has no ``RETURNING`` (MySQL) the counts are read back in the same
transaction, from the rows it has just locked and written.

Past windows are not deleted per message: :func:`prune`, run by the scheduled job, deletes the
windows of days before the current one (a busy alias keeps at most a day's 24 hour windows and its
day window, plus those of the days since the last run).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, bindparam, delete, literal_column, select, tuple_

from forwarder.flows.mail_limits import MailLimits, Window, window_start
from models.tables import rate_limit_hits as _hits

#: The windows of the forwarder's mail limits (web/ratelimit.py keeps its own under other prefixes).
KEY_PREFIX = "mail:"

_PAST_WINDOWS = delete(_hits).where(
    _hits.c.key.startswith(KEY_PREFIX, autoescape=True), _hits.c.window_start < bindparam("p_before")
)


@functools.lru_cache(maxsize=8)
def _upsert(dialect: str, returning: bool) -> Any:
    """The upsert of one window, built once per dialect with bound parameters ``p_key`` and
    ``p_window_start``. :func:`count` runs it with one parameter set per window, and SQLAlchemy's
    "insertmanyvalues" sends them as one multi-row ``INSERT ... VALUES (...), (...)`` (one round
    trip, its rows returned together), compiled once: a statement built with ``values([...])``
    has no cache key in SQLAlchemy (NO_CACHE_KEY) and was compiled again for every message."""
    # the ones are literal: PyMySQL's executemany (no RETURNING) takes no parameter after VALUES
    one: ColumnElement[int] = literal_column("1", Integer)
    row = {"key": bindparam("p_key"), "window_start": bindparam("p_window_start"), "count": one}
    statement: Any
    # each dialect's insert is imported for that dialect only (the Lambda on PostgreSQL or SQLite
    # never loads the MySQL dialect: issue 15, tests/forwarder/hosts/test_lambda_imports.py)
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        statement = mysql_insert(_hits).values(row).on_duplicate_key_update(count=_hits.c.count + one)
    else:
        insert: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = (
            insert(_hits)
            .values(row)
            .on_conflict_do_update(
                index_elements=[_hits.c.key, _hits.c.window_start], set_={"count": _hits.c.count + one}
            )
        )
    if returning:
        statement = statement.returning(_hits.c.key, _hits.c.window_start, _hits.c.count)
    return statement


def _parameters(windows: Sequence[Window]) -> list[dict[str, Any]]:
    return [{"p_key": window.key, "p_window_start": window.start} for window in windows]


def count(
    connection: Connection, limits: MailLimits, alias_id: int, user_id: int | None, now: datetime
) -> Window | None:
    """Count one message in each window of ``limits`` (one statement, two where the server has no
    ``RETURNING``): the first window it took over its limit, or None. Over a limit the caller must
    roll back: the counts were written."""
    windows = limits.windows(alias_id, user_id, now)
    if not windows:
        return None
    dialect = connection.dialect
    returning = bool(dialect.insert_returning)
    result = connection.execute(_upsert(dialect.name, returning), _parameters(windows))
    if returning:
        counts = {(key, start): hits for key, start, hits in result}
    else:
        counts = {
            (key, start): hits
            for key, start, hits in connection.execute(
                select(_hits.c.key, _hits.c.window_start, _hits.c.count).where(
                    tuple_(_hits.c.key, _hits.c.window_start).in_([(w.key, w.start) for w in windows])
                )
            )
        }
    for window in windows:  # the order of limits.windows(): the alias's before the user's, the hour first
        if counts[(window.key, window.start)] > window.limit:
            return window
    return None


def prune(connection: Connection, now: datetime) -> int:
    """Delete the mail-limit windows of days before ``now``'s (UTC); how many (the caller commits).

    Every window still counting at ``now`` (this hour's, this day's) started today, so only
    ended windows go. Run by the scheduled job (forwarder/ops/domain_recheck.py, every six hours on
    AWS and on the EC2 box), never per message."""
    return int(connection.execute(_PAST_WINDOWS, {"p_before": window_start(now, "day")}).rowcount)
