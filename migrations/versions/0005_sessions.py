"""Server-side sessions and per-account sign-in backoff.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

- ``user_sessions``: one row per signed-in browser session (the cookie carries only a random
  secret, stored here as its SHA-256); deleting the row ends the session;
- ``signin_failures``: consecutive failed sign-ins per address (keyed by a hash of it), for the
  per-account backoff.

Written by hand and self-contained, like 0002 to 0004.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
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


def big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", big_id(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("last_seen_at", utc_datetime(), nullable=False),
        sa.Column("ip", sa.String(45), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(255), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_sessions_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("token_hash", name="uq_user_sessions_token_hash"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])

    op.create_table(
        "signin_failures",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_failure_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_signin_failures"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_signin_failures_last_failure_at", "signin_failures", ["last_failure_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes (on MariaDB the foreign key needs the index, so it
    # cannot go first).
    op.drop_table("signin_failures")
    op.drop_table("user_sessions")
