"""Engine and session construction with per-backend settings applied.

Always create engines through :func:`make_engine`: SQLite in particular does
not enforce foreign keys (and so none of the ON DELETE rules) unless every
connection enables them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

#: Milliseconds a SQLite connection waits for a competing writer's lock.
SQLITE_BUSY_TIMEOUT_MS = 5000


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
    * Server databases: ``pool_pre_ping=True`` unless given.

    Extra keyword arguments are passed to :func:`sqlalchemy.create_engine`.
    Nothing connects until the engine is first used.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb"):
        parsed = _with_utf8mb4(parsed)
    if backend != "sqlite":
        kw.setdefault("pool_pre_ping", True)
    engine = create_engine(parsed, **kw)
    if backend == "sqlite":
        _install_sqlite_pragmas(engine, wal=_is_sqlite_file(parsed))
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine``.

    ``expire_on_commit=False``: objects stay readable after commit (e.g. when
    a request handler commits and then renders them), at the price of
    possibly stale attributes; call ``session.refresh()`` when that matters.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)
