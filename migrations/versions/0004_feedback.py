"""Never lose mail: SES feedback, paused destinations, kept raw messages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

- ``feedback_events``: bounces and complaints SES reported on forwarded copies;
- ``destinations``: paused by feedback (when, why) and its counters;
- ``aliases.disabled_reason``: why the service switched an alias off (a complaint);
- ``deliveries.raw_key`` and ``released_at``: where the raw inbound message is kept (download,
  quarantine) and when a quarantined one was released; an index on ``provider_message_id``, which
  feedback is looked up by.

Written by hand and self-contained, like 0002 and 0003.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback_events",
        sa.Column("id", big_id(), nullable=False),
        sa.Column("feedback_id", sa.String(255), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sub_type", sa.String(100), server_default="", nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("alias_id", sa.Integer(), nullable=True),
        sa.Column("destination_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(500), server_default="", nullable=False),
        sa.Column("occurred_at", utc_datetime(), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback_events"),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name="fk_feedback_events_alias_id_aliases", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name="fk_feedback_events_destination_id_destinations",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("feedback_id", "recipient", name="uq_feedback_events_feedback_id_recipient"),
        sa.CheckConstraint(
            "kind IN ('bounce-permanent', 'bounce-transient', 'complaint')", name=op.f("ck_feedback_events_kind")
        ),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_feedback_events_provider_message_id", "feedback_events", ["provider_message_id"])
    op.create_index("ix_feedback_events_alias_id", "feedback_events", ["alias_id"])
    op.create_index("ix_feedback_events_destination_id", "feedback_events", ["destination_id"])

    with op.batch_alter_table("destinations") as batch:
        batch.add_column(sa.Column("paused_at", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("pause_reason", sa.String(500), server_default="", nullable=False))
        batch.add_column(sa.Column("bounce_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("soft_bounce_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("last_soft_bounce_at", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("complaint_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    with op.batch_alter_table("aliases") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(200), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("raw_key", sa.String(512), nullable=True))
        batch.add_column(sa.Column("released_at", utc_datetime(), nullable=True))
    op.create_index("ix_deliveries_provider_message_id", "deliveries", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_provider_message_id", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("released_at")
        batch.drop_column("raw_key")
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("disabled_reason")
    with op.batch_alter_table("destinations") as batch:
        for column in (
            "complaint_count",
            "last_soft_bounce_at",
            "soft_bounce_count",
            "bounce_count",
            "pause_reason",
            "paused_at",
        ):
            batch.drop_column(column)
    op.drop_table("feedback_events")
