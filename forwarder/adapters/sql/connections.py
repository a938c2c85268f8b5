"""What every SQL adapter of the forwarder does with its pooled connections: database errors as the
retryable :class:`DatabaseUnavailable`, and a transaction run once more on a new connection when the
pooled one turns out dead.

The pool pings only connections that sat idle (models/engine.py), not every checkout, so the first
statement of a transaction may meet a connection the server closed (a restart, a failover, an idle
timeout). A transaction not committed is lost with its connection, so running its statements again
on a new one does nothing twice.

One message's steps (its claim, then its settle after the sends) share one pooled connection
(:func:`one_connection`, :func:`connect`): one checkout per message. Only the connection is held
between steps, never a transaction (each step commits or rolls back before it ends), so nothing is
locked across a send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from sqlalchemy import Connection, Engine
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
    isolation = connection.get_execution_options().get("isolation_level")
    try:
        return work(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    connection.rollback()  # the Connection takes a new DBAPI connection from the pool
    if isolation is not None:  # which has the engine's, not this step's (autocommit on PostgreSQL)
        connection.execution_options(isolation_level=isolation)
    return work(connection)


def transactional(connection: Connection) -> None:
    """Make a connection opened in autocommit (PostgreSQL, one statement per step) transactional
    again: the statements that follow are one transaction, committed or rolled back together."""
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        connection.commit()  # ends SQLAlchemy's own record of a transaction; nothing is sent
        connection.execution_options(isolation_level=connection.default_isolation_level)


class _Held:
    """The connection one message's steps share on ``engine``, checked out by the first step."""

    __slots__ = ("busy", "connection", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None
        #: A step is using it: a step run meanwhile (nested) takes a connection of its own.
        self.busy = False


#: This thread's (or task's) message connection: a context variable, so a connection held on one
#: thread is never handed to another.
_held: ContextVar[_Held | None] = ContextVar("othermail_message_connection", default=None)


@contextmanager
def one_connection(engine: Engine) -> Iterator[None]:
    """Within it, the steps this thread runs on ``engine`` through :func:`connect` share one pooled
    connection, checked out at the first and returned at the end. Nested, the outer one holds."""
    if _held.get() is not None:
        yield
        return
    held = _Held(engine)
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        if held.connection is not None:
            held.connection.close()


@contextmanager
def connect(engine: Engine, autocommit: bool = False) -> Iterator[Connection]:
    """The connection of one step: the message's (:func:`one_connection`) when one is held for
    ``engine`` and free, else a new checkout. Left without ``commit()``, the step's transaction is
    rolled back either way. ``autocommit`` (PostgreSQL only): each statement commits on its own
    until :func:`transactional`."""
    held = _held.get()
    if held is None or held.engine is not engine or held.busy:
        with engine.connect() as connection:
            if autocommit:
                connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection
        return
    if held.connection is None:
        held.connection = engine.connect()
    connection = held.connection
    held.busy = True
    try:
        if autocommit:
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            transactional(connection)  # an earlier step's autocommit is not this one's
        yield connection
        if connection.in_transaction():  # what closing a connection does
            connection.rollback()
    except BaseException:
        held.connection = None  # a failed step's connection goes back (or away); the next takes another
        connection.close()
        raise
    finally:
        held.busy = False
