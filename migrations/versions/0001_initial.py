"""Initial schema: users, destinations, aliases, alias_destinations, deliveries.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand and deliberately self-contained (no imports from ``models``)
so that it keeps describing this revision when the models change later.
Constraint and index names follow ``models.base.NAMING_CONVENTION``.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: models.base.MYSQL_TABLE_OPTIONS as of this revision (ignored elsewhere).
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def utc_datetime() -> sa.types.TypeEngine:
    """Storage type of models.base.UTCDateTime: naive UTC, microseconds kept."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("deleted_at", utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        **TABLE_OPTIONS,
    )

    op.create_table(
        "destinations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("verified_at", utc_datetime(), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_destinations"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_destinations_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("user_id", "email", name="uq_destinations_user_id_email"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_destinations_user_id", "destinations", ["user_id"])

    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("expires_at", utc_datetime(), nullable=True),
        sa.Column("idle_days", sa.Integer(), nullable=True),
        sa.Column("max_messages", sa.Integer(), nullable=True),
        sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("forwarded_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("blocked_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("last_used_at", utc_datetime(), nullable=True),
        sa.Column("deleted_at", utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_aliases"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_aliases_user_id_users", ondelete="SET NULL"),
        sa.UniqueConstraint("address", name="uq_aliases_address"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_aliases_user_id", "aliases", ["user_id"])

    op.create_table(
        "alias_destinations",
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("alias_id", "destination_id", name="pk_alias_destinations"),
        sa.ForeignKeyConstraint(
            ["alias_id"],
            ["aliases.id"],
            name="fk_alias_destinations_alias_id_aliases",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name="fk_alias_destinations_destination_id_destinations",
            ondelete="CASCADE",
        ),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_alias_destinations_destination_id", "alias_destinations", ["destination_id"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inbound_message_id", sa.String(255), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=True),
        sa.Column("destination_id", sa.Integer(), nullable=True),
        sa.Column("destination_key", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(500), server_default="", nullable=False),
        sa.Column("mail_from", sa.String(254), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("bytes_in", sa.Integer(), nullable=True),
        sa.Column("bytes_out", sa.Integer(), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("received_at", utc_datetime(), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("updated_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name="fk_deliveries_alias_id_aliases", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name="fk_deliveries_destination_id_destinations",
            ondelete="SET NULL",
        ),
        # Makes forwarding idempotent; key length on MariaDB (utf8mb4):
        # 255*4+2 + 254*4+2 + 4 = 2044 bytes, under the 3072-byte limit.
        sa.UniqueConstraint(
            "inbound_message_id",
            "recipient",
            "destination_key",
            name="uq_deliveries_inbound_message_id_recipient_destination_key",
        ),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_deliveries_alias_id_created_at", "deliveries", ["alias_id", "created_at"])
    op.create_index("ix_deliveries_destination_id", "deliveries", ["destination_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes.  Dropping them first would fail on
    # MariaDB, which refuses to drop an index a foreign key relies on.
    for table in ("deliveries", "alias_destinations", "aliases", "destinations", "users"):
        op.drop_table(table)
