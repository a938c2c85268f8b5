"""What othermail costs on AWS a month: the serverless deployment next to one EC2 box.

:func:`estimate` is pure: a message count, an average size and a :class:`PriceBook` in, an
:class:`Estimate` with every line item out. The prices live in one data file,
``forwarder/ops/pricing/aws_prices.json`` (list prices with their date and source pages; the operator
re-checks them), read by :func:`forwarder.ops.prices.load_prices`.

The two deployments:

- **serverless** (deploy/aws/othermail.yaml): SES receives, its receipt rule stores the raw mail
  in S3 and invokes the forwarder Lambda (x86_64, memory and average duration as assumed in the
  file), which reads the database credentials from Secrets Manager, uses an RDS PostgreSQL
  db.t4g.micro (Single-AZ, gp3 storage) and sends through SES; bounces and complaints go to an SNS
  topic; Lambda logs go to CloudWatch Logs. The web app is not in this column (it needs a host of
  its own).
- **one EC2 box** (deploy/ec2, the worker mode): SES still receives and sends; the receipt rule
  stores the mail in S3 and notifies SNS, which feeds an SQS queue the worker long-polls; a t3.small
  runs the web app, the worker and MariaDB, with a gp3 volume and a public IPv4 address.

Both keep raw mail in S3 for ``retention_days`` (the bucket's lifecycle rule), so storage is the
steady state: a month's mail times retention_days / days in a month.

What a message costs inside othermail comes from measured figures (forwarder/ops/measured.py):
statements a message costs the database, the warm Lambda's duration and memory, the messages a
second one core of the one box forwards. The price file holds defaults for them, each with the
command that measured it or marked as assumed; ``othermail cost --measured PATH`` replaces them
with a bench run's. They size the serverless column's database, and the options at this load
(forwarder/ops/sizing.py): the serverless deployment with RDS Proxy in front of an RDS instance or
with Aurora Serverless v2, against fleets of EC2 boxes of several sizes, each with its monthly total.
forwarder/ops/cost_report.py prints the estimate (or gives it as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from forwarder.errors import PricingError as PricingError  # its name here still works (forwarder/errors.py)
from forwarder.ops.measured import Figure
from forwarder.ops.prices import Assumptions, Price, PriceBook
from forwarder.ops.sizing import (
    Load,
    Sizing,
    aurora_acus,
    boxes_needed,
    lambda_billed_ms,
    pick_database,
)

KB_PER_GB = 1024 * 1024
#: Rows every deployment pays alike (receiving, sending and keeping the mail).
SHARED_ROWS = ("SES ", "S3:")
#: SES pricing plans ``estimate`` knows: how the sending line is priced.
SES_PLANS = ("a-la-carte", "essentials")


@dataclass(frozen=True)
class LineItem:
    row: str  # what it pays for; the same row in both columns lines up
    quantity: float
    price: Price | None  # None: included elsewhere, costs nothing extra
    note: str = ""

    @property
    def amount(self) -> float:
        return 0.0 if self.price is None else self.quantity / self.price.per * self.price.price


@dataclass(frozen=True)
class Deployment:
    name: str
    items: tuple[LineItem, ...]

    @property
    def total(self) -> float:
        return sum(item.amount for item in self.items)

    def item(self, row: str) -> LineItem | None:
        return next((i for i in self.items if i.row == row), None)


@dataclass(frozen=True)
class Option:
    """One way to carry the load, priced whole: its line items and how it was sized."""

    name: str
    items: tuple[LineItem, ...]
    sizing: str

    @property
    def total(self) -> float:
        return sum(item.amount for item in self.items)

    @property
    def own_total(self) -> float:
        """The total without SES and S3, which every option pays alike."""
        return sum(item.amount for item in self.items if not item.row.startswith(SHARED_ROWS))


@dataclass(frozen=True)
class Estimate:
    messages: int
    size_kb: float
    region: str
    as_of: str
    serverless: Deployment
    ec2: Deployment
    notes: tuple[str, ...]
    figures: Mapping[str, Figure]
    load: Load
    options: tuple[Option, ...]
    sizing: Sizing

    @property
    def rows(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.serverless.items + self.ec2.items:
            seen.setdefault(item.row, None)
        return list(seen)


# ------------------------------------------------------------------------------------ the estimate


def estimate(
    messages: int,
    size_kb: float,
    prices: PriceBook,
    retention_days: float | None = None,
    ses_plan: str = "a-la-carte",
    measured: Mapping[str, Figure] | None = None,
) -> Estimate:
    """The monthly cost of ``messages`` received and forwarded, ``size_kb`` each on average, with
    SES sending priced by ``ses_plan`` (one of :data:`SES_PLANS`); ``measured`` figures
    (forwarder/ops/measured.py) replace the price file's defaults of the same name."""
    if messages < 0 or size_kb <= 0:
        raise ValueError("messages must be 0 or more and size_kb more than 0")
    if ses_plan not in SES_PLANS:
        raise ValueError(f"ses_plan must be one of {', '.join(SES_PLANS)}")
    a = prices.assumptions
    if retention_days is not None:
        a = replace(a, retention_days=retention_days)
    p = prices.prices
    n = messages
    sends = n * a.destinations_per_message
    size_gb = size_kb / KB_PER_GB
    chunks = n * math.ceil(size_kb / a.chunk_kb)
    stored_gb_month = n * size_gb * a.retention_days / a.days_per_month
    hours = a.hours_per_month
    feedback = sends * a.feedback_fraction
    figures = {**prices.figures, **(measured or {})}
    sizing = prices.sizing
    load = Load(n / a.days_per_month, sizing.peak_factor, figures["statements_per_message"].value)
    database, databases = pick_database(sizing, load.peak_statements_per_second)
    memory_mb, warm_ms = figures["lambda_memory_mb"].value, figures["lambda_warm_ms_per_message"].value
    billed_ms = lambda_billed_ms(sizing, warm_ms, memory_mb)

    shared = (
        LineItem("SES receiving: mails", n, p["ses_receive_mail"]),
        LineItem("SES receiving: 256 KB chunks", chunks, p["ses_receive_chunk"]),
        LineItem("SES sending: mails", sends, p["ses_send_mail"], "à la carte plan")
        if ses_plan == "a-la-carte"
        else LineItem("SES sending: mails", sends, p["ses_send_mail_essentials"], "Essentials plan"),
        LineItem(
            "SES sending: data",
            sends * size_gb,
            p["ses_send_data"],
            "the whole message counted"
            + ("" if ses_plan == "a-la-carte" else "; as à la carte, not confirmed for Essentials"),
        ),
        LineItem("S3: PUT (SES stores each mail)", n, p["s3_put"]),
        LineItem("S3: GET (the forwarder reads it)", n, p["s3_get"]),
        LineItem("S3: storage", stored_gb_month, p["s3_storage"], f"kept {a.retention_days:g} days"),
    )
    serverless = Deployment(
        "serverless",
        shared
        + (
            LineItem("Lambda: requests", n, p["lambda_request"]),
            LineItem(
                "Lambda: compute",
                n * memory_mb / 1024 * billed_ms / 1000,
                p["lambda_gb_second"],
                f"{memory_mb:g} MB, {number(billed_ms)} ms each",
            ),
            LineItem(
                "CloudWatch Logs: ingestion",
                n * a.log_kb_per_message / KB_PER_GB,
                p["logs_ingestion"],
                f"{a.log_kb_per_message:g} KB of log a message",
            ),
            LineItem("Secrets Manager: database secret", 1, p["secret_month"]),
            LineItem(
                "SNS: publishes",
                feedback,
                p["sns_publish"],
                f"bounces and complaints, {a.feedback_fraction:.0%} of sends",
            ),
            LineItem(
                "Database: instance",
                hours * databases,
                p[database.price],
                "" if databases == 1 else f"{databases} instances",
            ),
            LineItem("Database: storage", a.rds_storage_gb * databases, p["rds_storage"]),
        ),
    )
    ec2 = Deployment(
        "one EC2 box",
        shared
        + (
            LineItem(
                "SNS: publishes", n + feedback, p["sns_publish"], "one per mail from the S3 action, plus feedback"
            ),
            LineItem(
                "SQS: requests",
                n * a.sqs_requests_per_message + a.sqs_empty_receives_per_month,
                p["sqs_request"],
                "receive + delete a mail, plus empty 20 s long polls",
            ),
            LineItem("Database: instance", 0, None, "MariaDB on the instance"),
            LineItem("EC2: instance", hours, p["ec2_instance_hour"]),
            LineItem("EC2: EBS volume", a.ebs_gb, p["ebs_storage"]),
            LineItem("EC2: public IPv4 address", hours, p["public_ipv4_hour"]),
        ),
    )
    aurora = 0.5 * hours * p["aurora_acu_hour"].price
    nat = hours * p["nat_gateway_hour"].price
    notes: tuple[str, ...] = (
        "SES has pricing plans since 2026-07-21: accounts new to SES start on Essentials (no monthly fee, "
        "sending priced per mail), established ones keep à la carte; the account's plan is in the SES "
        f"console. This estimate uses {'à la carte' if ses_plan == 'a-la-carte' else 'Essentials'} "
        "(--ses-plan chooses). Receiving is priced the same in both here.",
        "Free tiers are not counted: Lambda's 1 million requests and 400,000 GB-seconds a month, the "
        "first million SNS publishes and SQS requests a month, and the new-account offers (credits, or "
        "12 months of SES, S3, RDS db.t4g.micro and EC2 micro allowances) would lower these figures.",
        f"Database: RDS {database.name}, sized for the peak (below). Aurora Serverless v2 at its 0.5 ACU "
        f"minimum would cost {money(aurora)} a month instead, before storage and I/O.",
        f"A forwarder Lambda inside a VPC (deploy/aws/othermail.yaml's SubnetIds) also needs a NAT gateway "
        f"({money(nat)} a month plus data) or interface endpoints: not counted.",
        "Not counted either: data transfer out of the EC2 box (web pages), taxes, the domain name, and the "
        "web app's host in the serverless column.",
    )
    options = _options(prices, a, load, figures["onebox_msgs_per_second_per_core"].value, serverless, ec2)
    first = sizing.ec2_sizes[0]
    boxes = boxes_needed(sizing, first, figures["onebox_msgs_per_second_per_core"].value, load.peak_per_second)
    if boxes > 1:
        notes += (
            f"The one EC2 box column is a single {first.name}: at this load it takes {boxes} of them "
            "(Options at this load, below).",
        )
    return Estimate(n, size_kb, prices.region, prices.as_of, serverless, ec2, notes, figures, load, options, sizing)


def _options(
    prices: PriceBook, a: Assumptions, load: Load, per_core: float, serverless: Deployment, ec2: Deployment
) -> tuple[Option, ...]:
    """The ways to carry ``load``: serverless with RDS Proxy + RDS or with Aurora Serverless v2,
    and a fleet of each EC2 size, every one priced whole for a month."""
    p, s, hours = prices.prices, prices.sizing, a.hours_per_month
    peak, average = load.peak_statements_per_second, load.average_statements_per_second
    database, databases = pick_database(s, peak)
    db_items = (
        LineItem("Database: instance", hours * databases, p[database.price]),
        LineItem("Database: storage", a.rds_storage_gb * databases, p["rds_storage"]),
    )
    db_sizing = (
        f"{database.name}: {database.vcpus} vCPUs"
        + ("" if database.sustained == 1 else f" at a {database.sustained:.0%} baseline")
        + f" x {number(s.statements_per_vcpu_second)} statements/s x {s.headroom:.0%} headroom = "
        f"{number(s.database_capacity(database))}/s for {number(peak)}/s at peak"
        + ("" if databases == 1 else f": {databases} of them, beyond one PostgreSQL without sharding")
    )
    lambda_side = tuple(i for i in serverless.items if not i.row.startswith("Database:"))
    proxy_vcpus = max(s.rds_proxy_min_vcpus, database.vcpus * databases)
    acus, peak_acus = aurora_acus(s, average), aurora_acus(s, peak)
    options = [
        Option(
            f"serverless, RDS Proxy + {database.name}",
            lambda_side
            + db_items
            + (LineItem("RDS Proxy", proxy_vcpus * hours, p["rds_proxy_vcpu_hour"], f"{proxy_vcpus:g} vCPUs"),),
            db_sizing + f"; RDS Proxy billed on {proxy_vcpus:g} vCPUs",
        ),
        Option(
            "serverless, Aurora Serverless v2",
            lambda_side
            + (
                LineItem("Database: Aurora capacity", acus * hours, p["aurora_acu_hour"], f"{acus:g} ACUs on average"),
                LineItem("Database: storage", s.aurora_storage_gb, p["aurora_storage"]),
            ),
            f"{number(s.acu_capacity())} statements/s an ACU ({s.aurora_vcpus_per_acu:g} vCPU x "
            f"{number(s.statements_per_vcpu_second)} x {s.headroom:.0%} headroom): {acus:g} ACUs for the average "
            f"{number(average)}/s, scaling to {peak_acus:g} at the peak's {number(peak)}/s; I/O not counted",
        ),
    ]
    box_side = tuple(i for i in ec2.items if not i.row.startswith(("EC2:", "Database:")))
    for size in s.ec2_sizes:
        boxes = boxes_needed(s, size, per_core, load.peak_per_second)
        items = box_side + (
            LineItem("EC2: instance", hours * boxes, p[size.price]),
            LineItem("EC2: EBS volume", a.ebs_gb * boxes, p["ebs_storage"]),
            LineItem("EC2: public IPv4 address", hours * boxes, p["public_ipv4_hour"]),
        )
        if boxes > 1:
            items += db_items
        per_box = size.cores * per_core * s.headroom
        options.append(
            Option(
                f"EC2, {boxes} x {size.name}",
                items,
                f"{size.vcpus} vCPUs"
                + ("" if size.sustained == 1 else f" at a {size.sustained:.0%} baseline")
                + f" x {number(per_core)} msg/s a core x {s.headroom:.0%} headroom = {number(per_box)} msg/s a box"
                f" for {number(load.peak_per_second)} at peak; "
                + ("MariaDB on the box" if boxes == 1 else f"the boxes share an RDS {database.name}"),
            )
        )
    return tuple(options)


# ------------------------------------------------------------------------------------ amounts as text


def money(amount: float) -> str:
    if 0 < amount < 0.005:
        return "<$0.01"
    return f"${amount:,.2f}"


def number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}" if value < 1 else f"{value:,.2f}"


def price_text(value: float) -> str:
    if value >= 0.01 and round(value, 2) == value:
        return f"${value:.2f}"
    return "$" + f"{value:.10f}".rstrip("0").rstrip(".")
