"""Two-factor sign-in: TOTP on users, recovery codes, passkeys (issue 16).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

- ``users.totp_secret`` (the base32 secret, sealed with the contact key), ``totp_enabled_at``,
  ``totp_last_step`` (the last accepted time step, so a code is never accepted twice);
- ``recovery_codes``: single-use codes, stored as the SHA-256 of each;
- ``webauthn_credentials``: passkeys and security keys.

Written by hand and self-contained, like 0002 to 0008.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
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
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(255), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))

    op.create_table(
        "recovery_codes",
        sa.Column("id", big_id(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("used_at", utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])

    op.create_table(
        "webauthn_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(255), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("transports", sa.String(255), server_default="", nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("last_used_at", utc_datetime(), nullable=True),
        sa.Column("backed_up", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webauthn_credentials"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_webauthn_credentials_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("credential_id", name="uq_webauthn_credentials_credential_id"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_webauthn_credentials_user_id", "webauthn_credentials", ["user_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes (on MariaDB the foreign key needs the index, so it
    # cannot go first).
    op.drop_table("webauthn_credentials")
    op.drop_table("recovery_codes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_secret")
