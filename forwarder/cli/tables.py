"""What the list commands print: an aligned table for people, or JSON for scripts (``--json``).

Each command hands :func:`echo_rows` its rows (dicts of plain values) and its columns. The table
shows times to the minute in UTC, yes/no, and ``-`` for nothing; text a user typed (a token's name,
an address's local part) is printed with its control characters escaped, so a name cannot move a
terminal's cursor or hide a line. The JSON is a list of objects with every key of the rows: times
in ISO 8601 UTC (``2026-12-07T18:04:00Z``), nothing as ``null``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    #: numbers are right-aligned
    right: bool = False


def json_option(command: F) -> F:
    """The ``--json`` flag every list command takes."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print a JSON list of objects (for scripts) instead of a table."
    )(command)


def echo_rows(rows: Sequence[Row], columns: Sequence[Column], *, as_json: bool, empty: str) -> None:
    """Print ``rows`` as JSON or as a table of ``columns``; a table with no rows is the ``empty``
    sentence (on standard error: standard output stays empty)."""
    if as_json:
        click.echo(to_json(rows))
    elif rows:
        click.echo(table(rows, columns))
    else:
        click.echo(empty, err=True)


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([{key: _json_value(value) for key, value in row.items()} for row in rows], indent=2)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


def iso(value: datetime) -> str:
    """``2026-12-07T18:04:05Z``: a stored time (aware, or naive UTC from SQLite) in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """Columns two spaces apart, each as wide as its widest cell; no trailing spaces."""
    cells = [[column.title for column in columns]] + [[cell(row.get(column.key)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [
            text.rjust(width) if column.right else text.ljust(width)
            for text, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso(value)[:16].replace("T", " ")
    return printable(str(value))


def printable(text: str) -> str:
    """``text`` with control and format characters (escape, newline, bidi overrides) escaped."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char).startswith("C") else char
        for char in text
    )
