"""``othermail cost``'s report: the estimate of forwarder/ops/cost.py as lines of text or as JSON.

:func:`render` prints every row with both columns (serverless, one EC2 box), the totals and the
notes; then :func:`render_scale` the figures a message costs with where each came from, the load,
the options at this load with their monthly totals, and every sizing assumption. :func:`as_json`
carries the same, each figure with its provenance.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict
from typing import Any

from forwarder.ops.cost import Deployment, Estimate, LineItem, money, number, price_text
from forwarder.ops.prices import PRICE_FILE
from forwarder.ops.sizing import lambda_billed_ms


def describe(item: LineItem) -> str:
    """``10,000 mails at $0.10 per 1,000``: how the amount comes about."""
    if item.price is None:
        return item.note
    price = item.price
    per = "" if price.per == 1 else f" per {number(price.per)}"
    text = f"{number(item.quantity)} {price.unit} at {price_text(price.price)}{per}"
    return f"{text} ({item.note})" if item.note else text


def render(estimate_: Estimate) -> list[str]:
    """The CLI's lines: every row with both columns, the totals, then the notes."""
    width = 14
    lines = [
        f"othermail cost: {estimate_.messages:,} messages a month ({number(estimate_.load.per_day)} a day), "
        f"{number(estimate_.size_kb)} KB on average, "
        f"region {estimate_.region}",
        f"AWS list prices as of {estimate_.as_of} ({PRICE_FILE}),",
        "entered by hand, not fetched: re-check them on the AWS pricing pages the file names.",
        "",
        f"{'':<36}{estimate_.serverless.name:>{width}}{estimate_.ec2.name:>{width}}",
    ]
    for row in estimate_.rows:
        left, right = estimate_.serverless.item(row), estimate_.ec2.item(row)
        cells = [
            money(i.amount) if i is not None and i.price is not None else ("included" if i else "-")
            for i in (left, right)
        ]
        lines.append(f"{row:<36}{cells[0]:>{width}}{cells[1]:>{width}}")
        details = [describe(i) for i in (left, right) if i is not None]
        if len(details) == 2 and details[0] != details[1]:
            lines.append(f"    serverless: {details[0]}")
            lines.append(f"    EC2 box: {details[1]}")
        elif details:
            lines.append(f"    {details[0]}")
    totals = [money(estimate_.serverless.total), money(estimate_.ec2.total)]
    lines.append(f"{'Total a month':<36}{totals[0]:>{width}}{totals[1]:>{width}}")
    lines.append("")
    lines += [textwrap.fill(note, 100, initial_indent="- ", subsequent_indent="  ") for note in estimate_.notes]
    return lines + [""] + render_scale(estimate_)


def _fill(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(
        text,
        100,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def render_scale(estimate_: Estimate) -> list[str]:
    """The figures a message costs (and where each came from), the load, the options with their
    monthly totals, and every sizing assumption."""
    load, s, f = estimate_.load, estimate_.sizing, estimate_.figures
    lines = ["Figures per message (othermail cost --measured FILE replaces them; forwarder/ops/measured.py):"]
    for key, figure in f.items():
        lines += _fill(f"{key} = {number(figure.value)}: {figure.provenance}")
    lines += ["", "At this load:"]
    lines += _fill(
        f"{number(load.per_day)} messages a day: {number(load.average_per_second)} a second on average, "
        f"{number(load.peak_per_second)} at the peak; {number(load.statements_per_message)} statements a message: "
        f"{number(load.average_statements_per_second)} statements/s on average, "
        f"{number(load.peak_statements_per_second)} at the peak"
    )
    lines += ["", f"{'Options at this load':<44}{'a month':>14}{'without SES, S3':>18}"]
    for option in estimate_.options:
        lines.append(f"{option.name:<44}{money(option.total):>14}{money(option.own_total):>18}")
        lines += _fill(option.sizing, "    ")
    memory, warm = f["lambda_memory_mb"].value, f["lambda_warm_ms_per_message"].value
    stretch = max(1.0, s.lambda_full_vcpu_mb / memory)
    lines += ["", "Sizing assumptions (sizing in forwarder/ops/pricing/aws_prices.json; assumed, not measured):"]
    for text in (
        f"peak factor {s.peak_factor:g}: the busiest second of a day carries {s.peak_factor:g}x the day's average "
        "rate; databases and boxes are sized for it",
        f"headroom {s.headroom:.0%}: a database or a box is planned to be at most {s.headroom:.0%} busy at the peak",
        f"a database vCPU runs {number(s.statements_per_vcpu_second)} statements a second (short indexed "
        "statements, prepared); a burstable size (t4g) counts at its baseline share of each vCPU",
        f"an Aurora Serverless v2 ACU is {s.aurora_vcpus_per_acu:g} of a vCPU; it bills the ACUs it scales to, "
        f"priced at the average rate's (at least {s.aurora_min_acu:g}); Aurora I/O is not counted",
        f"RDS Proxy bills the vCPUs of the instance behind it, at least {s.rds_proxy_min_vcpus:g}",
        f"Lambda: a function gets a full vCPU at {number(s.lambda_full_vcpu_mb)} MB and a share below it, so the "
        f"warm duration, measured on a full core, is stretched whole to {memory:g} MB's share (an upper bound: "
        f"waiting does not stretch) and {number(s.lambda_aws_wait_ms)} ms of S3 and SES round trips in the region "
        f"are added: {number(warm)} ms x "
        f"{stretch:.2f} + {number(s.lambda_aws_wait_ms)} ms = "
        f"{number(lambda_billed_ms(s, warm, memory))} ms billed a message",
        "a box's vCPU forwards as many messages a second as a core of the machine that measured the one box "
        "(c7g is Graviton, arm64); a burstable size (t3) counts at its baseline share of each vCPU; more than "
        "one box share an RDS instance sized as above",
    ):
        lines += _fill("- " + text)
    return lines


def as_json(estimate_: Estimate) -> dict[str, Any]:
    def column(d: Deployment) -> dict[str, Any]:
        return {
            "name": d.name,
            "total": round(d.total, 6),
            "items": [
                {
                    "row": i.row,
                    "quantity": i.quantity,
                    "unit": i.price.unit if i.price else "",
                    "unit_price": i.price.price if i.price else 0,
                    "per": i.price.per if i.price else 1,
                    "amount": round(i.amount, 6),
                    "note": i.note,
                    "source": i.price.source if i.price else "",
                }
                for i in d.items
            ],
        }

    return {
        "messages": estimate_.messages,
        "size_kb": estimate_.size_kb,
        "region": estimate_.region,
        "as_of": estimate_.as_of,
        "serverless": column(estimate_.serverless),
        "ec2": column(estimate_.ec2),
        "notes": list(estimate_.notes),
        "figures": {key: figure.as_json() for key, figure in estimate_.figures.items()},
        "load": {
            "messages_per_day": estimate_.load.per_day,
            "average_messages_per_second": estimate_.load.average_per_second,
            "peak_messages_per_second": estimate_.load.peak_per_second,
            "peak_statements_per_second": estimate_.load.peak_statements_per_second,
        },
        "options": [
            {
                "name": o.name,
                "total": round(o.total, 6),
                "without_ses_s3": round(o.own_total, 6),
                "sizing": o.sizing,
                "items": column(Deployment(o.name, o.items))["items"],
            }
            for o in estimate_.options
        ],
        "sizing": {k: v for k, v in asdict(estimate_.sizing).items() if k not in ("database_sizes", "ec2_sizes")},
    }
