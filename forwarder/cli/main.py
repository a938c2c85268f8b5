"""The ``othermail`` operator command. Settings are read once here, at the edge."""

from __future__ import annotations

import logging
import sys

import click

from forwarder.cli.context import CliContext
from forwarder.errors import OthermailError, SettingsError
from forwarder.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log every outcome line to standard error.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """othermail: throwaway email aliases, forwarded through SES or one box."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        ctx.obj = CliContext(Settings.from_env())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _register() -> None:
    from forwarder.cli import alias, db, demo, forward, run, token, user

    cli.add_command(db.db)
    cli.add_command(user.user)
    cli.add_command(token.token)
    cli.add_command(alias.alias)
    cli.add_command(forward.forward)
    cli.add_command(demo.demo)
    cli.add_command(run.run)
    cli.add_command(run.smtp)
    from forwarder.cli import worker

    cli.add_command(worker.worker)
    from forwarder.cli import cost, dns_check

    cli.add_command(dns_check.dns)
    cli.add_command(cost.cost)
    from forwarder.cli import aws

    cli.add_command(aws.aws)
    from forwarder.cli import domains

    cli.add_command(domains.domains)
    from forwarder.cli import replay

    cli.add_command(replay.replay)


_register()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except OthermailError as exc:  # pragma: no cover - click handles its own errors
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
