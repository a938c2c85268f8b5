"""The migrated test databases come from a per-session template and equal a real upgrade (issue 13)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

import migrations
from models import make_engine
from tests.conftest import BACKEND_PARAMS, fresh_database
from tests.support import databases

HEAD = ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_current_head()


def _schema(path: Path) -> list[tuple[str, str, list[str]]]:
    """Every table and index with the lines of its SQL sorted: a batch migration on SQLite writes
    the constraints of a rebuilt table in an order that varies between runs of Alembic."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    connection.close()
    return [
        (kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())) for kind, name, sql in rows
    ]


def _no_upgrade(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(databases.migrations, "upgrade", lambda url, *a: calls.append(url))
    return calls


def test_a_migrated_sqlite_file_is_a_copy_of_the_template_equal_to_a_real_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real.db"
    migrations.upgrade(f"sqlite:///{real}")
    databases.migrate(f"sqlite:///{tmp_path / 'warm.db'}")  # makes the template if no test did yet
    calls = _no_upgrade(monkeypatch)
    copied = tmp_path / "copied.db"
    databases.migrate(f"sqlite:///{copied}")
    assert calls == []
    assert _schema(copied) == _schema(real) and _schema(copied) != []
    assert migrations.current(f"sqlite:///{copied}") == HEAD


def test_a_sqlite_file_that_already_holds_a_database_is_upgraded_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    migrations.upgrade(f"sqlite:///{path}", "0001")
    databases.migrate(f"sqlite:///{path}")
    assert migrations.current(f"sqlite:///{path}") == HEAD


def _reflected(url: str) -> dict[str, object]:
    """Every table's columns, keys, indexes and checks as the database reports them."""
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        return {
            table: (
                [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ],
                inspector.get_pk_constraint(table),
                sorted(map(repr, inspector.get_foreign_keys(table))),
                sorted(map(repr, inspector.get_indexes(table))),
                sorted(map(repr, inspector.get_unique_constraints(table))),
                sorted(map(repr, inspector.get_check_constraints(table))),
            )
            for table in sorted(inspector.get_table_names())
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_fresh_migrated_databases_are_at_head_and_equal_a_real_upgrade(backend: str) -> None:
    with fresh_database(backend) as plain:
        migrations.upgrade(plain)
        expected = _reflected(plain)
    with fresh_database(backend, migrated=True) as url:
        assert migrations.current(url) == HEAD
        reflected = _reflected(url)
    assert reflected == expected and "aliases" in reflected


@pytest.mark.parametrize("backend", [p for p in BACKEND_PARAMS if p.values[0] != "sqlite"])
def test_a_server_database_is_copied_from_the_template_without_running_alembic(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    databases.server_template(backend)  # made by the first test that wanted one, or now
    calls = _no_upgrade(monkeypatch)
    with fresh_database(backend, migrated=True) as url:
        assert migrations.current(url) == HEAD
    assert calls == []


def test_make_test_spreads_the_suite_over_the_cores_one_file_per_worker() -> None:
    """Issue 13: `make test` (what CI runs) uses pytest-xdist; every worker has its own templates
    (a session each) and server databases with random names, so the workers share nothing."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    [command] = [line.strip() for line in makefile.splitlines() if line.strip().startswith("$(BIN)/python -m pytest")]
    assert command.split()[3:] == ["-n", "auto", "--dist", "loadfile"]
