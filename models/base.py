"""Declarative base, shared column types and helpers for every model.

Everything here is portable across SQLite, PostgreSQL and MariaDB/MySQL; the
few dialect differences are handled explicitly and explained where they occur.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import MetaData, event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapper
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import DDLCompiler

# defined without the ORM (models/columns.py), for SQL Core code; re-exported from here
from models.columns import BigIntId, UTCDateTime, utcnow

__all__ = [
    "MYSQL_OPTIONS",
    "MYSQL_OPTIONS_INFO",
    "MYSQL_TABLE_OPTIONS",
    "NAMING_CONVENTION",
    "Base",
    "BigIntId",
    "UTCDateTime",
    "utcnow",
]

#: Deterministic constraint/index names, so that Alembic migrations name
#: things the same way on every backend and can later drop/alter them by name
#: (SQLite batch mode in particular needs named constraints).  All generated
#: names stay below PostgreSQL's 63-character identifier limit.
NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Table options for MariaDB/MySQL (ignored by other dialects).
#:
#: ``utf8mb4_bin`` instead of the server default ``utf8mb4_general_ci``: the
#: default collation is case- *and accent*-insensitive, which would make the
#: unique constraints behave differently from PostgreSQL/SQLite (e.g. aliases
#: ``jose@`` and ``josé@`` would collide, and two Message-IDs differing only in
#: case would be treated as the same delivery).  Case-insensitivity of
#: addresses is instead enforced everywhere by storing them lowercase.
MYSQL_OPTIONS: Final[dict[str, str]] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

#: The key of a table's ``info`` that holds its :data:`MYSQL_OPTIONS`.
MYSQL_OPTIONS_INFO: Final = "othermail_mysql_options"

#: What every table passes to ``Table`` (in ``__table_args__``): the MySQL options, kept in the
#: table's ``info`` rather than given as ``mysql_*`` keywords. SQLAlchemy validates ``mysql_*``
#: keywords when the table is defined by importing the whole MySQL dialect (36 ms), which the
#: forwarder Lambda on PostgreSQL or SQLite never uses (issue 15); :func:`_create_table_on_mysql`
#: hands them to the MySQL dialect when it compiles a CREATE TABLE, so the DDL is the same as with
#: the keywords (tests/models/test_lazy_dialects.py). Migrations spell their options out themselves.
MYSQL_TABLE_OPTIONS: Final[dict[str, Any]] = {"info": {MYSQL_OPTIONS_INFO: MYSQL_OPTIONS}}


@compiles(CreateTable, "mysql")
@compiles(CreateTable, "mariadb")
def _create_table_on_mysql(create: CreateTable, compiler: DDLCompiler, **kw: Any) -> str:
    """CREATE TABLE on MariaDB/MySQL, with the table's :data:`MYSQL_OPTIONS` as its ``mysql_*``
    dialect keywords (set once; the MySQL dialect is loaded by then, so nothing more is imported)."""
    table = create.element
    for key, value in table.info.get(MYSQL_OPTIONS_INFO, {}).items():
        table.kwargs.setdefault(key, value)
    return compiler.visit_create_table(create, **kw)


class Base(DeclarativeBase):
    """Declarative base of all othermail models (``Base.metadata`` is the schema)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@event.listens_for(Mapper, "before_configured")
def _load_every_model() -> None:
    """Every model is defined before the ORM configures any: ``models/__init__`` loads them on
    first use of one of its names, so code that imported one module (``from models.users import
    User``) would otherwise meet relationships whose targets were never imported."""
    from models import load_all

    load_all()
