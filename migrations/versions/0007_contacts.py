"""Two-way aliases: contacts, the Message-ID map, sender rules (issue 14).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

- ``contacts``: one per (alias, external address), found by a keyed digest of the address, with a
  random reverse local part (unique); the address and display name are stored sealed;
- ``message_links``: a Message-ID one side sees (digest) -> the one the other side knows (sealed),
  until ``expires_at``;
- ``sender_rules``: block / allow an address, a domain or the empty sender, per alias or account;
- ``aliases.sender_mode`` and ``display_name``; ``users.sender_mode``, ``display_format`` and
  ``unsubscribe_action``, with server defaults, so existing rows keep today's behaviour.

Downgrading drops them all. Written by hand and self-contained, like 0002 to 0006.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
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


def _counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("aliases") as batch:
        batch.add_column(sa.Column("sender_mode", sa.String(10), server_default="any", nullable=False))
        batch.add_column(sa.Column("display_name", sa.String(100), server_default="", nullable=False))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sender_mode", sa.String(10), server_default="any", nullable=False))
        batch.add_column(sa.Column("display_format", sa.String(20), server_default="name-and-address", nullable=False))
        batch.add_column(sa.Column("unsubscribe_action", sa.String(20), server_default="disable-alias", nullable=False))

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("reverse_local", sa.String(32), nullable=False),
        sa.Column("address_digest", sa.String(64), nullable=False),
        sa.Column("address_sealed", sa.String(512), nullable=False),
        sa.Column("name_sealed", sa.String(512), server_default="", nullable=False),
        sa.Column("origin", sa.String(10), server_default="forward", nullable=False),
        sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False),
        _counter("forwarded_count"),
        _counter("replied_count"),
        _counter("blocked_count"),
        sa.Column("last_seen_at", utc_datetime(), nullable=True),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(["alias_id"], ["aliases.id"], name="fk_contacts_alias_id_aliases", ondelete="CASCADE"),
        sa.UniqueConstraint("reverse_local", name="uq_contacts_reverse_local"),
        sa.UniqueConstraint("alias_id", "address_digest", name="uq_contacts_alias_id_address_digest"),
        sa.CheckConstraint("origin IN ('forward', 'user')", name="origin"),
        **TABLE_OPTIONS,
    )

    op.create_table(
        "message_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("seen_digest", sa.String(64), nullable=False),
        sa.Column("seen_sealed", sa.Text(), nullable=False),
        sa.Column("original_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("expires_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_links"),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name="fk_message_links_alias_id_aliases", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_message_links_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("alias_id", "seen_digest", name="uq_message_links_alias_id_seen_digest"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_message_links_contact_id", "message_links", ["contact_id"])
    op.create_index("ix_message_links_expires_at", "message_links", ["expires_at"])

    op.create_table(
        "sender_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(5), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("value", sa.String(254), server_default="", nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sender_rules"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sender_rules_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name="fk_sender_rules_alias_id_aliases", ondelete="CASCADE"
        ),
        sa.CheckConstraint("action IN ('block', 'allow')", name="action"),
        sa.CheckConstraint("kind IN ('address', 'domain', 'empty-sender')", name="kind"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_sender_rules_user_id", "sender_rules", ["user_id"])
    op.create_index("ix_sender_rules_alias_id", "sender_rules", ["alias_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes (on MariaDB a foreign key needs its index, so they cannot go first).
    op.drop_table("sender_rules")
    op.drop_table("message_links")
    op.drop_table("contacts")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("unsubscribe_action")
        batch.drop_column("display_format")
        batch.drop_column("sender_mode")
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("display_name")
        batch.drop_column("sender_mode")
