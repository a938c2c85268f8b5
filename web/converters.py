"""URL converters: every ``<int:...>`` in a route yields an id a database column can hold.

An id past the column's range is no row at all, yet reaching the query it is an ``OverflowError``
on SQLite and an out-of-range error on PostgreSQL: a 500. Here such an id becomes 0, which no row
has, so every view answers it as any unknown id: a 404 (the API's ``object_id`` alike). Refusing
the match instead is no better: werkzeug then answers a PATCH or DELETE with 405, because the
rule for GET of the same path matched before its value was converted.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

from web.api.common import MAX_ID

#: What an out-of-range id becomes: ids start at 1.
NO_ROW = 0


class BoundedIntConverter(IntegerConverter):
    """Werkzeug's ``int`` converter; a value over :data:`MAX_ID` becomes :data:`NO_ROW`."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else NO_ROW
