"""Two-way aliases: which side's copy a Message-ID link stands for (issue 14).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``message_links.kind``: ``forward`` (an id of a forwarded copy, the owner's side) or ``reply`` (an
id of a copy sent from the alias to a contact). A bounce or an auto-reply that names a ``reply``
id answers mail the alias sent: its owner gets a notice instead of a silent drop. Existing links
are all of forwarded copies' ids or of replies' provider ids, which cannot be told apart after the
fact; they take the server default, ``forward``, and expire with the thread map as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_links") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), server_default="forward", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("message_links") as batch:
        batch.drop_column("kind")
