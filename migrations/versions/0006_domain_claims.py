"""Domain claims that block nobody; accounts grandfathered as confirmed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

- ``user_domains.name`` is no longer unique: several accounts may claim a name while none has
  proved it. ``owned_name`` is set to the name once the claim's ownership TXT record verified, and
  is unique: the first account to prove a domain holds it. Unique (``user_id``, ``name``) keeps an
  account from claiming a name twice; ``ix_user_domains_name`` serves lookups by name. Every domain
  past ``pending`` was proved under the old rules and gets ``owned_name``.
- ``users.email_verified_at`` (issue 12.5: the account's own address is confirmed before it may add
  destinations) is set for accounts that already proved that address as a verified destination.

Downgrading keeps one row per name (the owned one, else the oldest claim) so the old unique
constraint can come back. Written by hand and self-contained, like 0002 to 0005.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _batch():
    """SQLite recreates the table (its CHECK constraint is reflected and kept)."""
    return op.batch_alter_table("user_domains")


def upgrade() -> None:
    with _batch() as batch:
        batch.add_column(sa.Column("owned_name", sa.String(253), nullable=True))
        batch.drop_constraint("uq_user_domains_name", type_="unique")
        batch.create_unique_constraint("uq_user_domains_user_id_name", ["user_id", "name"])
        batch.create_unique_constraint("uq_user_domains_owned_name", ["owned_name"])
        batch.create_index("ix_user_domains_name", ["name"])
    op.execute("UPDATE user_domains SET owned_name = name WHERE status <> 'pending'")
    op.execute(
        "UPDATE users SET email_verified_at = ("
        " SELECT MIN(destinations.verified_at) FROM destinations"
        " WHERE destinations.user_id = users.id AND destinations.email = users.email"
        " AND destinations.verified_at IS NOT NULL)"
        " WHERE email_verified_at IS NULL AND deleted_at IS NULL"
    )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, name, owned_name FROM user_domains ORDER BY id")).all()
    keep: dict[str, int] = {}
    for row_id, name, owned in rows:  # the owned row of a name, else its oldest claim
        if name not in keep or owned is not None:
            keep[name] = row_id
    extra = [row_id for row_id, _name, _owned in rows if keep[_name] != row_id]
    for row_id in extra:
        bind.execute(sa.text("DELETE FROM user_domains WHERE id = :id"), {"id": row_id})
    with _batch() as batch:
        batch.drop_index("ix_user_domains_name")
        batch.drop_constraint("uq_user_domains_owned_name", type_="unique")
        batch.drop_constraint("uq_user_domains_user_id_name", type_="unique")
        batch.create_unique_constraint("uq_user_domains_name", ["name"])
        batch.drop_column("owned_name")
