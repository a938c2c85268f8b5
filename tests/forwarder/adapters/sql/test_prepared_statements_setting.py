"""OTHERMAIL_DATABASE_PREPARED_STATEMENTS (issue 15 review, finding 1): psycopg prepares the hot
path's statements on the server from their second run on a connection, which a transaction-pooling
proxy (RDS Proxy pins the session; PgBouncer in transaction mode) cannot follow; ``false`` turns
them off. Checked on a real PostgreSQL through the runtime's engine, as the forwarder makes it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from forwarder.runtime import Runtime
from forwarder.settings import Settings
from tests.conftest import fresh_database


def _prepared_after_three_runs(environ: dict[str, str]) -> list[str]:
    runtime = Runtime.build(Settings.from_env(environ))
    try:
        with runtime.engine.connect() as connection:
            for _ in range(3):
                connection.execute(text("SELECT count(*) FROM aliases WHERE id = :id"), {"id": 1}).scalar()
            return list(connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())
    finally:
        runtime.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(("value", "prepared"), [(None, True), ("true", True), ("false", False)])
def test_prepared_statements_follow_the_setting(value: str | None, prepared: bool) -> None:
    with fresh_database("postgresql", migrated=True) as url:
        environ = {"OTHERMAIL_DATABASE_URL": url}
        if value is not None:
            environ["OTHERMAIL_DATABASE_PREPARED_STATEMENTS"] = value
        statements = _prepared_after_three_runs(environ)
    assert any("FROM aliases" in s for s in statements) is prepared, statements
