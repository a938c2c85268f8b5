"""``othermail cost``: the monthly AWS bill of the serverless deployment and of one EC2 box."""

from __future__ import annotations

import json
from pathlib import Path

import click

from forwarder.cli.context import CliContext
from forwarder.errors import PricingError
from forwarder.ops.cost import SES_PLANS, estimate
from forwarder.ops.cost_report import as_json, render
from forwarder.ops.measured import load as load_measured
from forwarder.ops.prices import load_prices


@click.command()
@click.option(
    "--messages-per-month",
    "messages",
    type=click.IntRange(0),
    help="Mail received (and forwarded) a month.",
)
@click.option(
    "--per-day",
    type=click.IntRange(0),
    help="Mail received (and forwarded) a day, instead of --messages-per-month (a month: 730 / 24 days).",
)
@click.option(
    "--average-size-kb",
    "size_kb",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Average size of a message, in KB.",
)
@click.option("--region", help="AWS region (default: OTHERMAIL_AWS_REGION); the price file must have it.")
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0),
    help="Days S3 keeps raw mail (the stack's RetentionDays; default: the price file's assumption, 14).",
)
@click.option(
    "--ses-plan",
    type=click.Choice(SES_PLANS),
    default="a-la-carte",
    show_default=True,
    help="The SES pricing plan of the account (SES console, Account dashboard).",
)
@click.option(
    "--measured",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Measured figures (bench/results/measured.json, written by the benches) instead of the price file's.",
)
@click.option("--json", "as_json_output", is_flag=True, help="Print the estimate as JSON.")
@click.pass_obj
def cost(
    obj: CliContext,
    messages: int | None,
    per_day: int | None,
    size_kb: float,
    region: str | None,
    retention_days: float | None,
    ses_plan: str,
    measured: Path | None,
    as_json_output: bool,
) -> None:
    """Monthly AWS cost: serverless and one EC2 box, and the options at that load.

    Prints the estimate line by line, the serverless deployment next to one EC2 box, then the
    figures a message costs (measured, with the command and commit, or assumed), and the options
    sized for the load: serverless with RDS Proxy or Aurora Serverless v2, fleets of EC2 boxes.

    Prices come from forwarder/ops/pricing/aws_prices.json: AWS list prices with their date and source
    pages, entered by hand; re-check them before relying on the figures. Free tiers are not counted.
    """
    if (messages is None) == (per_day is None):
        raise click.UsageError("give --messages-per-month or --per-day (one of them)")
    try:
        prices = load_prices(region or obj.settings.aws_region)
        figures = load_measured(measured) if measured is not None else None
    except PricingError as exc:
        raise click.ClickException(str(exc)) from None
    count = round(per_day * prices.assumptions.days_per_month) if per_day is not None else messages or 0
    result = estimate(count, size_kb, prices, retention_days=retention_days, ses_plan=ses_plan, measured=figures)
    if as_json_output:
        click.echo(json.dumps(as_json(result), indent=2))
        return
    for line in render(result):
        click.echo(line)
