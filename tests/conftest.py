"""Database fixtures: a fresh, empty database per test on every backend.

``database_url`` is parametrized over SQLite, PostgreSQL and MariaDB, so a
test using it (or ``migrated_url`` / ``session``) runs three times.  The
server backends are required: if one is unreachable the test errors with
an explanation instead of being skipped.

Tests that need databases outside these fixtures (e.g. module-scoped ones)
can use :func:`fresh_database` and :data:`BACKEND_PARAMS` directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, pool
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from migrations import upgrade
from models import make_engine, make_session_factory

#: Environment variables overriding the admin URLs used to create and drop
#: the per-test databases (the user needs CREATE/DROP DATABASE rights).
ADMIN_URL_ENV = {
    "postgresql": "OTHERMAIL_TEST_POSTGRES_ADMIN_URL",
    "mariadb": "OTHERMAIL_TEST_MARIADB_ADMIN_URL",
}
DEFAULT_ADMIN_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
}

#: ``@pytest.mark.parametrize("backend", BACKEND_PARAMS)`` runs a test on all
#: backends with the markers pyproject registers (``-m "not mariadb"``...).
BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """Commands run in-process (CliRunner) set umask 077 for the one box's files; later tests
    (nginx, uWSGI reading files a test wrote) must not inherit it."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


def admin_url(backend: str) -> URL:
    """The admin URL for a server backend, from the environment or the default."""
    return make_url(os.environ.get(ADMIN_URL_ENV[backend]) or DEFAULT_ADMIN_URLS[backend])


def _run_admin_sql(engine: Engine, backend: str, sql: str) -> None:
    try:
        connection = engine.connect()
    except OperationalError as exc:
        error = exc.orig
    else:
        with connection:
            connection.exec_driver_sql(sql)
        return
    # Failing outside the except block keeps the report to this one message.
    url = engine.url.render_as_string(hide_password=True)
    pytest.fail(
        f"{backend} test server is not reachable at {url}: {error}\n"
        f"Start it, or set {ADMIN_URL_ENV[backend]} to an admin URL of a running server.",
        pytrace=False,
    )


@contextlib.contextmanager
def _server_database(backend: str) -> Iterator[str]:
    name = f"othermail_test_{secrets.token_hex(6)}"
    if backend == "postgresql":
        create = f'CREATE DATABASE "{name}"'
        # FORCE: a connection leaked by a failing test must not block cleanup.
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        drop = f"DROP DATABASE IF EXISTS `{name}`"
    url = admin_url(backend)
    admin = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        _run_admin_sql(admin, backend, create)
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            _run_admin_sql(admin, backend, drop)
    finally:
        admin.dispose()


@contextlib.contextmanager
def fresh_database(backend: str, directory: Path | None = None) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend``; drop it afterwards.

    ``backend`` is "sqlite", "postgresql" or "mariadb".  SQLite databases are
    files in ``directory`` (default: a temporary directory removed on exit).
    Dispose of any engine created on the URL before leaving the block.
    """
    if backend == "sqlite":
        if directory is not None:
            yield f"sqlite:///{directory / f'othermail_{secrets.token_hex(4)}.db'}"
            return
        with tempfile.TemporaryDirectory(prefix="othermail_test_") as tmp:
            yield f"sqlite:///{Path(tmp) / 'othermail.db'}"
        return
    if backend not in ADMIN_URL_ENV:
        raise ValueError(f"unknown backend {backend!r}")
    with _server_database(backend) as url:
        yield url


@pytest.fixture(params=BACKEND_PARAMS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (no tables) on each backend."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` after ``alembic upgrade head``."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def session(migrated_url: str) -> Iterator[Session]:
    """A Session on the migrated database, closed (and its engine disposed) after."""
    engine = make_engine(migrated_url)
    try:
        with make_session_factory(engine)() as db_session:
            yield db_session
    finally:
        engine.dispose()
