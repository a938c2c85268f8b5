"""The pool pings only connections that sat idle (models/engine.py), so a transaction of the hot path
may meet a pooled connection the server killed (a restart, a failover): its first statement is run
once more on a new connection (forwarder/adapters/sql/connections.py). The directory did so; these
are the other reads of the hot path (issue 15 review, finding 3): the two-way forward's
``prepare_forward``, the reply path's ``by_reverse``, and the refresh of the user domains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event

from forwarder.adapters.sealing import Sealer
from forwarder.adapters.sql.connections import again_if_dead, connect
from forwarder.adapters.sql.contacts import SqlContactBook
from forwarder.adapters.sql.directory import SqlDirectory
from models import Alias, User, UserDomain, make_engine, make_session_factory
from tests.conftest import _admin_sql, fresh_database
from tests.forwarder.adapters.sql.test_statements_per_message import SERVERS, _kill

NOW = datetime(2030, 1, 2, 11, 30, tzinfo=UTC)
ALIAS = "shop@othermail.example"


@pytest.fixture(params=SERVERS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with fresh_database(request.param, migrated=True) as url:
        made = make_engine(url)
        with make_session_factory(made)() as db:
            user = User(email="owner@example.org")
            db.add(user)
            db.flush()
            db.add(Alias(address=ALIAS, user_id=user.id))
            db.add(
                UserDomain(
                    user_id=user.id,
                    name="custom.example",
                    status="verified",
                    owned_name="custom.example",
                    verification_token="t" * 32,
                )
            )
            db.commit()
        try:
            yield made
        finally:
            made.dispose()


def _after_a_kill(engine: Engine, call: Callable[[], Any]) -> tuple[Any, Any]:
    """``call()``, the pooled connection killed by the server, then ``call()`` again; both results,
    and the second made on exactly one new connection."""
    before = call()
    _kill(engine.dialect.name if engine.dialect.name == "postgresql" else "mariadb", engine)
    reconnects: list[object] = []
    event.listen(engine.pool, "connect", lambda *args: reconnects.append(args))
    after = call()
    assert len(reconnects) == 1
    return before, after


def test_prepare_forward_runs_again_on_a_new_connection(engine: Engine) -> None:
    book = SqlContactBook(engine, Sealer([("k1", bytes(range(32)))]), clock=lambda: NOW)
    people = [("ann@mail.example", "Ann")]
    before, after = _after_a_kill(engine, lambda: book.prepare_forward(ALIAS, people, "ann@mail.example"))
    assert after is not None and after.contacts == before.contacts


def test_by_reverse_runs_again_on_a_new_connection(engine: Engine) -> None:
    book = SqlContactBook(engine, Sealer([("k1", bytes(range(32)))]), clock=lambda: NOW)
    with engine.connect() as connection:
        alias_id = connection.exec_driver_sql("SELECT id FROM aliases").scalar()
    reverse = book.contacts_for(alias_id, "othermail.example", [("ann@mail.example", "Ann")])["ann@mail.example"]
    before, after = _after_a_kill(engine, lambda: book.by_reverse(reverse))
    assert after is not None and after.address == before.address == "ann@mail.example"


def test_the_user_domains_refresh_runs_again_on_a_new_connection(engine: Engine) -> None:
    directory = SqlDirectory(engine, clock=lambda: NOW)

    def refreshed() -> tuple[str, ...]:
        directory.user_domains.invalidate()
        return directory.user_domain_names()

    assert _after_a_kill(engine, refreshed) == (("custom.example",), ("custom.example",))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_step_run_again_on_a_new_connection_keeps_its_autocommit(backend: str) -> None:
    """PostgreSQL's one-statement steps run in autocommit (no BEGIN or COMMIT round trip). The new
    connection SQLAlchemy took after a kill was not: its statement ran in a transaction that only
    the step's own commit ended (a helper's probe: ``autocommit False, INTRANS`` after the retry)."""
    with fresh_database(backend) as url:
        engine = make_engine(url)
        try:
            with connect(engine, autocommit=True) as connection:
                pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                _admin_sql(backend, f"SELECT pg_terminate_backend({pid})")
                seen: list[tuple[bool, str]] = []

                def work(again: Connection) -> None:
                    again.exec_driver_sql("SELECT 1").all()
                    raw = again.connection.dbapi_connection
                    seen.append((raw.autocommit, raw.info.transaction_status.name))  # type: ignore[union-attr]

                again_if_dead(connection, work)
                assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid  # a new one
                assert seen == [(True, "IDLE")]
        finally:
            engine.dispose()
