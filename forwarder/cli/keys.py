"""``othermail keys``: the keys that seal contacts' addresses and the Message-ID map (issue 14), and
users' TOTP secrets (issue 16).

A rotation: ``othermail keys new`` prints an entry; put it first in OTHERMAIL_CONTACT_KEYS (or the
first line of <data dir>/contact-keys on the one box) and restart, so new rows are sealed with it
while old ones still open; ``othermail keys rotate`` re-seals the old rows; then drop the old entry.
"""

from __future__ import annotations

import click

from forwarder.cli.context import CliContext


@click.group()
def keys() -> None:
    """Manage the keys that seal contacts' addresses and message links."""


@keys.command("new")
def new() -> None:
    """Print a fresh id:key entry (put it first in OTHERMAIL_CONTACT_KEYS)."""
    from forwarder.adapters.sealing import new_key_entry

    click.echo(
        "put this entry first in OTHERMAIL_CONTACT_KEYS (comma-separated), restart, then run othermail keys rotate",
        err=True,
    )
    click.echo(new_key_entry())


@keys.command("rotate")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Rows per transaction.")
@click.pass_obj
def rotate(obj: CliContext, batch_size: int) -> None:
    """Re-seal every contact, message link and two-factor secret under the first (current) key, online."""
    from forwarder.accounts import two_factor

    runtime = obj.runtime()
    contacts, links = runtime.contacts.reseal(batch_size)
    with runtime.sessions() as session:  # users' TOTP secrets (issue 16): few, one transaction
        secrets = two_factor.reseal(session, runtime.sealer)
    click.echo(
        f"re-sealed {contacts} contacts, {links} message links and {secrets} two-factor secrets"
        f" under key {runtime.sealer.current_id}"
    )
