"""Migrated databases copied from a template, so Alembic runs once per backend per session.

Under pytest-xdist every worker is its own session with its own templates. Tests of the
migrations themselves (tests/models/test_migrations.py) keep calling ``migrations.upgrade`` /
``downgrade`` on empty databases; everything else that wants "an empty database at head" calls
:func:`migrate` (or uses the ``migrated_url`` / ``session`` fixtures).

- SQLite: the template is a file; a copy is made with SQLite's backup API (consistent even for
  a WAL database).
- PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` a database migrated once.
- MariaDB has no template databases; :func:`migrate` runs the upgrade there.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import make_url

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


def postgresql_template() -> str | None:
    """The PostgreSQL template database's name, or None outside a test session."""
    return _templates.server("postgresql") if _templates is not None else None


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
    if (_templates is None or path is None or parsed.database == ":memory:" or parsed.query
            or (path.exists() and path.stat().st_size > 0)):
        migrations.upgrade(url)
        return
    copy_sqlite_template(path)
