"""Declarative base, shared column types and helpers for every model.

Everything here is portable across SQLite, PostgreSQL and MariaDB/MySQL; the
few dialect differences are handled explicitly and explained where they occur.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapper

# defined without the ORM (models/columns.py), for SQL Core code; re-exported from here
from models.columns import BigIntId, UTCDateTime, utcnow

# the schema's conventions and its one MetaData live with the Core tables (models/tables.py)
from models.tables import (
    MYSQL_OPTIONS,
    MYSQL_OPTIONS_INFO,
    MYSQL_TABLE_OPTIONS,
    NAMING_CONVENTION,
    metadata,
)

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


class Base(DeclarativeBase):
    """Declarative base of all othermail models (``Base.metadata`` is the schema)."""

    metadata = metadata


@event.listens_for(Mapper, "before_configured")
def _load_every_model() -> None:
    """Every model is defined before the ORM configures any: ``models/__init__`` loads them on
    first use of one of its names, so code that imported one module (``from models.users import
    User``) would otherwise meet relationships whose targets were never imported."""
    from models import load_all

    load_all()
