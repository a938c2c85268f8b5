"""What SQL Core code needs of the models loads without the ORM (issue 15: ``sqlalchemy.orm`` and
the declarative models cost the Lambda's cold start about 90 ms of CPU over SQLAlchemy Core), and
the package still gives every model, the whole schema and configured mappers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import models
import models.base
import models.columns
import models.deliveries
import models.limits
import models.users

ROOT = Path(__file__).resolve().parents[2]


def fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it sets ``result``, returned here."""
    script = code + "\nimport json as _json\nprint(_json.dumps(result))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_columns_limits_and_engine_modules_load_no_orm_and_no_model() -> None:
    result = fresh(
        "import sys\n"
        "from datetime import timedelta\n"
        "from sqlalchemy import Column, MetaData, Table, insert\n"
        "from models.columns import UTCDateTime, normalize_email, utcnow\n"
        "from models.engine import make_engine\n"
        "from models.limits import SUBJECT_MAX_LENGTH, clip\n"
        "engine = make_engine('sqlite://')\n"
        "table = Table('t', MetaData(), Column('at', UTCDateTime))\n"
        "with engine.begin() as connection:\n"
        "    table.create(connection)\n"
        "    connection.execute(insert(table), {'at': utcnow() - timedelta(days=1)})\n"
        "    read = connection.execute(table.select()).scalar_one()\n"
        "result = {\n"
        "    'aware': read.tzinfo is not None,\n"
        "    'address': normalize_email(' Jane@Example.NET '),\n"
        "    'clipped': clip('a\\x00b' * 200, SUBJECT_MAX_LENGTH),\n"
        "    'loaded': sorted(m for m in sys.modules if m == 'sqlalchemy.orm' or m.startswith('models.')),\n"
        "}\n"
    )
    assert result["loaded"] == ["models.columns", "models.engine", "models.limits"]
    assert result["aware"] is True
    assert result["address"] == "jane@example.net"
    assert result["clipped"] == ("ab" * 200)[:255]


def test_one_model_imported_alone_still_configures_against_every_other() -> None:
    """``models.users`` alone: its relationships name models nobody imported yet; the ORM's
    configuration step loads them, and the package's schema is then the whole schema."""
    result = fresh(
        "from sqlalchemy.orm import configure_mappers\n"
        "from models.users import User\n"
        "configure_mappers()\n"
        "import models\n"
        "result = {'target': User.aliases.property.mapper.class_.__name__,\n"
        "          'tables': len(models.Base.metadata.tables)}\n"
    )
    assert result == {"target": "Alias", "tables": len(models.Base.metadata.tables)}


def test_the_package_gives_every_name_it_lists() -> None:
    for name in models.__all__:
        assert getattr(models, name) is not None, name
    assert {"aliases", "deliveries", "users"} <= set(models.Base.metadata.tables)


def test_the_old_homes_re_export_the_same_objects() -> None:
    assert models.base.utcnow is models.columns.utcnow is models.utcnow
    assert models.base.UTCDateTime is models.columns.UTCDateTime is models.UTCDateTime
    assert models.base.BigIntId is models.columns.BigIntId
    assert models.users.normalize_email is models.columns.normalize_email is models.normalize_email
    assert models.deliveries._clip is models.limits.clip
    for name in ("SUBJECT_MAX_LENGTH", "RAW_KEY_MAX_LENGTH", "REASON_MAX_LENGTH"):
        assert getattr(models.deliveries, name) == getattr(models.limits, name)


def test_the_core_tables_load_no_orm_and_insert_with_the_python_side_defaults() -> None:
    """models.tables: the forward path's tables, Core only; an insert through them gets the
    columns' Python-side defaults (created_at, counters) as one through the ORM does."""
    result = fresh(
        "import sys\n"
        "from sqlalchemy import insert, select\n"
        "from models.engine import make_engine\n"
        "from models.tables import aliases, metadata, users\n"
        "engine = make_engine('sqlite://')\n"
        "with engine.begin() as connection:\n"
        "    metadata.create_all(connection, tables=[users, aliases])\n"
        "    connection.execute(insert(aliases), {'address': 'a@othermail.example'})\n"
        "    row = connection.execute(select(aliases)).one()\n"
        "result = {\n"
        "    'defaults': [row.created_at.tzinfo is not None, row.message_count, row.expired_action],\n"
        "    'loaded': sorted(m for m in sys.modules if m == 'sqlalchemy.orm' or m.startswith('models.')),\n"
        "}\n"
    )
    assert result["loaded"] == ["models.columns", "models.engine", "models.limits", "models.tables"]
    assert result["defaults"] == [True, 0, "drop"]


def test_the_models_map_onto_the_core_tables_on_the_one_metadata() -> None:
    """The schema is written once: each model's table is the Core table (the migration test's
    autogenerate comparison proves the schema itself unchanged)."""
    import models.tables as tables

    assert models.Base.metadata is tables.metadata
    pairs = {
        "users": models.User,
        "aliases": models.Alias,
        "destinations": models.Destination,
        "deliveries": models.Delivery,
        "rate_limit_hits": models.RateLimitHit,
        "user_domains": models.UserDomain,
        "contacts": models.Contact,
        "message_links": models.MessageLink,
        "feedback_events": models.FeedbackEvent,
        "sender_rules": models.SenderRule,
    }
    for name, model in pairs.items():
        assert model.__table__ is getattr(tables, name), name
        assert tables.metadata.tables[name] is getattr(tables, name)
    assert models.alias_destinations is tables.alias_destinations
    assert models.RULE_ACTIONS is tables.RULE_ACTIONS and models.RULE_KINDS is tables.RULE_KINDS
