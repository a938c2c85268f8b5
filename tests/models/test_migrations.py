"""The migrations build exactly the models' schema, and tear it down again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    MetaData,
    String,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url

from migrations import current, downgrade, restore_routines, upgrade
from models import (
    Alias,
    ApiToken,
    Base,
    Contact,
    Destination,
    FeedbackEvent,
    MessageLink,
    RateLimitHit,
    RecoveryCode,
    SenderRule,
    SigninFailure,
    User,
    UserDomain,
    UserSession,
    WebAuthnCredential,
    make_engine,
    utcnow,
)

VERSION_TABLE = "alembic_version"
HEAD = "0010"
#: Tables later revisions add, so the schema at an older revision can be compared with the models.
ADDED_BY = {
    "0003": ("user_domains",),
    "0004": ("feedback_events",),
    "0005": ("user_sessions", "signin_failures"),
    "0007": ("contacts", "message_links", "sender_rules"),
    "0009": ("recovery_codes", "webauthn_credentials"),
}
#: Columns and indexes later revisions add to existing tables.
COLUMNS_ADDED_BY = {
    "0004": {
        "destinations": (
            "paused_at",
            "pause_reason",
            "bounce_count",
            "soft_bounce_count",
            "last_soft_bounce_at",
            "complaint_count",
        ),
        "aliases": ("disabled_reason",),
        "deliveries": ("raw_key", "released_at"),
    },
    "0006": {"user_domains": ("owned_name",)},
    "0007": {
        "aliases": ("sender_mode", "display_name"),
        "users": ("sender_mode", "display_format", "unsubscribe_action"),
    },
    "0008": {"message_links": ("kind",)},
    "0009": {"users": ("totp_secret", "totp_enabled_at", "totp_last_step")},
}
INDEXES_ADDED_BY = {
    "0004": {"deliveries": ("ix_deliveries_provider_message_id",)},
    "0006": {"user_domains": ("ix_user_domains_name",)},
}
#: Unique constraints later revisions replace: revision -> table -> (constraints before, their names now).
UNIQUES_CHANGED_BY = {
    "0006": {"user_domains": ((("name",),), ("uq_user_domains_user_id_name", "uq_user_domains_owned_name"))}
}


def metadata_before(revision: str) -> MetaData:
    """The models' schema without the tables ``revision`` and later revisions add."""
    later = {table for rev, tables in ADDED_BY.items() if rev >= revision for table in tables}
    kept = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        if table.name not in later:
            copy = table.to_metadata(kept)
            for rev, added in COLUMNS_ADDED_BY.items():
                for name in added.get(table.name, ()) if rev >= revision else ():
                    copy._columns.remove(copy.c[name])
            for rev, added in INDEXES_ADDED_BY.items():
                for index in [i for i in copy.indexes if rev >= revision and i.name in added.get(table.name, ())]:
                    copy.indexes.discard(index)
            for rev, changed in UNIQUES_CHANGED_BY.items():
                if rev < revision or table.name not in changed:
                    continue
                before, now = changed[table.name]
                for constraint in [c for c in copy.constraints if isinstance(c, UniqueConstraint)]:
                    if constraint.name in now or constraint.columns.keys() in ([*cols] for cols in before):
                        copy.constraints.discard(constraint)
                for column in [c for c in copy.columns if c.unique]:
                    column.unique = False
                for cols in before:
                    copy.append_constraint(UniqueConstraint(*(copy.c[name] for name in cols)))
    return kept


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


def strict_type_mismatches(url: str, metadata: MetaData = Base.metadata) -> list[tuple[str, str, str, str]]:
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
                # column.type, as CREATE TABLE compiles it: its dialect_impl()
                # can be a driver-level type that compiles differently (Text
                # is a VARCHAR-compiling _PGString under psycopg).
                want = dialect.type_compiler.process(column.type).upper()
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
    assert current(database_url) == HEAD
    assert app_tables(database_url) == set(Base.metadata.tables)
    assert schema_diff(database_url) == []
    assert strict_type_mismatches(database_url) == []

    downgrade(database_url)
    assert current(database_url) is None
    assert app_tables(database_url) == set()

    upgrade(database_url)
    assert current(database_url) == HEAD
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
    added = {entry[1].name for entry in diff if isinstance(entry, tuple) and entry[0] == "add_index"}
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


def model_check_constraints() -> dict[str, set[str]]:
    return {
        table.name: {
            str(constraint.name) for constraint in table.constraints if isinstance(constraint, CheckConstraint)
        }
        for table in Base.metadata.sorted_tables
    }


def reflected_check_constraints(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        return {
            table: {ck["name"] for ck in inspector.get_check_constraints(table)}
            for table in inspector.get_table_names()
            if table != VERSION_TABLE
        }
    finally:
        engine.dispose()


def schema_snapshot(url: str) -> dict[str, dict[str, Any]]:
    """Everything the inspector reports about the application tables.

    Comparable between two states of one database, e.g. before an upgrade
    and after the matching downgrade; unlike ``compare_metadata`` it covers
    CHECK constraints and server defaults too.
    """
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        compile_type = engine.dialect.type_compiler.process
        snapshot = {}
        for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            snapshot[table] = {
                "columns": [
                    (c["name"], compile_type(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table)
                ],
                "pk": inspector.get_pk_constraint(table),
                "fks": sorted(inspector.get_foreign_keys(table), key=lambda fk: fk["name"]),
                "indexes": sorted(
                    (ix["name"], tuple(ix["column_names"]), ix["unique"]) for ix in inspector.get_indexes(table)
                ),
                "uniques": sorted(
                    (uq["name"], tuple(uq["column_names"])) for uq in inspector.get_unique_constraints(table)
                ),
                "checks": sorted(ck["name"] for ck in inspector.get_check_constraints(table)),
            }
        return snapshot
    finally:
        engine.dispose()


def test_check_constraints_are_migrated(migrated_url: str) -> None:
    """compare_metadata ignores CHECK constraints, so they are compared here."""
    assert reflected_check_constraints(migrated_url) == model_check_constraints()
    assert model_check_constraints()["aliases"] == {"ck_aliases_expired_action"}
    assert model_check_constraints()["api_tokens"] == {"ck_api_tokens_scope"}
    assert model_check_constraints()["user_domains"] == {"ck_user_domains_status"}


def test_0002_round_trip_restores_0001_and_keeps_data(database_url: str) -> None:
    upgrade(database_url, "0001")
    at_0001 = schema_snapshot(database_url)

    # Rows written under 0001 survive the upgrade; new columns get defaults.
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO destinations (id, user_id, email, created_at) "
                "VALUES (1, 1, 'inbox@example.org', '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO aliases (id, address, user_id, created_at) "
                "VALUES (1, 'old@x.example', 1, '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql("INSERT INTO alias_destinations (alias_id, destination_id) VALUES (1, 1)")
            connection.exec_driver_sql(
                "INSERT INTO deliveries (inbound_message_id, recipient, alias_id, "
                "destination_id, outcome, created_at, updated_at) VALUES ('m1', "
                "'old@x.example', 1, 1, 'forwarded', '2025-01-01 00:00:00', "
                "'2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0002")
    assert current(database_url) == "0002"
    assert schema_diff(database_url, metadata_before("0003")) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            assert connection.execute(select(Alias.expired_action, Alias.label, Alias.note)).all() == [
                ("drop", None, None)
            ]
            connection.execute(update(Alias).values(label="shop", expired_action="reject"))
            connection.execute(
                insert(ApiToken).values(
                    user_id=1,
                    name="cli",
                    token_hash="0" * 64,
                    prefix="om_0000",
                    scope="read",
                    created_at=utcnow(),
                )
            )
            connection.execute(insert(RateLimitHit).values(key="signin:x", window_start=60))
    finally:
        engine.dispose()

    downgrade(database_url, "0001")
    assert current(database_url) == "0001"
    assert schema_snapshot(database_url) == at_0001
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            counts = {
                table: connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
                for table in ("users", "destinations", "aliases", "alias_destinations") + ("deliveries",)
            }
            delivery = connection.exec_driver_sql("SELECT alias_id, destination_id FROM deliveries").one()
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(counts, 1)
    assert tuple(delivery) == (1, 1)

    upgrade(database_url)
    assert current(database_url) == HEAD
    assert schema_diff(database_url) == []
    assert strict_type_mismatches(database_url) == []
    assert reflected_check_constraints(database_url) == model_check_constraints()


def test_0003_round_trip_adds_and_removes_user_domains(database_url: str) -> None:
    upgrade(database_url, "0002")
    at_0002 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0003")
    assert schema_diff(database_url, metadata_before("0004")) == []
    assert strict_type_mismatches(database_url, metadata_before("0004")) == []
    assert reflected_check_constraints(database_url) == {
        table: names for table, names in model_check_constraints().items() if table in metadata_before("0004").tables
    }
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(UserDomain).values(
                    user_id=1, name="owner.example", verification_token="t" * 32, created_at=utcnow()
                )
            )
            row = connection.execute(select(UserDomain.status, UserDomain.catch_all)).one()
            assert tuple(row) == ("pending", False)  # the server defaults
    finally:
        engine.dispose()

    downgrade(database_url, "0002")
    assert schema_snapshot(database_url) == at_0002
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0004_round_trip_adds_and_removes_feedback_and_pauses(database_url: str) -> None:
    upgrade(database_url, "0003")
    at_0003 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO destinations (id, user_id, email, created_at) "
                "VALUES (1, 1, 'inbox@example.org', '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0004")
    assert schema_diff(database_url, metadata_before("0005")) == []
    assert strict_type_mismatches(database_url, metadata_before("0005")) == []
    assert reflected_check_constraints(database_url) == {
        table: names for table, names in model_check_constraints().items() if table in metadata_before("0005").tables
    }
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            row = connection.execute(
                select(
                    Destination.paused_at,
                    Destination.pause_reason,
                    Destination.bounce_count,
                    Destination.soft_bounce_count,
                    Destination.complaint_count,
                )
            ).one()
            assert tuple(row) == (None, "", 0, 0, 0)  # the server defaults
            connection.execute(
                insert(FeedbackEvent).values(
                    feedback_id="f1",
                    recipient="inbox@example.org",
                    kind="bounce-permanent",
                    destination_id=1,
                    created_at=utcnow(),
                )
            )
    finally:
        engine.dispose()

    downgrade(database_url, "0003")
    assert schema_snapshot(database_url) == at_0003
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0005_round_trip_adds_and_removes_sessions_and_signin_failures(database_url: str) -> None:
    upgrade(database_url, "0004")
    at_0004 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0005")
    assert schema_diff(database_url, metadata_before("0006")) == []
    assert strict_type_mismatches(database_url, metadata_before("0006")) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(UserSession).values(user_id=1, token_hash="a" * 64, created_at=utcnow(), last_seen_at=utcnow())
            )
            row = connection.execute(select(UserSession.ip, UserSession.user_agent)).one()
            assert tuple(row) == ("", "")  # the server defaults
            connection.execute(insert(SigninFailure).values(key="b" * 64, last_failure_at=utcnow()))
            assert connection.execute(select(SigninFailure.failures)).scalar_one() == 0
    finally:
        engine.dispose()

    downgrade(database_url, "0004")
    assert schema_snapshot(database_url) == at_0004
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0006_round_trip_lets_claims_share_a_name_and_keeps_one_per_name_on_the_way_back(database_url: str) -> None:
    """Issue 12.11: a pending claim of a name blocked every other account for a week."""
    upgrade(database_url, "0005")
    at_0005 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for n, email in enumerate(("ann@example.org", "bob@example.org", "cat@example.org"), start=1):
                connection.exec_driver_sql(
                    f"INSERT INTO users (id, email, is_admin, created_at) "
                    f"VALUES ({n}, '{email}', false, '2025-01-01 00:00:00')"
                )
            connection.exec_driver_sql(  # ann proved her address as a destination; bob did not
                "INSERT INTO destinations (id, user_id, email, created_at, verified_at) VALUES "
                "(1, 1, 'ann@example.org', '2025-01-01 00:00:00', '2025-01-02 00:00:00'), "
                "(2, 2, 'elsewhere@example.org', '2025-01-01 00:00:00', '2025-01-02 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO user_domains (id, user_id, name, verification_token, status, created_at) VALUES "
                "(1, 1, 'ann.test', 't1', 'verified', '2025-01-01 00:00:00'), "
                "(2, 2, 'bob.test', 't2', 'pending', '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0006")
    assert schema_diff(database_url, metadata_before("0007")) == []
    assert strict_type_mismatches(database_url, metadata_before("0007")) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            owned = connection.execute(select(UserDomain.name, UserDomain.owned_name).order_by(UserDomain.id)).all()
            assert [tuple(row) for row in owned] == [("ann.test", "ann.test"), ("bob.test", None)]
            verified = connection.exec_driver_sql("SELECT id, email_verified_at FROM users ORDER BY id").all()
            assert [row[1] is not None for row in verified] == [True, False, False]
            for row_id, user_id, name in ((3, 1, "bob.test"), (4, 3, "bob.test"), (5, 3, "ann.test")):
                connection.execute(
                    insert(UserDomain).values(  # more claims of both names: none proved
                        id=row_id, user_id=user_id, name=name, verification_token="x", created_at=utcnow()
                    )
                )
            assert connection.execute(select(func.count()).select_from(UserDomain)).scalar_one() == 5
    finally:
        engine.dispose()

    downgrade(database_url, "0005")
    assert schema_snapshot(database_url) == at_0005
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            kept = connection.exec_driver_sql("SELECT id, user_id, name FROM user_domains ORDER BY id").all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [(1, 1, "ann.test"), (2, 2, "bob.test")]  # the owned, else the oldest
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0007_round_trip_adds_and_removes_contacts_links_and_sender_rules(database_url: str) -> None:
    """Issue 14: contacts with reverse addresses, the Message-ID map and block/allow rules."""
    upgrade(database_url, "0006")
    at_0006 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO aliases (id, address, user_id, created_at) "
                "VALUES (1, 'old@x.example', 1, '2025-01-01 00:00:00'), "
                "(2, 'other@x.example', 1, '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()

    upgrade(database_url, "0007")
    assert current(database_url) == "0007"
    assert schema_diff(database_url, metadata_before("0008")) == []
    assert strict_type_mismatches(database_url, metadata_before("0008")) == []
    assert reflected_check_constraints(database_url) == {
        table: names for table, names in model_check_constraints().items() if table in metadata_before("0008").tables
    }
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            aliases = connection.execute(select(Alias.sender_mode, Alias.display_name)).all()
            assert [tuple(row) for row in aliases] == [("any", ""), ("any", "")]  # the server defaults
            user = connection.execute(select(User.sender_mode, User.display_format, User.unsubscribe_action)).one()
            assert tuple(user) == ("any", "name-and-address", "disable-alias")
            for alias_id in (1, 2):
                connection.execute(
                    insert(Contact).values(
                        id=alias_id,
                        alias_id=alias_id,
                        reverse_local=f"reverse{alias_id:09d}",
                        address_digest="d" * 64,  # the same address, one contact per alias
                        address_sealed="k:x",
                        created_at=utcnow(),
                    )
                )
                connection.execute(
                    insert(MessageLink).values(
                        alias_id=alias_id,
                        contact_id=alias_id,
                        seen_digest="s" * 64,
                        seen_sealed="k:s",
                        original_sealed="k:y",
                        created_at=utcnow(),
                        expires_at=utcnow(),
                    )
                )
                connection.execute(
                    insert(SenderRule).values(
                        user_id=1, alias_id=alias_id, action="block", kind="domain", value="x.test", created_at=utcnow()
                    )
                )
            row = connection.execute(
                select(
                    Contact.name_sealed,
                    Contact.origin,
                    Contact.blocked,
                    Contact.forwarded_count,
                    Contact.replied_count,
                    Contact.blocked_count,
                ).where(Contact.id == 1)
            ).one()
            assert tuple(row) == ("", "forward", False, 0, 0, 0)  # the server defaults
            connection.exec_driver_sql("DELETE FROM aliases WHERE id = 2")  # cascades to its rows only
            counts = [
                connection.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (Contact, MessageLink, SenderRule)
            ]
            assert counts == [1, 1, 1]
    finally:
        engine.dispose()

    downgrade(database_url, "0006")
    assert schema_snapshot(database_url) == at_0006
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0008_round_trip_adds_and_removes_the_kind_of_a_message_link(database_url: str) -> None:
    """Issue 14: a link says whether its id is of a forwarded copy or of a reply sent from the alias."""
    upgrade(database_url, "0007")
    at_0007 = schema_snapshot(database_url)
    assert schema_diff(database_url, metadata_before("0008")) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO aliases (id, address, user_id, created_at) "
                "VALUES (1, 'a@x.example', 1, '2025-01-01 00:00:00')"
            )
            connection.execute(
                insert(MessageLink).values(
                    alias_id=1, seen_digest="s" * 64, seen_sealed="k:s", original_sealed="k:y",
                    created_at=utcnow(), expires_at=utcnow(),
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    upgrade(database_url, "0008")
    assert schema_diff(database_url, metadata_before("0009")) == []
    assert strict_type_mismatches(database_url, metadata_before("0009")) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            assert connection.execute(select(MessageLink.kind)).scalars().all() == ["forward"]  # the server default
    finally:
        engine.dispose()
    downgrade(database_url, "0007")
    assert schema_snapshot(database_url) == at_0007
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_0009_round_trip_adds_and_removes_the_second_factors(database_url: str) -> None:
    """Issue 16: TOTP columns on users, recovery codes and passkeys; both tables go with their user."""
    upgrade(database_url, "0008")
    at_0008 = schema_snapshot(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, email, is_admin, created_at) "
                "VALUES (1, 'owner@example.org', false, '2025-01-01 00:00:00')"
            )
    finally:
        engine.dispose()
    upgrade(database_url, "0009")
    assert schema_diff(database_url) == [] and strict_type_mismatches(database_url) == []
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            assert connection.execute(select(User.totp_secret, User.totp_enabled_at, User.totp_last_step)).one() == (
                None, None, None,
            )  # fmt: skip
            connection.execute(insert(RecoveryCode).values(user_id=1, code_hash="c" * 64, created_at=utcnow()))
            connection.execute(
                insert(WebAuthnCredential).values(
                    user_id=1, credential_id="AAAA", public_key=b"\x01\x02", name="key", created_at=utcnow()
                )
            )
            row = connection.execute(
                select(WebAuthnCredential.sign_count, WebAuthnCredential.transports, WebAuthnCredential.backed_up)
            ).one()
            assert tuple(row) == (0, "", False)  # the server defaults
            connection.exec_driver_sql("DELETE FROM users WHERE id = 1")
            assert connection.execute(select(func.count()).select_from(RecoveryCode)).scalar() == 0
            assert connection.execute(select(func.count()).select_from(WebAuthnCredential)).scalar() == 0
    finally:
        engine.dispose()
    downgrade(database_url, "0008")
    assert schema_snapshot(database_url) == at_0008
    upgrade(database_url)
    assert current(database_url) == HEAD


def _procedures(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name not in ("mysql", "mariadb"):
                return []
            return list(
                connection.exec_driver_sql(
                    "SELECT routine_name FROM information_schema.routines"
                    " WHERE routine_schema = DATABASE() AND routine_type = 'PROCEDURE'"
                ).scalars()
            )
    finally:
        engine.dispose()


def test_0010_round_trip_adds_and_removes_the_first_claim_procedure_on_mariadb_only(database_url: str) -> None:
    """Issue 15: MariaDB's first claim is one CALL; the tables do not change on any backend."""
    upgrade(database_url, "0009")
    at_0009 = schema_snapshot(database_url)
    assert _procedures(database_url) == []
    upgrade(database_url, "0010")
    assert schema_snapshot(database_url) == at_0009
    mariadb = make_url(database_url).get_backend_name() == "mysql"
    assert _procedures(database_url) == (["othermail_first_claim"] if mariadb else [])
    downgrade(database_url, "0009")
    assert _procedures(database_url) == []
    assert schema_snapshot(database_url) == at_0009
    upgrade(database_url)
    assert current(database_url) == HEAD


def test_upgrade_makes_again_a_procedure_a_restored_dump_lacks(migrated_url: str) -> None:
    """mariadb-dump without --routines restores the tables and the revision, not the procedure:
    alembic has nothing to run, restore_routines (called by upgrade) makes it again."""
    mariadb = make_url(migrated_url).get_backend_name() == "mysql"
    assert restore_routines(migrated_url) == []  # nothing missing
    if mariadb:
        engine = make_engine(migrated_url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("DROP PROCEDURE othermail_first_claim")
        finally:
            engine.dispose()
        assert _procedures(migrated_url) == []
    upgrade(migrated_url)
    assert _procedures(migrated_url) == (["othermail_first_claim"] if mariadb else [])
    assert current(migrated_url) == HEAD
