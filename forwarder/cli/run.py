"""``othermail run`` (web app + SMTP listener + forwarder) and ``othermail smtp`` (without the web app)."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from dataclasses import replace

import click

from forwarder.cli.context import CliContext, private_files
from forwarder.errors import AddressInUse
from forwarder.settings import Settings


def _serve(
    obj: CliContext,
    host: str | None,
    web_port: int | None,
    smtp_port: int,
    workers: int,
    smtp_option: str,
    threads: bool = False,
) -> None:
    from forwarder.hosts.onebox import OneBox

    private_files()
    # One box delivers to the local outbox unless OTHERMAIL_SENDER says otherwise.
    settings = Settings.from_env(default_sender="outbox")
    if host:
        settings = replace(settings, smtp_host=host)
    obj.settings = settings
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # a server: one JSON line per outcome on standard error (journald), as `othermail worker` does
    logging.getLogger("othermail.outcome").setLevel(logging.INFO)
    began = time.monotonic()
    box = OneBox(settings, web_port=web_port, smtp_port=smtp_port, workers=workers, processes=not threads)
    try:
        started = box.start()
    except AddressInUse as exc:
        box.stop(timeout=5)
        option = f"OTHERMAIL_SMTP_PORT/{smtp_option}" if exc.service == "smtp" else "--web-port"
        raise click.ClickException(f"{option}: {exc}") from None
    except BaseException:
        box.stop(timeout=5)
        raise
    # What start-up built (modules, the app, the engine) lives as long as the process: keep it out
    # of the garbage collector's full passes, which would otherwise walk it again and again.
    gc.freeze()
    width = max(len(name) for name, _ in started.lines)
    for name, where in started.lines:
        click.echo(f"{name.ljust(width)}  {where}")
    click.echo(f"ready in {time.monotonic() - began:.2f} s; Ctrl-C or SIGTERM stops", err=False)
    while not stop.wait(1.0):
        pass
    click.echo("stopping: no new mail accepted; finishing what is being forwarded")
    finished = box.stop(timeout=30)
    left = len(box.spool.pending())
    click.echo(f"stopped; {left} message(s) stay spooled for the next start" if left or not finished else "stopped")


@click.command()
@click.option("--host", default=None, help="Address to listen on (OTHERMAIL_SMTP_HOST, default 127.0.0.1).")
@click.option("--web-port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--smtp-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="SMTP listener port (OTHERMAIL_SMTP_PORT, default 2525).",
)
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Processes forwarding accepted mail."
)
@click.option("--threads", is_flag=True, help="Forward on threads of the listener's process, not in worker processes.")
@click.pass_obj
def run(obj: CliContext, host: str | None, web_port: int, smtp_port: int | None, workers: int, threads: bool) -> None:
    """Run everything on one box: web app, SMTP listener and forwarder."""
    port = obj.settings.smtp_port if smtp_port is None else smtp_port
    _serve(obj, host, web_port, port, workers, "--smtp-port", threads)


@click.command()
@click.option("--host", default=None, help="Address to listen on (OTHERMAIL_SMTP_HOST, default 127.0.0.1).")
@click.option(
    "--port", "smtp_port", default=None, type=click.IntRange(0, 65535), help="Port (OTHERMAIL_SMTP_PORT, default 2525)."
)
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Processes forwarding accepted mail."
)
@click.option("--threads", is_flag=True, help="Forward on threads of the listener's process, not in worker processes.")
@click.pass_obj
def smtp(obj: CliContext, host: str | None, smtp_port: int | None, workers: int, threads: bool) -> None:
    """Run the SMTP listener and the forwarder, without the web app (for a systemd unit)."""
    port = obj.settings.smtp_port if smtp_port is None else smtp_port
    _serve(obj, host, None, port, workers, "--port", threads)
