"""Users' own domains.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Written by hand and self-contained (no imports from ``models``), like 0002: names follow
``models.base.NAMING_CONVENTION``, and the CHECK constraint's name is wrapped in ``op.f()`` so that
the naming convention does not prefix it a second time.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
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
        "user_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("verification_token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), server_default="pending", nullable=False),
        sa.Column("dkim_tokens", sa.Text(), nullable=True),
        sa.Column("ses_identity_created_at", utc_datetime(), nullable=True),
        sa.Column("verified_at", utc_datetime(), nullable=True),
        sa.Column("last_checked_at", utc_datetime(), nullable=True),
        sa.Column("failing_since", utc_datetime(), nullable=True),
        sa.Column("last_problem", sa.String(500), nullable=True),
        sa.Column("catch_all", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_domains"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_domains_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("name", name="uq_user_domains_name"),
        sa.CheckConstraint(
            "status IN ('pending', 'verified', 'failing', 'suspended')",
            name=op.f("ck_user_domains_status"),
        ),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_user_domains_user_id", "user_domains", ["user_id"])


def downgrade() -> None:
    # Dropping the table drops its indexes (on MariaDB the foreign key needs the index, so it
    # cannot go first).
    op.drop_table("user_domains")
