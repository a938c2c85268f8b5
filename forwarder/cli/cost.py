"""``othermail cost``: the monthly AWS bill of the serverless deployment and of one EC2 box."""

from __future__ import annotations

import json

import click

from forwarder.cli.context import CliContext
from forwarder.ops.cost import SES_PLANS, PricingError, as_json, estimate, load_prices, render


@click.command()
@click.option(
    "--messages-per-month",
    "messages",
    required=True,
    type=click.IntRange(0),
    help="Mail received (and forwarded) a month.",
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
@click.option("--json", "as_json_output", is_flag=True, help="Print the estimate as JSON.")
@click.pass_obj
def cost(
    obj: CliContext,
    messages: int,
    size_kb: float,
    region: str | None,
    retention_days: float | None,
    ses_plan: str,
    as_json_output: bool,
) -> None:
    """Monthly AWS cost: serverless and one EC2 box.

    Prints the estimate line by line, the serverless deployment next to one EC2 box.

    Prices come from forwarder/ops/pricing/aws_prices.json: AWS list prices with their date and source
    pages, entered by hand; re-check them before relying on the figures. Free tiers are not counted.
    """
    try:
        prices = load_prices(region or obj.settings.aws_region)
    except PricingError as exc:
        raise click.ClickException(str(exc)) from None
    result = estimate(messages, size_kb, prices, retention_days=retention_days, ses_plan=ses_plan)
    if as_json_output:
        click.echo(json.dumps(as_json(result), indent=2))
        return
    for line in render(result):
        click.echo(line)
