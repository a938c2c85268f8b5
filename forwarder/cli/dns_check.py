"""``othermail dns check DOMAIN``: are the DNS records SES needs in place? (forwarder/ops/dns_doctor/)"""

from __future__ import annotations

import click

from forwarder.cli.context import CliContext
from forwarder.ops.dns_doctor import Expected, check_domain, make_resolver, normalize_domain, render


@click.group()
def dns() -> None:
    """Check the DNS records of an alias domain."""


@dns.command()
@click.argument("domain")
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Ask this name server (default: the system's resolvers from /etc/resolv.conf).",
)
@click.option("--region", help="SES region the domain receives and sends in (default: OTHERMAIL_AWS_REGION).")
@click.option(
    "--mail-from",
    "mail_from",
    metavar="SUBDOMAIN",
    help="Custom MAIL FROM domain, a label or a full name (default: mail.DOMAIN).",
)
@click.option(
    "--dkim-token",
    "dkim_tokens",
    multiple=True,
    metavar="TOKEN",
    help="An Easy DKIM token, as `othermail aws provision` prints them; give all three.",
)
@click.option(
    "--timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds to wait for the name server.",
)
@click.pass_obj
def check(
    obj: CliContext,
    domain: str,
    nameserver: str | None,
    region: str | None,
    mail_from: str | None,
    dkim_tokens: tuple[str, ...],
    timeout: float,
) -> None:
    """Check the MX, SPF, DKIM, DMARC and MAIL FROM records of DOMAIN for Amazon SES.

    Prints each record as found, missing or wrong, then the records to create in zone-file syntax.
    Exit status 0 when every required record (MX, SPF, the DKIM CNAMEs) is in place, 1 when one is
    missing or wrong or could not be checked; DMARC and the MAIL FROM records are recommended and
    do not change it.
    """
    try:
        domain = normalize_domain(domain)
        resolver = make_resolver(nameserver, timeout)
        expected = Expected(region=region or obj.settings.aws_region, dkim_tokens=dkim_tokens, mail_from=mail_from)
        report = check_domain(domain, resolver, expected)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    render(report, click.echo)
    click.get_current_context().exit(0 if report.ok else 1)
