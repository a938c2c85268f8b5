"""What every SQL adapter of the forwarder does with its pooled connections: database errors as the
retryable :class:`DatabaseUnavailable`, and a transaction run once more on a new connection when the
pooled one turns out dead.

The pool pings only connections that sat idle (models/engine.py), not every checkout, so the first
statement of a transaction may meet a connection the server closed (a restart, a failover, an idle
timeout). A transaction not committed is lost with its connection, so running its statements again
on a new one does nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from forwarder.errors import DatabaseUnavailable

T = TypeVar("T")


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


def again_if_dead(connection: Connection, work: Callable[[Connection], T]) -> T:
    """Run ``work``, the statements of a transaction before its commit, once more on a new
    connection if the pooled one turns out dead. A second failure raises (under
    :func:`database_errors`, :class:`DatabaseUnavailable`). ``work`` reads its results in full (a
    result left open would be lost with its connection)."""
    try:
        return work(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    connection.rollback()  # the Connection takes a new DBAPI connection from the pool
    return work(connection)


def transactional(connection: Connection) -> None:
    """Make a connection opened in autocommit (PostgreSQL, one statement per step) transactional
    again: the statements that follow are one transaction, committed or rolled back together."""
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        connection.commit()  # ends SQLAlchemy's own record of a transaction; nothing is sent
        connection.execution_options(isolation_level=connection.default_isolation_level)
