"""What psycopg sends besides statements, each one round trip: BEGIN, COMMIT, ROLLBACK (issue 15).

SQLAlchemy's ``begin`` event fires on an autocommit connection too, where nothing is sent; the tests
that count a message's transactions on PostgreSQL count the BEGINs psycopg sends instead
(bench/worker_profile.py counts them the same way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def psycopg_commands(sent: list[str]) -> Iterator[list[str]]:
    """Append to ``sent`` the first word of each command psycopg sends outside statements."""
    import psycopg._connection_base as base

    real = base.BaseConnection._exec_command

    def counted(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        word = command.split()[0] if isinstance(command, bytes) else b"(composed)"
        sent.append(word.decode())
        return real(self, command, *args, **kwargs)

    base.BaseConnection._exec_command = counted  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        base.BaseConnection._exec_command = real  # type: ignore[method-assign]
