"""psycopg's rollback runs ``DEALLOCATE ALL`` and forgets the connection's prepared statements
(psycopg/_preparing.py): the forwarding hot path ends its transactions with a commit, or opens none,
so that the statements prepared on a pooled connection stay prepared (issue 15). Counted on
PostgreSQL over several two-way messages, each from a new sender (a first contact: the contacts are
inserted) and from a known one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg._connection_base
import psycopg._preparing
import pytest

from forwarder.core import Outcome, Verdicts
from forwarder.flows.forward import Inbound
from forwarder.runtime import Runtime
from tests.conftest import fresh_database
from tests.support.factories import two_way_runtime

pytestmark = pytest.mark.postgres

ALIAS = "shop-7hq2@othermail.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")


def message(n: int, sender: str) -> bytes:
    return (
        f"From: Shop <{sender}>\r\nTo: {ALIAS}\r\nSubject: order {n}\r\n"
        f"Message-ID: <order-{n}@shop.example>\r\n\r\nYour order.\r\n"
    ).encode()


@contextmanager
def counting(commands: Counter[str]) -> Iterator[None]:
    """psycopg's own commands (BEGIN, COMMIT, ROLLBACK, DEALLOCATE) and its PREPAREs, counted."""
    base = psycopg._connection_base.BaseConnection
    manager = psycopg._preparing.PrepareManager
    real_command, real_get = base._exec_command, manager.get

    def command(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        word = sql.split()[0] if isinstance(sql, bytes | str) else b"?"
        commands[word.decode() if isinstance(word, bytes) else word] += 1
        return real_command(self, sql, *args, **kwargs)

    def get(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_get(self, *args, **kwargs)
        if found[0] is psycopg._preparing.Prepare.SHOULD:
            commands["PREPARE"] += 1
        return found

    base._exec_command = command  # type: ignore[method-assign]
    manager.get = get  # type: ignore[method-assign]
    try:
        yield
    finally:
        base._exec_command = real_command  # type: ignore[method-assign]
        manager.get = real_get  # type: ignore[method-assign]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with fresh_database("postgresql", migrated=True) as url:
        made = two_way_runtime(tmp_path, ALIAS, "me@real.example", database_url=url)
        try:
            yield made
        finally:
            made.close()


def _forward(runtime: Runtime, n: int, sender: str) -> None:
    reports = runtime.forwarder.process(message(n, sender), Inbound(f"in-{n}", (ALIAS,), PASS, sender))
    assert [r.outcome for r in reports] == [Outcome.FORWARDED]


@pytest.mark.parametrize("first_contact", [True, False], ids=["new-senders", "known-sender"])
def test_the_hot_path_keeps_its_prepared_statements(runtime: Runtime, first_contact: bool) -> None:
    def sender(n: int) -> str:
        return f"buyer-{n}@shop.example" if first_contact else "jane@shop.example"

    for n in range(6):  # every statement of the path runs past the prepare threshold
        _forward(runtime, n, sender(n))
    commands: Counter[str] = Counter()
    with counting(commands):
        for n in range(6, 12):
            _forward(runtime, n, sender(n))
    assert commands["ROLLBACK"] == 0, commands
    assert commands["DEALLOCATE"] == 0, commands
    assert commands["PREPARE"] == 0, commands  # nothing prepared again


def test_the_rcpt_check_and_lookups_keep_the_prepared_statements(runtime: Runtime) -> None:
    """The SMTP listener asks the directory about each RCPT on the same pool: its reads end with a
    commit, so they do not drop the statements the forwarding path prepared on the connection."""
    for n in range(6):
        _forward(runtime, n, "jane@shop.example")
    directory = runtime.forwarder.directory
    commands: Counter[str] = Counter()
    with counting(commands):
        for n in range(6, 9):
            assert directory.exists(ALIAS)
            directory.address_status(ALIAS)
            directory.resolve(ALIAS)
            _forward(runtime, n, "jane@shop.example")
    assert commands["ROLLBACK"] == 0, commands
    assert commands["DEALLOCATE"] == 0, commands
