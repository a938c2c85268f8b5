"""``othermail demo``: what ``make run`` does until the one-box server lands.

It needs no AWS account: a SQLite database and the local outbox (a Maildir) under the data folder.
It creates a demo alias, forwards the bundled sample messages through the same pipeline as the
Lambda, prints one JSON line per outcome, and shows where the forwarded mail is. Running it again
shows idempotency: every message is reported as a duplicate and nothing is sent twice.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import click
from sqlalchemy import select

from forwarder.accounts import create_alias, ensure_destination, ensure_user
from forwarder.cli.context import CliContext
from forwarder.cli.forward import build_forwarder, message_id_for
from forwarder.core.envelope import verdicts_from_headers
from forwarder.core.message import split_message
from forwarder.pipeline import Inbound


def sample_files() -> list[Path]:
    folder = resources.files("forwarder.samples")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".eml"))


@click.command()
@click.pass_obj
def demo(obj: CliContext) -> None:
    """Forward the sample messages to a demo alias and show the result."""
    import migrations
    from models import Alias, utcnow

    obj.settings = replace(obj.settings, sender="outbox")
    obj.engine()
    migrations.upgrade(obj.database_url)
    domain = obj.settings.domains[0]
    address = f"demo@{domain}"
    with obj.sessions()() as session:
        if session.scalars(select(Alias).where(Alias.address == address)).first() is None:
            now = utcnow()
            user = ensure_user(session, "demo-owner@example.org")
            target = ensure_destination(session, user, "you@example.org", verified_at=now)
            session.commit()
            create_alias(session, user, [target], domain, now, local_part="demo")
    click.echo(f"alias {address} forwards to you@example.org (database {obj.database_url})")

    forwarder = build_forwarder(obj, dry_run=False)
    for path in sample_files():
        raw = path.read_bytes()
        inbound = Inbound(message_id_for(raw), (address,), verdicts_from_headers(split_message(raw)))
        for report in forwarder.process(raw, inbound):
            outcome = "duplicate (already handled)" if report.duplicate else report.outcome.value
            click.echo(json.dumps({"file": path.name, "outcome": outcome, "reason": report.reason,
                                   "bytes_in": report.bytes_in, "bytes_out": report.bytes_out}))
    outbox = obj.settings.outbox
    count = sum(1 for _ in (outbox / "new").iterdir()) if (outbox / "new").is_dir() else 0
    click.echo(f"outbox: {outbox.resolve()} (a Maildir) holds {count} forwarded message(s)")
