"""The ``othermail`` operator command. Settings are read once here, at the edge."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from forwarder.cli.context import CliContext
from forwarder.errors import OthermailError, SettingsError
from forwarder.settings import Settings


class OneLineError(click.ClickException):
    """What every operator mistake becomes: ``Error: <what is wrong>`` on one line of standard
    error, naming the option or variable, and a non-zero exit status (2 for usage errors)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it from the instance

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


@contextmanager
def _one_line() -> Iterator[None]:
    try:
        yield
    except OneLineError:
        raise
    except click.UsageError as exc:
        command = f" ({exc.ctx.command_path} -h for help)" if exc.ctx is not None else ""
        raise OneLineError(exc.format_message() + command, exc.exit_code) from exc
    except click.ClickException as exc:
        raise OneLineError(exc.format_message(), exc.exit_code) from exc
    except OthermailError as exc:
        raise OneLineError(str(exc)) from exc
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise OneLineError(
            f"database error: {reason} (a missing table or column: othermail db upgrade; "
            "the server unreachable: check OTHERMAIL_DATABASE_URL)"
        ) from exc


class OthermailGroup(click.Group):
    """Click prints usage errors on four lines and lets othermail's own errors through as
    tracebacks; here both become :class:`OneLineError` (with CliRunner too, not only in ``main``)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        with _one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line():
            return super().invoke(ctx)


@click.group(cls=OthermailGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    from forwarder.cli import keys

    cli.add_command(keys.keys)
    from forwarder.cli import contact

    cli.add_command(contact.contact)
    cli.add_command(contact.rule)


_register()


def main() -> None:
    try:
        cli(prog_name="othermail", standalone_mode=True)
    except OthermailError as exc:  # pragma: no cover - click handles its own errors
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
