"""``othermail aws``: build (and, later, set up) the AWS side of othermail.

Each subcommand is a plain ``@aws.command()`` in this module (or a module that imports ``aws``
from here); ``forwarder.cli.main`` registers the group once.
"""

from __future__ import annotations

from pathlib import Path

import click

from forwarder.errors import OthermailError


@click.group()
def aws() -> None:
    """Build the packages othermail runs from on AWS."""


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 1024:.0f} KiB"


@aws.command("package-forwarder")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dist/forwarder.zip"),
    show_default=True,
    help="Where to write the zip.",
)
@click.option(
    "--driver",
    "drivers",
    type=click.Choice(["mysql", "postgres"]),
    multiple=True,
    help="Database driver to include (repeatable); default: both (PyMySQL and psycopg).",
)
@click.option("--no-bytecode", is_flag=True, help="Leave out compiled byte code (smaller zip, slower cold start).")
def package_forwarder(output: Path, drivers: tuple[str, ...], no_bytecode: bool) -> None:
    """Build the forwarder Lambda's zip: handler forwarder.hosts.lambda_handler.handler, runtime python3.11.

    It holds the modules the handler imports, SQLAlchemy and the database drivers, as wheels for
    Lambda (manylinux2014 x86_64, CPython 3.11), downloaded by pip when not cached. boto3 is not
    in it: Lambda's Python runtime provides it.
    """
    from forwarder.ops.packaging import build_forwarder_zip

    try:
        built = build_forwarder_zip(output, drivers or ("mysql", "postgres"), compile_bytecode=not no_bytecode)
    except OthermailError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(built.modules)} othermail modules; {', '.join(built.distributions)}")
    click.echo(f"{built.path} ({_size(built.size)})")


from forwarder.cli.aws_provision import provision_command  # noqa: E402  (its own module: SES set-up)

aws.add_command(provision_command)
