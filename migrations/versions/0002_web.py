"""Web app: alias label/note/expired_action, user timestamps, API tokens, rate limits.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Written by hand and deliberately self-contained (no imports from ``models``)
so that it keeps describing this revision when the models change later.
Constraint and index names follow ``models.base.NAMING_CONVENTION``.  CHECK
constraint names are wrapped in ``op.f()``: alembic applies env.py's
target metadata naming convention to the names given here, and the "ck"
convention (``ck_%(table_name)s_%(constraint_name)s``) would otherwise
prefix an already complete name a second time.

SQLite cannot add or drop a CHECK constraint with ALTER TABLE, so those
changes go through ``batch_alter_table``, which recreates the table there
(named constraints and indexes are carried over) and issues plain ALTERs
on PostgreSQL and MariaDB.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
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
    with op.batch_alter_table("aliases") as batch:
        batch.add_column(sa.Column("label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        # The server default fills in existing rows.
        batch.add_column(sa.Column("expired_action", sa.String(10), server_default="drop", nullable=False))
        batch.create_check_constraint(op.f("ck_aliases_expired_action"), "expired_action IN ('drop', 'reject')")

    # Nullable columns without constraints: a plain ALTER on every backend.
    op.add_column("users", sa.Column("password_changed_at", utc_datetime(), nullable=True))
    op.add_column("users", sa.Column("email_verified_at", utc_datetime(), nullable=True))

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("expires_at", utc_datetime(), nullable=True),
        sa.Column("last_used_at", utc_datetime(), nullable=True),
        sa.Column("revoked_at", utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint("scope IN ('read', 'write')", name=op.f("ck_api_tokens_scope")),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "rate_limit_hits",
        # Primary key length on MariaDB (utf8mb4): 200*4+2 + 8 = 810 bytes.
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_limit_hits"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_rate_limit_hits_window_start", "rate_limit_hits", ["window_start"])


def downgrade() -> None:
    # Dropping a table drops its indexes (and, on MariaDB, dropping the
    # index first would fail: the foreign key relies on it).
    op.drop_table("rate_limit_hits")
    op.drop_table("api_tokens")

    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified_at")
        batch.drop_column("password_changed_at")

    with op.batch_alter_table("aliases") as batch:
        # The constraint first: MariaDB refuses to drop a column a CHECK uses.
        batch.drop_constraint(op.f("ck_aliases_expired_action"), type_="check")
        batch.drop_column("expired_action")
        batch.drop_column("note")
        batch.drop_column("label")
