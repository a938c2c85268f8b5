"""Alembic migrations for othermail, driven programmatically (no alembic.ini).

Example::

    from migrations import upgrade
    upgrade("postgresql+psycopg://othermail@db/othermail")

New revisions can be generated with the alembic command API::

    from alembic import command
    command.revision(alembic_config(url), message="...", autogenerate=True,
                     rev_id="0002")
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool

from models.engine import make_engine

#: This package's folder; alembic finds env.py, script.py.mako and
#: versions/ here, also when installed as a regular package.
SCRIPT_LOCATION = Path(__file__).resolve().parent


def _escape(value: str) -> str:
    # Config main options go through configparser interpolation, so a "%"
    # (common in URL-encoded passwords) must be doubled.
    return value.replace("%", "%%")


def alembic_config(database_url: str) -> Config:
    """Return an alembic ``Config`` for this package's scripts and ``database_url``.

    env.py reads the URL from ``config.attributes["database_url"]`` (falling
    back to the ``sqlalchemy.url`` main option, which is also set).
    """
    config = Config()
    config.set_main_option("script_location", _escape(str(SCRIPT_LOCATION)))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", _escape(database_url))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at ``database_url`` to ``revision``, then make again any stored
    procedure its revisions made that is missing (:func:`restore_routines`)."""
    command.upgrade(alembic_config(database_url), revision)
    restore_routines(database_url)


def restore_routines(database_url: str) -> list[str]:
    """MariaDB and MySQL: create the stored procedures the applied revisions made (a revision module's
    ``ROUTINES``: name -> CREATE statement, a later revision's replacing an earlier one's) that the
    database lacks; their names. A dump made without ``--routines`` restores the tables and the
    revision but no procedure, and alembic then has nothing to run. Elsewhere: nothing."""
    engine = make_engine(database_url, poolclass=pool.NullPool)
    try:
        if engine.dialect.name not in ("mysql", "mariadb"):
            return []
        with engine.begin() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            if revision is None:
                return []
            wanted: dict[str, str] = {}
            applied = ScriptDirectory.from_config(alembic_config(database_url)).iterate_revisions(revision, "base")
            for script in reversed(list(applied)):  # base first: a later revision's wins
                wanted.update(getattr(script.module, "ROUTINES", {}))
            present = set(
                connection.exec_driver_sql(
                    "SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE()"
                ).scalars()
            )
            missing = sorted(set(wanted) - present)
            for name in missing:
                connection.exec_driver_sql(wanted[name])
        return missing
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    """Downgrade the database at ``database_url`` to ``revision`` (default: empty)."""
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """Return the database's current revision id, or None if unversioned/at base."""
    engine = make_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


__all__ = ["SCRIPT_LOCATION", "alembic_config", "current", "downgrade", "restore_routines", "upgrade"]
