"""``othermail db``: the schema."""

from __future__ import annotations

import click

from forwarder.cli.context import CliContext


@click.group()
def db() -> None:
    """Create and upgrade the database schema."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def upgrade(obj: CliContext, revision: str) -> None:
    """Bring the database to the latest schema (safe to run again)."""
    import migrations

    obj.engine()  # creates the data folder for SQLite
    migrations.upgrade(obj.database_url, revision)
    click.echo(f"database at revision {migrations.current(obj.database_url)}")
