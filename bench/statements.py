"""Statements, transactions and pool checkouts one forwarded message costs the database, per backend.

    .venv/bin/python bench/statements.py [--backends sqlite,postgresql,mariadb]

The hot path of issue 15 point 4: a one-way alias with one verified destination, the settings'
default hourly and daily limits (alias and user), the whole forwarding flow (``Forwarder.process``
with a memory sender). Three messages are counted with SQLAlchemy events (``before_cursor_execute``,
``begin``, the pool's ``checkout``): the first message of a new day (none of its four rate-limit windows
has a row yet), the next one in that hour (steady state), and a redelivery of it (sends nothing).

Transactions are those the server saw: on PostgreSQL the BEGINs psycopg sends (SQLAlchemy's ``begin``
event fires on an autocommit connection too, where nothing is sent; ``--show`` also lists psycopg's
BEGIN, COMMIT and ROLLBACK, each one round trip), elsewhere SQLAlchemy's ``begin`` events.

Each server backend gets a database of its own, created and dropped by this script (admin URLs as
the tests take them: ``OTHERMAIL_TEST_POSTGRES_ADMIN_URL``, ``OTHERMAIL_TEST_MARIADB_ADMIN_URL``).
tests/forwarder/adapters/sql/test_statements_per_message.py holds the same counts to their bounds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, event, make_url, pool  # noqa: E402

ADMIN_URLS = {
    "postgresql": os.environ.get("OTHERMAIL_TEST_POSTGRES_ADMIN_URL")
    or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": os.environ.get("OTHERMAIL_TEST_MARIADB_ADMIN_URL") or "mysql+pymysql://root@127.0.0.1:3306/",
}
ALIAS = "shop-7hq2@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


class Counts:
    """What the engine did while it was listened to."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.transactions = 0
        self.checkouts = 0
        self.commands: list[str] = []

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def _begin(self, _conn: Any) -> None:
        self.transactions += 1

    @contextmanager
    def _psycopg_commands(self) -> Iterator[None]:
        """PostgreSQL: the BEGIN, COMMIT and ROLLBACK psycopg sends (tests/support/round_trips.py)."""
        import psycopg._connection_base as base

        real = base.BaseConnection._exec_command

        def sent(connection: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
            self.commands.append(command.split()[0].decode() if isinstance(command, bytes) else "(composed)")
            return real(connection, command, *args, **kwargs)

        # assignment too: mypy reads the generic method's type with a second self (psycopg 3, mypy 2)
        base.BaseConnection._exec_command = sent  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            base.BaseConnection._exec_command = real  # type: ignore[method-assign]

    @contextmanager
    def _pymysql_commands(self) -> Iterator[None]:
        """MariaDB: the COMMIT and ROLLBACK PyMySQL sends (each one round trip; it sends them even
        when the server has nothing to end, the pool's reset at check-in included)."""
        import pymysql.connections as connections

        real = {name: getattr(connections.Connection, name) for name in ("commit", "rollback")}

        def counting(name: str) -> Any:
            def sent(connection: Any) -> Any:
                self.commands.append(name.upper())
                return real[name](connection)

            return sent

        for name in real:
            setattr(connections.Connection, name, counting(name))
        try:
            yield
        finally:
            for name, method in real.items():
                setattr(connections.Connection, name, method)

    def _checkout(self, *_args: Any) -> None:
        self.checkouts += 1

    @contextmanager
    def listening(self) -> Iterator[Counts]:
        postgresql = self.engine.dialect.name == "postgresql"
        event.listen(self.engine, "before_cursor_execute", self._statement)
        if not postgresql:
            event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine.pool, "checkout", self._checkout)
        try:
            mariadb = self.engine.dialect.name == "mysql"
            with self._psycopg_commands() if postgresql else self._pymysql_commands() if mariadb else nullcontext():
                yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._statement)
            if not postgresql:
                event.remove(self.engine, "begin", self._begin)
            event.remove(self.engine.pool, "checkout", self._checkout)
        if postgresql:
            self.transactions = self.commands.count("BEGIN")

    def __str__(self) -> str:
        return f"{len(self.statements)} statements, {self.transactions} transactions, {self.checkouts} checkouts"


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A new empty database on ``backend``, dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/statements.db"
        return
    admin = create_engine(ADMIN_URLS[backend], isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = f"othermail_bench_{secrets.token_hex(4)}"
    quoted = f'"{name}"' if backend == "postgresql" else f"`{name}`"
    extra = "" if backend == "postgresql" else " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {quoted}{extra}")
    try:
        yield make_url(ADMIN_URLS[backend]).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {quoted}" + (" WITH (FORCE)" if backend == "postgresql" else "")
            )
        admin.dispose()


def measure(url: str) -> dict[str, Counts]:
    import migrations
    from forwarder.adapters.senders import MemorySender
    from forwarder.adapters.sql.directory import SqlDirectory
    from forwarder.core import Outcome, Policy
    from forwarder.flows.forward import Forwarder, Inbound
    from forwarder.settings import DEFAULT_MAIL_LIMITS
    from models import Alias, Destination, User, make_engine, make_session_factory

    migrations.upgrade(url)
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        now = [datetime(2030, 1, 2, 11, 30, tzinfo=UTC)]
        with sessions() as db:
            user = User(email="owner@example.org")
            db.add(user)
            db.flush()
            alias = Alias(address=ALIAS, user_id=user.id)
            alias.destinations.append(Destination(user_id=user.id, email="home@real.example", verified_at=now[0]))
            db.add(alias)
            db.commit()
        directory = SqlDirectory(sessions, clock=lambda: now[0], limits=DEFAULT_MAIL_LIMITS)
        forwarder = Forwarder(directory, MemorySender(), Policy(), lambda: now[0])
        forwarder.process(RAW, Inbound("warm-up", (ALIAS,)))  # the user domains are read once, then cached
        now[0] += timedelta(days=1)  # a new day: none of its four windows (hour, day; alias, user) has a row yet
        counts = {}
        for name, message_id in (("first of window", "m1"), ("steady", "m2"), ("redelivery", "m2")):
            with Counts(engine).listening() as counted:
                reports = forwarder.process(RAW, Inbound(message_id, (ALIAS,)))
            assert [r.outcome for r in reports] == [Outcome.FORWARDED], reports
            counts[name] = counted
        return counts
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--show", action="store_true", help="print each statement")
    parser.add_argument(
        "--record", metavar="PATH", help="merge the steady state into this measured.json (othermail cost)"
    )
    args = parser.parse_args()
    steady: dict[str, Counts] = {}
    print(f"{'backend':<11} {'message':<16} {'statements':>10} {'transactions':>12} {'checkouts':>9}")
    for backend in args.backends.split(","):
        with database(backend) as url:
            for name, counted in measure(url).items():
                if name == "steady":
                    steady[backend] = counted
                print(
                    f"{backend:<11} {name:<16} {len(counted.statements):>10} {counted.transactions:>12}"
                    f" {counted.checkouts:>9}"
                )
                if args.show:
                    driver = {"postgresql": "psycopg", "mariadb": "PyMySQL"}.get(backend)
                    if driver:  # each one more round trip
                        print(f"    {driver} sent besides: {' '.join(counted.commands) or 'nothing'}")
                    for statement in counted.statements:
                        print("    " + " ".join(statement.split())[:150])
    if args.record:  # the most of a server backend's steady state, each figure on its own (or SQLite's, alone)
        from forwarder.ops.measured import record

        servers = [c for b, c in steady.items() if b != "sqlite"] or [steady["sqlite"]]
        command = ".venv/bin/python bench/statements.py --backends " + args.backends
        record(Path(args.record), "statements_per_message", max(len(c.statements) for c in servers), command)
        record(Path(args.record), "transactions_per_message", max(c.transactions for c in servers), command)


if __name__ == "__main__":
    main()
