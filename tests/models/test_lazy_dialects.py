"""The models load no database dialect but the one in use (issue 15: the MySQL dialect cost the
PostgreSQL Lambda 36 ms at each cold start), and MariaDB still gets the same schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from models import Base, UTCDateTime
from models.base import MYSQL_OPTIONS, MYSQL_OPTIONS_INFO, NAMING_CONVENTION

ROOT = Path(__file__).resolve().parents[2]
MYSQL = "sqlalchemy.dialects.mysql"


def modules_after(code: str) -> list[str]:
    """The ``sqlalchemy.dialects.*`` modules loaded in a fresh interpreter after running ``code``."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if '.dialects.' in m)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "url",
    ["sqlite:///:memory:", "postgresql+psycopg://postgres@127.0.0.1:5432/unused"],
    ids=["sqlite", "postgresql"],
)
def test_models_and_their_ddl_on_another_database_never_load_the_mysql_dialect(url: str) -> None:
    """Importing the models, making an engine (nothing connects) and compiling every table's
    CREATE TABLE and a query with a UTCDateTime parameter for that engine's dialect."""
    loaded = modules_after(
        "import models\n"
        "from sqlalchemy import select\n"
        "from sqlalchemy.schema import CreateTable\n"
        f"engine = models.make_engine({url!r})\n"
        "for table in models.Base.metadata.sorted_tables:\n"
        "    str(CreateTable(table).compile(dialect=engine.dialect))\n"
        "str(select(models.Delivery).where(models.Delivery.created_at < models.utcnow()).compile(engine))\n"
    )
    assert loaded, "the check must see the dialect that is in use"
    assert not [m for m in loaded if m == MYSQL or m.startswith(MYSQL + ".")]


def test_importing_the_models_loads_no_dialect_at_all() -> None:
    assert modules_after("import models") == []


def old_style_copy(table_name: str) -> CreateTable:
    """The table as it was declared before: the MySQL options as ``mysql_*`` keywords (every
    table is copied, so that foreign keys find the tables they refer to)."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(metadata)
        copy.info.pop(MYSQL_OPTIONS_INFO)
        for key, value in MYSQL_OPTIONS.items():
            copy.kwargs[key] = value
    return CreateTable(metadata.tables[table_name])


@pytest.mark.parametrize("table_name", sorted(Base.metadata.tables))
def test_mysql_create_table_is_what_the_mysql_keywords_made(table_name: str) -> None:
    table = Base.metadata.tables[table_name]
    assert table.info[MYSQL_OPTIONS_INFO] == MYSQL_OPTIONS
    dialect = mysql.dialect()
    ddl = str(CreateTable(table).compile(dialect=dialect))
    before = str(old_style_copy(table_name).compile(dialect=dialect))
    # the same lines (a copied table may list its constraints in another order)
    assert sorted(line.rstrip(", ") for line in ddl.splitlines()) == sorted(
        line.rstrip(", ") for line in before.splitlines()
    )
    assert ddl.rstrip().endswith("ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin")


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()], ids=["postgresql", "sqlite"])
def test_other_databases_get_no_mysql_options(dialect: object) -> None:
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))  # type: ignore[arg-type]
        assert "ENGINE" not in ddl and "utf8mb4" not in ddl


def test_utc_datetime_keeps_microseconds_on_mysql_and_is_plain_elsewhere() -> None:
    column = UTCDateTime()
    assert str(column.dialect_impl(mysql.dialect()).compile(dialect=mysql.dialect())) == "DATETIME(6)"
    assert str(column.dialect_impl(postgresql.dialect()).compile(dialect=postgresql.dialect())) == (
        "TIMESTAMP WITHOUT TIME ZONE"
    )
    assert str(column.dialect_impl(sqlite.dialect()).compile(dialect=sqlite.dialect())) == "DATETIME"
