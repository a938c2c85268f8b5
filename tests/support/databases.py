"""Migrated databases copied from a template, so Alembic runs once per backend per session.

Under pytest-xdist every worker is its own session with its own templates. Tests of the
migrations themselves (tests/models/test_migrations.py) keep calling ``migrations.upgrade`` /
``downgrade`` on empty databases; everything else that wants "an empty database at head" calls
:func:`migrate` (or uses the ``migrated_url`` / ``session`` fixtures).

- SQLite: the template is a file; a copy is made with SQLite's backup API (consistent even for
  a WAL database).
- PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` a database migrated once.
- MariaDB has no template databases: :func:`clone_mariadb` recreates the migrated schema's
  tables from ``SHOW CREATE TABLE`` and copies their rows (alembic_version).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, make_url, pool

import migrations


class Templates:
    """The migrated template databases of one test session."""

    def __init__(self, directory: Path, make_server_database: Callable[[str], str]) -> None:
        self._directory = directory
        self._make_server_database = make_server_database
        self._sqlite: Path | None = None
        self._server: dict[str, str] = {}

    def sqlite(self) -> Path:
        if self._sqlite is None:
            path = self._directory / f"template_{secrets.token_hex(4)}.db"
            migrations.upgrade(f"sqlite:///{path}")
            self._sqlite = path
        return self._sqlite

    def server(self, backend: str) -> str:
        """The name of the migrated template database on ``backend`` (made on first use)."""
        if backend not in self._server:
            url = self._make_server_database(backend)
            migrations.upgrade(url)
            self._server[backend] = make_url(url).database or ""
        return self._server[backend]

    def server_names(self) -> dict[str, str]:
        return dict(self._server)


_templates: Templates | None = None


def install(templates: Templates | None) -> None:
    global _templates
    _templates = templates


def server_template(backend: str) -> str | None:
    """The migrated template database's name on ``backend``, or None outside a test session."""
    return _templates.server(backend) if _templates is not None else None


def clone_mariadb(template: str, url: str) -> None:
    """Make the empty MariaDB database at ``url`` a copy of database ``template`` (tables, rows,
    stored procedures).

    SHOW CREATE TABLE names a referenced table of the same database without its database, so
    the statements create the tables in the connection's database, ``url``'s."""
    engine = create_engine(url, poolclass=pool.NullPool)
    connection = engine.raw_connection()  # the driver's cursor: no %-interpolation of the DDL
    try:
        cursor = connection.cursor()
        cursor.execute("SET FOREIGN_KEY_CHECKS=0")
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " AND table_type = 'BASE TABLE' ORDER BY table_name",
            (template,),
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f"SHOW CREATE TABLE `{template}`.`{table}`")
            cursor.execute(cursor.fetchone()[1])
            cursor.execute(f"INSERT INTO `{table}` SELECT * FROM `{template}`.`{table}`")
        cursor.execute(
            "SELECT routine_name FROM information_schema.routines WHERE routine_schema = %s"
            " AND routine_type = 'PROCEDURE' ORDER BY routine_name",
            (template,),
        )
        for (procedure,) in cursor.fetchall():  # the migrations' stored procedures (0010)
            cursor.execute(f"SHOW CREATE PROCEDURE `{template}`.`{procedure}`")
            cursor.execute(cursor.fetchone()[2])
        cursor.execute("SET FOREIGN_KEY_CHECKS=1")
        connection.commit()
    finally:
        connection.close()
        engine.dispose()


def copy_sqlite_template(path: Path) -> None:
    """Write the migrated SQLite template to ``path`` (which must not hold a database yet)."""
    assert _templates is not None, "tests/conftest.py installs the templates"
    with sqlite3.connect(_templates.sqlite()) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()


def migrate(url: str) -> None:
    """Bring the empty database at ``url`` to the head revision, from a template where one exists."""
    parsed = make_url(url)
    path = Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
    if (
        _templates is None
        or path is None
        or parsed.database == ":memory:"
        or parsed.query
        or (path.exists() and path.stat().st_size > 0)
    ):
        migrations.upgrade(url)
        return
    copy_sqlite_template(path)
