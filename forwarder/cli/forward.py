"""``othermail forward``: run files through the same pipeline as the Lambda."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click

from forwarder.cli.context import CliContext
from forwarder.cli.params import ADDRESS
from forwarder.core.envelope import verdicts_from_headers
from forwarder.core.message import split_message
from forwarder.flows.forward import Forwarder, Inbound


def build_forwarder(obj: CliContext, dry_run: bool) -> Forwarder:
    """The runtime's forwarder (forwarder/runtime.py), or with ``dry_run`` one that cannot send."""
    runtime = obj.runtime()
    return runtime.preview_forwarder() if dry_run else runtime.forwarder


def message_id_for(raw: bytes) -> str:
    """A file's message id: its content hash, so forwarding the same file twice sends once."""
    return "file-" + hashlib.sha256(raw).hexdigest()[:40]


@click.command()
@click.option("--recipient", required=True, type=ADDRESS, help="The alias address the files were sent to.")
@click.option("--dry-run", is_flag=True, help="Resolve, decide and rewrite; send and record nothing.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each outgoing message to DIR/<input file name>.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def forward(obj: CliContext, recipient: str, dry_run: bool, out_dir: Path | None, files: tuple[Path, ...]) -> None:
    """Forward raw message FILES addressed to RECIPIENT, printing one JSON line per file.

    The exit status is 0 when every file was handled (forwarded, or dropped with a reason).
    """
    forwarder = build_forwarder(obj, dry_run)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        raw = path.read_bytes()
        split = split_message(raw)
        inbound = Inbound(message_id_for(raw), (recipient,), verdicts_from_headers(split))
        if dry_run:
            ((_, result),) = forwarder.preview(raw, inbound)
            outcome, reason, bytes_out = result.outcome.value, result.reason, result.bytes_out
            if out_dir is not None and result.outgoing is not None:
                (out_dir / path.name).write_bytes(result.outgoing.as_bytes())
        else:
            reports = forwarder.process(raw, inbound)
            first = reports[0]
            outcome = "duplicate" if all(r.duplicate for r in reports) else first.outcome.value
            reason, bytes_out = first.reason, first.bytes_out
        line = {"file": str(path), "outcome": outcome, "reason": reason, "bytes_in": len(raw), "bytes_out": bytes_out}
        click.echo(json.dumps(line))
