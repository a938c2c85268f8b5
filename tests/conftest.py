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

from models import make_engine, make_session_factory
from tests.support.databases import Templates, clone_mariadb, install, migrate, server_template
from tests.support.passwords import CHEAP_HASHER
from web import security

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


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2 with minimal parameters in tests only (tests/support/passwords.py)."""
    previous = security.use_password_hasher(CHEAP_HASHER)
    yield
    security.use_password_hasher(previous)


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


def _admin_sql(backend: str, sql: str) -> None:
    admin = create_engine(
        admin_url(backend),
        isolation_level="AUTOCOMMIT",
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        _run_admin_sql(admin, backend, sql)
    finally:
        admin.dispose()


def _create_server_database(backend: str, template: str | None = None) -> str:
    """Create a database (a copy of PostgreSQL database ``template`` if given); return its URL."""
    name = f"othermail_test_{secrets.token_hex(6)}"
    if backend == "postgresql":
        _admin_sql(backend, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    else:
        assert template is None, "MariaDB has no template databases"
        _admin_sql(backend, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return admin_url(backend).set(database=name).render_as_string(hide_password=False)


def _drop_server_database(backend: str, name: str) -> None:
    if backend == "postgresql":
        # FORCE: a connection leaked by a failing test must not block cleanup.
        _admin_sql(backend, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        _admin_sql(backend, f"DROP DATABASE IF EXISTS `{name}`")


@contextlib.contextmanager
def _server_database(backend: str, template: str | None = None) -> Iterator[str]:
    url = _create_server_database(backend, template)
    try:
        yield url
    finally:
        _drop_server_database(backend, make_url(url).database or "")


@contextlib.contextmanager
def fresh_database(backend: str, directory: Path | None = None, *, migrated: bool = False) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend``; drop it afterwards.

    ``backend`` is "sqlite", "postgresql" or "mariadb".  SQLite databases are
    files in ``directory`` (default: a temporary directory removed on exit).
    With ``migrated`` the database is at the head revision, copied from the session's
    template where the backend has one (tests/support/databases.py).
    Dispose of any engine created on the URL before leaving the block.
    """
    if backend == "sqlite":
        if directory is not None:
            url = f"sqlite:///{directory / f'othermail_{secrets.token_hex(4)}.db'}"
            if migrated:
                migrate(url)
            yield url
            return
        with tempfile.TemporaryDirectory(prefix="othermail_test_") as tmp:
            url = f"sqlite:///{Path(tmp) / 'othermail.db'}"
            if migrated:
                migrate(url)
            yield url
        return
    if backend not in ADMIN_URL_ENV:
        raise ValueError(f"unknown backend {backend!r}")
    template = server_template(backend) if migrated else None
    with _server_database(backend, template if backend == "postgresql" else None) as url:
        if migrated and template is None:
            migrate(url)
        elif migrated and backend == "mariadb":
            clone_mariadb(template, url)
        yield url


@pytest.fixture(autouse=True, scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Alembic runs once per backend per session (per xdist worker): see tests/support/databases.py."""
    templates = Templates(tmp_path_factory.mktemp("templates"), _create_server_database)
    install(templates)
    yield
    install(None)
    for backend, name in templates.server_names().items():
        _drop_server_database(backend, name)


@pytest.fixture(params=BACKEND_PARAMS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (no tables) on each backend; at the head revision
    when the test uses ``migrated_url`` (which is this same database)."""
    migrated = "migrated_url" in request.fixturenames
    with fresh_database(request.param, tmp_path, migrated=migrated) as url:
        yield url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` at the head revision (copied from the session's template where it can be)."""
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
