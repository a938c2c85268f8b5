"""An alias's state as a SQL condition, so a list filters in the database (the web list, the CLI).

The states are the ones the pages show (``web.services.aliases.status``), read from the same
columns with the same rules as :func:`forwarder.core.decide.expiry`:

- ``expired``: its time is up (``expires_at`` reached), or it had no mail for ``idle_days`` days
  (counted from the last mail, or its creation), or ``message_count`` reached ``max_messages``.
  An expired alias is expired whether or not it is switched on.
- ``disabled``: switched off (by its owner or the service) and not expired.
- ``active``: switched on and not expired: it forwards. Expiring aliases are active too.
- ``expiring``: active, with at least one limit (a time, idle days or a message count) not reached
  yet: it will expire unless extended or made permanent.

Deleted aliases are in no state here: callers leave them out (``deleted_at IS NULL``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from models import Alias
from models.base import UTCDateTime

STATES = ("active", "expiring", "expired", "disabled")


class plus_days(FunctionElement[datetime]):  # noqa: N801 (a SQL function's name)
    """``when + days`` days, for a datetime column and an integer column; each backend spells it."""

    type = UTCDateTime()
    name = "plus_days"
    inherit_cache = True


def _arguments(element: plus_days, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    when, days = list(element.clauses)
    return compiler.process(when, **kw), compiler.process(days, **kw)


@compiles(plus_days)
def _plus_days_postgresql(element: plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    when, days = _arguments(element, compiler, **kw)
    return f"({when} + make_interval(days => {days}))"


@compiles(plus_days, "mysql")
@compiles(plus_days, "mariadb")
def _plus_days_mysql(element: plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    when, days = _arguments(element, compiler, **kw)
    return f"DATE_ADD({when}, INTERVAL {days} DAY)"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores a SQLite datetime as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime gives the same
    # text to the millisecond, so the two compare as text (a shorter equal prefix sorts first)
    when, days = _arguments(element, compiler, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', {when}, '+' || {days} || ' days')"


def expired(now: datetime) -> ColumnElement[bool]:
    """The aliases expired at ``now``: by time, idleness or message count."""
    last_mail = func.coalesce(Alias.last_used_at, Alias.created_at)
    return or_(
        and_(Alias.expires_at.is_not(None), Alias.expires_at <= now),
        and_(Alias.idle_days.is_not(None), plus_days(last_mail, Alias.idle_days) <= now),
        and_(Alias.max_messages.is_not(None), Alias.message_count >= Alias.max_messages),
    )


def has_limit() -> ColumnElement[bool]:
    return or_(Alias.expires_at.is_not(None), Alias.idle_days.is_not(None), Alias.max_messages.is_not(None))


def in_state(state: str, now: datetime) -> ColumnElement[bool]:
    """The condition for aliases in ``state`` (one of :data:`STATES`) at ``now``."""
    if state == "expired":
        return expired(now)
    live = not_(expired(now))  # every part is false, never NULL: the IS NOT NULL guards
    if state == "disabled":
        return and_(Alias.enabled.is_(False), live)
    if state == "active":
        return and_(Alias.enabled.is_(True), live)
    if state == "expiring":
        return and_(Alias.enabled.is_(True), live, has_limit())
    raise ValueError(f"unknown alias state {state!r}; one of {', '.join(STATES)}")
