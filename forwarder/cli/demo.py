"""``othermail demo``: what ``make run`` does until the one-box server lands.

It needs no AWS account: a SQLite database and the local outbox (a Maildir) in a throwaway folder
of its own, so trying it never adds an alias or messages to the configured database and outbox
(``--in-place`` uses those, ``--data-dir DIR`` a folder of your choice). It creates a demo alias,
forwards the bundled sample messages through the same pipeline as the Lambda, prints one JSON line
per outcome, and shows where the forwarded mail is. Running it twice on the same data shows
idempotency: every message is reported as a duplicate and nothing is sent twice.
"""

from __future__ import annotations

import json
import tempfile
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
from forwarder.flows.forward import Inbound


def sample_files() -> list[Path]:
    folder = resources.files("forwarder.samples")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".eml"))


@click.command()
@click.option(
    "--in-place",
    is_flag=True,
    help="Use the configured database and outbox (OTHERMAIL_DATABASE_URL, OTHERMAIL_DATA_DIR) "
    "instead of a throwaway folder.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's database and outbox in DIR instead of a throwaway folder.",
)
@click.pass_obj
def demo(obj: CliContext, in_place: bool, data_dir: Path | None) -> None:
    """Forward the sample messages to a demo alias and show the result (in a throwaway folder)."""
    import migrations
    from models import Alias, utcnow

    if in_place and data_dir is not None:
        raise click.UsageError("--in-place and --data-dir exclude each other")
    if in_place:
        obj.settings = replace(obj.settings, sender="outbox")
    else:
        throwaway = data_dir is None
        folder = Path(tempfile.mkdtemp(prefix="othermail-demo-")) if data_dir is None else data_dir
        obj.settings = replace(
            obj.settings,
            sender="outbox",
            data_dir=folder,
            database_url="",
            outbox=folder / "outbox",
            store_dir=folder / "mail",
        )
        kind = "a throwaway folder" if throwaway else "the folder"
        click.echo(
            f"demo data in {kind} {folder.resolve()} (the configured database and outbox are "
            "left alone; --in-place uses them)"
        )
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
    click.echo(f"alias {address} forwards to you@example.org (database {obj.safe_database_url})")

    forwarder = build_forwarder(obj, dry_run=False)
    for path in sample_files():
        raw = path.read_bytes()
        inbound = Inbound(message_id_for(raw), (address,), verdicts_from_headers(split_message(raw)))
        for report in forwarder.process(raw, inbound):
            outcome = "duplicate (already handled)" if report.duplicate else report.outcome.value
            click.echo(
                json.dumps(
                    {
                        "file": path.name,
                        "outcome": outcome,
                        "reason": report.reason,
                        "bytes_in": report.bytes_in,
                        "bytes_out": report.bytes_out,
                    }
                )
            )
    outbox = obj.settings.outbox
    count = sum(1 for _ in (outbox / "new").iterdir()) if (outbox / "new").is_dir() else 0
    click.echo(f"outbox: {outbox.resolve()} (a Maildir) holds {count} forwarded message(s)")
