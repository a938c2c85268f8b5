"""What SQL written with SQLAlchemy Core needs of the schema's conventions, without the ORM: the
clock (:func:`utcnow`), the datetime column type (:class:`UTCDateTime`), the big primary key
(:data:`BigIntId`) and the stored form of an address (:func:`normalize_email`).

Importing this module (or ``models.limits``, or ``models.engine``) loads SQLAlchemy Core only:
``models/__init__`` loads the models, and with them ``sqlalchemy.orm``, on first use of one of its
own names. So the forwarder's hot path, whose Lambda cold start pays for every import (issue 15),
can use these without the ORM. ``models.base`` and ``models.users`` re-export them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from models.limits import EMAIL_MAX_LENGTH

#: Primary-key type for large, append-only tables (the delivery log).
#: SQLite only auto-increments a column declared exactly ``INTEGER PRIMARY
#: KEY``, so BIGINT is used everywhere except there.
BigIntId: Final[TypeEngine[int]] = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def normalize_email(value: str) -> str:
    """Return ``value`` stripped and lowercased, the form addresses are stored in.

    Lowercasing the whole address (local part included) is deliberate: the
    unique constraints on stored addresses are case-sensitive on PostgreSQL
    and SQLite, so storing one canonical form is what makes uniqueness
    case-insensitive on every backend.

    Raises ``ValueError`` if the result is not plausibly an address.
    """
    if not isinstance(value, str):
        raise TypeError(f"email address must be a str, got {type(value).__name__}")
    normalized = value.strip().lower()
    local, at, domain = normalized.rpartition("@")
    if not (local and at and domain):
        raise ValueError(f"not an email address: {value!r}")
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise ValueError(f"email address longer than {EMAIL_MAX_LENGTH} characters")
    return normalized


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime column stored as naive UTC and returned as aware UTC.

    * Writes require timezone-aware datetimes (any zone; converted to UTC).
      Naive datetimes are rejected, because whether they mean local time or
      UTC is ambiguous and silently guessing corrupts timestamps.
    * Reads always return ``tzinfo=UTC``.
    * The column is a plain ``TIMESTAMP WITHOUT TIME ZONE`` / ``DATETIME`` so
      the stored value never depends on a session time zone.  On MariaDB/MySQL
      it is ``DATETIME(6)``: the default ``DATETIME`` drops microseconds.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            # imported here, not with the models: only a MySQL/MariaDB engine loads its dialect
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to a UTCDateTime column; "
                "pass a timezone-aware datetime (e.g. models.utcnow())"
            )
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
