"""Engine and session construction with per-backend settings applied.

Always create engines through :func:`make_engine`: SQLite in particular does
not enforce foreign keys (and so none of the ON DELETE rules) unless every
connection enables them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Engine, create_engine, event, exc, make_url

if TYPE_CHECKING:
    # imported by make_session_factory: an engine alone (SQL Core) needs no ORM
    from sqlalchemy.orm import Session, sessionmaker

#: Milliseconds a SQLite connection waits for a competing writer's lock.
SQLITE_BUSY_TIMEOUT_MS = 5000

#: Seconds a server connection is used before the pool replaces it (``pool_recycle``): below the
#: idle timeouts that close connections behind the pool's back (RDS Proxy's and a NAT gateway's,
#: 350 s; MariaDB's ``wait_timeout``), so a connection is not found dead for being old.
POOL_RECYCLE_SECONDS = 300

#: A connection that sat in the pool longer than this is pinged when it is checked out (a Lambda
#: container thawed, a quiet web app); one checked in moments ago is not. ``pool_pre_ping`` pinged
#: every checkout, one round trip per transaction; the forwarder's transactions run their first
#: statement again on a new connection instead (forwarder/adapters/sql/connections.py).
PING_AFTER_IDLE_SECONDS = 30.0

#: psycopg prepares a statement on the server once a connection has run it this many times, then
#: only binds and executes it: the hot path's few statements are planned once per connection.
PREPARE_THRESHOLD = 2

_CHECKED_IN = "othermail.checked_in"


def _is_sqlite_file(url: URL) -> bool:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return False
    return not database.startswith("file::memory:")


def _install_sqlite_pragmas(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                # Readers no longer block the writer and vice versa.  WAL is
                # persistent in the file; setting it again is a no-op.
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL stays consistent and survives a process crash; only a power
                # loss may forget the last commits. FULL costs an fsync per commit (about 6 ms
                # here), which caps the one-box forwarder near 30 messages per second.
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def _install_idle_ping(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only if it sat idle ``idle_seconds`` or more; a dead one
    is replaced (raising DisconnectionError makes the pool discard it and check out another)."""

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.pop(_CHECKED_IN, None)
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 - any failure of the ping means the connection is unusable
            alive = False
        if not alive:
            raise exc.DisconnectionError("the pooled connection was closed while it sat idle")


def _with_utf8mb4(url: URL) -> URL:
    charset = url.query.get("charset")
    if charset is None:
        return url.update_query_dict({"charset": "utf8mb4"})
    if charset != "utf8mb4":
        # utf8/utf8mb3 cannot store 4-byte characters (emoji in subjects).
        raise ValueError(f"MySQL/MariaDB URLs must use charset=utf8mb4, not {charset!r}")
    return url


def make_engine(url: str | URL, **kw: Any) -> Engine:
    """Create an :class:`~sqlalchemy.Engine` for ``url`` with othermail's settings.

    * SQLite: ``PRAGMA foreign_keys=ON`` and a busy timeout on every
      connection, plus WAL journal mode for file databases.
    * MySQL/MariaDB: ``charset=utf8mb4`` (added if absent, a conflicting
      charset raises ``ValueError``).
    * Server databases: connections recycled after :data:`POOL_RECYCLE_SECONDS`, and pinged at
      checkout only after :data:`PING_AFTER_IDLE_SECONDS` idle in the pool (no round trip per
      transaction; ``pool_pre_ping=True`` given pings every checkout as before).
    * PostgreSQL with psycopg: server-side prepared statements from a statement's
      :data:`PREPARE_THRESHOLD`-th run on a connection (``prepare_threshold`` in ``connect_args``
      or the URL's query wins; ``None`` turns them off, as a transaction-pooling proxy needs).

    Extra keyword arguments are passed to :func:`sqlalchemy.create_engine`.
    Nothing connects until the engine is first used.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb"):
        parsed = _with_utf8mb4(parsed)
    if backend == "postgresql" and parsed.get_driver_name() == "psycopg" and "prepare_threshold" not in parsed.query:
        kw["connect_args"] = {"prepare_threshold": PREPARE_THRESHOLD, **kw.get("connect_args", {})}
    idle_ping = backend != "sqlite" and not kw.get("pool_pre_ping") and kw.get("poolclass") is None
    if backend != "sqlite":
        kw.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    engine = create_engine(parsed, **kw)
    if backend == "sqlite":
        _install_sqlite_pragmas(engine, wal=_is_sqlite_file(parsed))
    if idle_ping:
        _install_idle_ping(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine``.

    ``expire_on_commit=False``: objects stay readable after commit (e.g. when
    a request handler commits and then renders them), at the price of
    possibly stale attributes; call ``session.refresh()`` when that matters.
    """
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(bind=engine, expire_on_commit=False)
