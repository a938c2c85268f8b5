"""``othermail domains recheck``: check users' domains again and move their status (forwarder/ops/domain_checks.py).

Run it periodically (deploy/ec2/systemd/othermail-domains.timer runs it every six hours).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from forwarder.cli.context import CliContext
from forwarder.ops.dns_doctor import make_resolver
from forwarder.settings import Settings


def ses_client(settings: Settings) -> Any:
    """The SESv2 client the command uses (a seam for tests; moto's mock_aws covers it)."""
    import boto3

    return boto3.session.Session(region_name=settings.aws_region).client("sesv2")


@click.group()
def domains() -> None:
    """Users' own domains."""


@domains.command()
@click.option(
    "--grace-hours",
    default=72.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a domain whose checks fail keeps forwarding before it is suspended.",
)
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Ask this name server (default: the system's resolvers from /etc/resolv.conf).",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds to wait for the name server.",
)
@click.pass_obj
def recheck(obj: CliContext, grace_hours: float, nameserver: str | None, timeout: float) -> None:
    """Check every verified, failing and suspended domain again.

    A domain whose check fails becomes failing (mail is still forwarded, its owner sees a warning);
    once checks have failed for --grace-hours it is suspended (mail is dropped, no new aliases)
    until a check passes, which makes it verified again. A check that could not be made (DNS or SES
    not answering) changes nothing. With OTHERMAIL_SENDER=ses, SES's own verdict on the domain's
    DKIM counts too, for domains added while the service sent through SES. Prints one line per
    domain; exit status 0 unless a domain could not be checked.
    """
    from forwarder.ops.domain_recheck import recheck_all

    settings = obj.settings
    try:
        resolver = make_resolver(nameserver, timeout)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    report = recheck_all(
        obj.sessions(),
        resolver,
        timedelta(hours=grace_hours),
        sesv2=lambda: ses_client(settings) if settings.sender == "ses" else None,
        region=settings.aws_region,
        on_line=click.echo,
    )
    click.echo(report.summary())
    click.get_current_context().exit(1 if report.unknown else 0)
