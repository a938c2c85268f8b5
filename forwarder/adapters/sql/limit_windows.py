"""The SQL side of the mail limits (forwarder/flows/mail_limits.py): counting a message in the windows
of the ``rate_limit_hits`` table, atomically, within a claim's transaction.

Each window is one row (key, window start, count). A message is counted with a conditional
``UPDATE ... SET count = count + 1 WHERE count < limit``; a window without a row yet is opened by
:func:`open_window`, in a transaction of its own, and the claim counts again.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from forwarder.flows.mail_limits import MailLimits, Window
from models import Alias, RateLimitHit

# mypy sees a mapped class's __table__ as a FromClause; it is a Table
_aliases = cast(Table, Alias.__table__)
_hits = cast(Table, RateLimitHit.__table__)

_OWNER = select(_aliases.c.user_id).where(_aliases.c.id == bindparam("p_alias_id"))

_WINDOW = and_(_hits.c.key == bindparam("p_key"), _hits.c.window_start == bindparam("p_start"))

#: One more message in a limit's window, atomically within the limit (rowcount 0: the window is
#: full, or it has no row yet).
_COUNT_IN_WINDOW = update(_hits).where(_WINDOW, _hits.c.count < bindparam("p_limit")).values(count=_hits.c.count + 1)

#: A window's count, read locked: the latest one, even under MariaDB's REPEATABLE READ snapshot.
_WINDOW_COUNT = select(_hits.c.count).where(_WINDOW).with_for_update()

_OPEN_WINDOW = insert(_hits)

#: A key's past windows, deleted as it opens a new one: each key keeps at most its latest window.
_PAST_WINDOWS = delete(_hits).where(_hits.c.key == bindparam("p_key"), _hits.c.window_start < bindparam("p_start"))


def count(
    connection: Connection, limits: MailLimits, alias_id: int, now: datetime
) -> tuple[Window | None, list[Window]]:
    """Count one message in each window of ``limits``: the first full window, and the windows
    without a row yet (the caller opens them and counts again)."""
    if not limits.any:
        return None, []
    user_id = connection.execute(_OWNER, {"p_alias_id": alias_id}).scalar() if limits.per_user else None
    missing = []
    for window in limits.windows(alias_id, user_id, now):
        where = {"p_key": window.key, "p_start": window.start, "p_limit": window.limit}
        if connection.execute(_COUNT_IN_WINDOW, where).rowcount == 1:
            continue
        found = connection.execute(_WINDOW_COUNT, where).scalar()
        if found is None:
            missing.append(window)
        # under the lock, a window opened since the update (READ COMMITTED) counts this time
        elif found >= window.limit or connection.execute(_COUNT_IN_WINDOW, where).rowcount != 1:
            return window, []
    return None, missing


def open_window(connection: Connection, window: Window) -> None:
    """Insert the window's row at 0 and commit.

    Not inside the claim's transaction: on MariaDB (REPEATABLE READ) the UPDATE that found no row
    holds a gap lock, and two claims both inserting the same new window then deadlock. A window
    another claim opened first is an IntegrityError, which is fine: it exists. Whoever opens a
    window deletes the key's past ones, so a busy alias keeps one row per limit.
    """
    try:
        connection.execute(_OPEN_WINDOW, {"key": window.key, "window_start": window.start, "count": 0})
    except IntegrityError:
        connection.rollback()
        return
    connection.execute(_PAST_WINDOWS, {"p_key": window.key, "p_start": window.start})
    connection.commit()
