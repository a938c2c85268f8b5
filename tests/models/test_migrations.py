"""The migrations build exactly the models' schema, and tear it down again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import BigInteger, Index, MetaData, String, inspect

from migrations import current, downgrade, upgrade
from models import Base, make_engine

VERSION_TABLE = "alembic_version"


def schema_diff(url: str, metadata: MetaData = Base.metadata) -> list[Any]:
    """Alembic's autogenerate diff between the database and ``metadata``.

    Types are compared too, with no noise to filter: alembic already equates
    MariaDB's TINYINT(1) with Boolean and ignores integer display widths.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


#: Types MariaDB reflects differently from how they were declared although they
#: are the same: default integer display widths, and BOOL (= TINYINT(1)).
MARIADB_REFLECTED_ALIASES = {"INTEGER(11)": "INTEGER", "BIGINT(20)": "BIGINT", "TINYINT(1)": "BOOL"}


def strict_type_mismatches(
    url: str, metadata: MetaData = Base.metadata
) -> list[tuple[str, str, str, str]]:
    """Columns whose reflected DDL type differs from the models' compiled type.

    Complements ``compare_metadata``, which deliberately ignores parameters
    present on only one side, so it would miss e.g. a migration creating
    DATETIME where the models need DATETIME(6) on MariaDB.
    """
    engine = make_engine(url)
    try:
        dialect = engine.dialect
        inspector = inspect(engine)
        aliases = MARIADB_REFLECTED_ALIASES if dialect.name in ("mysql", "mariadb") else {}
        mismatches = []
        for table in metadata.sorted_tables:
            for reflected in inspector.get_columns(table.name):
                column = table.c[reflected["name"]]
                got = dialect.type_compiler.process(reflected["type"]).upper()
                want = dialect.type_compiler.process(column.type.dialect_impl(dialect)).upper()
                if aliases.get(got, got) != want:
                    mismatches.append((table.name, column.name, got, want))
        return mismatches
    finally:
        engine.dispose()


def app_tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {VERSION_TABLE}
    finally:
        engine.dispose()


def test_upgrade_matches_models_downgrade_removes_all(database_url: str) -> None:
    assert current(database_url) is None
    assert app_tables(database_url) == set()

    upgrade(database_url)
    assert current(database_url) == "0001"
    assert app_tables(database_url) == set(Base.metadata.tables)
    assert schema_diff(database_url) == []
    assert strict_type_mismatches(database_url) == []

    downgrade(database_url)
    assert current(database_url) is None
    assert app_tables(database_url) == set()

    upgrade(database_url)
    assert current(database_url) == "0001"
    assert schema_diff(database_url) == []
    assert strict_type_mismatches(database_url) == []


def test_schema_diff_detects_drift(migrated_url: str) -> None:
    """Guards the test above: the comparison really sees type and index changes."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    deliveries = drifted.tables["deliveries"]
    deliveries.c.subject.type = String(100)
    deliveries.c.destination_key.type = BigInteger()
    Index("ix_deliveries_outcome", deliveries.c.outcome)

    diff = schema_diff(migrated_url, drifted)

    modified = {entry[0][3] for entry in diff if isinstance(entry, list)}
    assert {"subject", "destination_key"} <= modified
    added = {
        entry[1].name for entry in diff if isinstance(entry, tuple) and entry[0] == "add_index"
    }
    assert added == {"ix_deliveries_outcome"}

    mismatched = {(t, c) for t, c, _got, _want in strict_type_mismatches(migrated_url, drifted)}
    assert mismatched == {("deliveries", "subject"), ("deliveries", "destination_key")}


def test_constraint_names_follow_convention(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = inspect(engine)
        uniques = {uc["name"] for uc in inspector.get_unique_constraints("deliveries")}
        foreign_keys = {fk["name"] for fk in inspector.get_foreign_keys("deliveries")}
        indexes = {ix["name"] for ix in inspector.get_indexes("deliveries")}
    finally:
        engine.dispose()
    assert "uq_deliveries_inbound_message_id_recipient_destination_key" in uniques
    assert foreign_keys == {
        "fk_deliveries_alias_id_aliases",
        "fk_deliveries_destination_id_destinations",
    }
    assert {"ix_deliveries_alias_id_created_at", "ix_deliveries_destination_id"} <= indexes
