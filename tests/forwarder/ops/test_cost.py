"""``othermail cost`` (forwarder/ops/cost.py): figures computed by hand, monotonic, the price file, the CLI.

The hand-computed tests use their own copy of the prices (``PRICES`` below), so an operator who
updates forwarder/ops/pricing/aws_prices.json does not break them; the bundled file is checked for
shape, dates and sources.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.cli.main import cli
from forwarder.errors import PricingError
from forwarder.ops.cost import Estimate, estimate, money
from forwarder.ops.prices import PRICE_KEYS, PriceBook, load_prices

PRICES = {
    "ses_receive_mail": (0.10, 1000),
    "ses_receive_chunk": (0.09, 1000),
    "ses_send_mail": (0.10, 1000),
    "ses_send_data": (0.12, 1),
    "s3_put": (0.005, 1000),
    "s3_get": (0.0004, 1000),
    "s3_storage": (0.023, 1),
    "lambda_request": (0.20, 1_000_000),
    "lambda_gb_second": (0.0000166667, 1),
    "logs_ingestion": (0.50, 1),
    "secret_month": (0.40, 1),
    "rds_instance_hour": (0.016, 1),
    "rds_storage": (0.115, 1),
    "aurora_acu_hour": (0.12, 1),
    "sns_publish": (0.50, 1_000_000),
    "sqs_request": (0.40, 1_000_000),
    "ec2_instance_hour": (0.0208, 1),
    "ebs_storage": (0.08, 1),
    "public_ipv4_hour": (0.005, 1),
    "nat_gateway_hour": (0.045, 1),
    "ses_send_mail_essentials": (0.16, 1000),
    "rds_proxy_vcpu_hour": (0.015, 1),
    "aurora_storage": (0.10, 1),
    "rds_t4g_medium_hour": (0.065, 1),
    "rds_m7g_large_hour": (0.168, 1),
    "rds_m7g_xlarge_hour": (0.336, 1),
    "ec2_c7g_large_hour": (0.0725, 1),
    "ec2_c7g_xlarge_hour": (0.145, 1),
}
ASSUMPTIONS = {
    "hours_per_month": 730,
    "destinations_per_message": 1,
    "retention_days": 14,
    "log_kb_per_message": 1,
    "feedback_fraction": 0.02,
    "rds_storage_gb": 20,
    "ebs_gb": 20,
    "sqs_empty_receives_per_month": 131400,
    "sqs_requests_per_message": 2,
    "chunk_kb": 256,
}
# The figures a message costs, as the price file's defaults (the hand-computed cases below were
# worked out with a 512 MB Lambda billed 500 ms a message: no stretch to a vCPU share, no waits).
FIGURES = {
    "statements_per_message": {"value": 6, "command": "bench/statements.py", "commit": "abc123"},
    "transactions_per_message": {"value": 2, "command": "bench/statements.py", "commit": "abc123"},
    "lambda_warm_ms_per_message": {"value": 500, "note": "a round figure"},
    "lambda_memory_mb": {"value": 512, "note": "the stack's default"},
    "onebox_msgs_per_second_per_core": {"value": 200, "command": "bench/onebox.py", "commit": "abc123"},
}
SIZING = {
    "peak_factor": 3,
    "headroom": 0.5,
    "statements_per_vcpu_second": 2000,
    "aurora_vcpus_per_acu": 0.25,
    "aurora_min_acu": 0.5,
    "aurora_storage_gb": 20,
    "rds_proxy_min_vcpus": 2,
    "lambda_full_vcpu_mb": 512,
    "lambda_aws_wait_ms": 0,
    "database_sizes": [
        {"name": "db.t4g.micro", "price": "rds_instance_hour", "vcpus": 2, "sustained": 0.10},
        {"name": "db.t4g.medium", "price": "rds_t4g_medium_hour", "vcpus": 2, "sustained": 0.20},
        {"name": "db.m7g.large", "price": "rds_m7g_large_hour", "vcpus": 2, "sustained": 1},
        {"name": "db.m7g.xlarge", "price": "rds_m7g_xlarge_hour", "vcpus": 4, "sustained": 1},
    ],
    "ec2_sizes": [
        {"name": "t3.small", "price": "ec2_instance_hour", "vcpus": 2, "sustained": 0.20},
        {"name": "c7g.large", "price": "ec2_c7g_large_hour", "vcpus": 2, "sustained": 1},
        {"name": "c7g.xlarge", "price": "ec2_c7g_xlarge_hour", "vcpus": 4, "sustained": 1},
    ],
}


def price_file(
    tmp_path: Path,
    prices: dict | None = None,
    region: str = "us-east-1",
    sizing: dict | None = None,
    figures: dict | None = None,
) -> Path:
    data = {
        "as_of": "2026-11-30",
        "status": "test prices",
        "currency": "USD",
        "regions": {
            region: {
                k: {"price": p, "per": per, "unit": "units", "source": "https://aws.amazon.com/x/"}
                for k, (p, per) in (prices or PRICES).items()
            }
        },
        "assumptions": ASSUMPTIONS,
        "figures": FIGURES | (figures or {}),
        "sizing": SIZING | (sizing or {}),
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def book(tmp_path: Path) -> PriceBook:
    return load_prices("us-east-1", price_file(tmp_path))


def amounts(result: Estimate, column: str) -> dict[str, float]:
    return {item.row: item.amount for item in getattr(result, column).items}


# ------------------------------------------------------------------------ figures computed by hand


def test_ten_thousand_messages_of_100_kb(book: PriceBook) -> None:
    result = estimate(10_000, 100, book)
    gb = 10_000 * 100 / 1024**2  # 0.95367431640625 GB a month
    shared = {
        "SES receiving: mails": 1.00,  # 10 x $0.10
        "SES receiving: 256 KB chunks": 0.90,  # 100 KB is one chunk: 10 x $0.09
        "SES sending: mails": 1.00,
        "SES sending: data": 0.11444091796875,  # 0.95367431640625 GB x $0.12
        "S3: PUT (SES stores each mail)": 0.05,  # 10 x $0.005
        "S3: GET (the forwarder reads it)": 0.004,  # 10 x $0.0004
        "S3: storage": 0.0100958837,  # 0.95367 GB x 14 / 30.41667 days x $0.023
    }
    assert gb * 14 / (730 / 24) == pytest.approx(0.4389515, rel=1e-6)
    serverless = shared | {
        "Lambda: requests": 0.002,  # 0.01 million x $0.20
        "Lambda: compute": 0.04166675,  # 10,000 x 0.5 GB x 0.5 s = 2,500 GB-s x $0.0000166667
        "CloudWatch Logs: ingestion": 0.00476837158,  # 10,000 KB = 0.0095367 GB x $0.50
        "Secrets Manager: database secret": 0.40,
        "SNS: publishes": 0.0001,  # 200 feedback notifications x $0.50 per million
        "Database: instance": 11.68,  # 730 h x $0.016
        "Database: storage": 2.30,  # 20 GB x $0.115
    }
    ec2 = shared | {
        "SNS: publishes": 0.0051,  # 10,000 + 200 publishes x $0.50 per million
        "SQS: requests": 0.06056,  # 20,000 + 131,400 requests x $0.40 per million
        "Database: instance": 0.0,
        "EC2: instance": 15.184,  # 730 h x $0.0208
        "EC2: EBS volume": 1.60,  # 20 GB x $0.08
        "EC2: public IPv4 address": 3.65,  # 730 h x $0.005
    }
    assert amounts(result, "serverless") == pytest.approx(serverless, rel=1e-6)
    assert amounts(result, "ec2") == pytest.approx(ec2, rel=1e-6)
    assert result.serverless.total == pytest.approx(17.5070720, rel=1e-6)
    assert result.ec2.total == pytest.approx(23.5781968, rel=1e-6)


def test_a_million_messages_of_300_kb(book: PriceBook) -> None:
    result = estimate(1_000_000, 300, book)
    shared = {
        "SES receiving: mails": 100.00,  # 1,000 x $0.10
        "SES receiving: 256 KB chunks": 180.00,  # 300 KB is two chunks: 2,000 x $0.09
        "SES sending: mails": 100.00,
        "SES sending: data": 34.332275390625,  # 300,000,000 KB = 286.1023 GB x $0.12
        "S3: PUT (SES stores each mail)": 5.00,
        "S3: GET (the forwarder reads it)": 0.40,
        "S3: storage": 3.028765,  # 286.1023 GB x 14 / 30.41667 = 131.6854 GB-month x $0.023
    }
    serverless = shared | {
        "Lambda: requests": 0.20,
        "Lambda: compute": 4.166675,  # 250,000 GB-s x $0.0000166667
        "CloudWatch Logs: ingestion": 0.476837158203125,  # 0.95367 GB x $0.50
        "Secrets Manager: database secret": 0.40,
        "SNS: publishes": 0.01,  # 20,000 x $0.50 per million
        "Database: instance": 11.68,
        "Database: storage": 2.30,
    }
    ec2 = shared | {
        "SNS: publishes": 0.51,  # 1,020,000 x $0.50 per million
        "SQS: requests": 0.85256,  # 2,131,400 x $0.40 per million
        "Database: instance": 0.0,
        "EC2: instance": 15.184,
        "EC2: EBS volume": 1.60,
        "EC2: public IPv4 address": 3.65,
    }
    assert amounts(result, "serverless") == pytest.approx(serverless, rel=1e-6)
    assert amounts(result, "ec2") == pytest.approx(ec2, rel=1e-6)
    assert result.serverless.total == pytest.approx(441.994553, rel=1e-6)
    assert result.ec2.total == pytest.approx(444.557601, rel=1e-6)


def test_no_mail_costs_the_fixed_part_only(book: PriceBook) -> None:
    result = estimate(0, 100, book)
    assert result.serverless.total == pytest.approx(0.40 + 11.68 + 2.30)
    assert result.ec2.total == pytest.approx(15.184 + 1.60 + 3.65 + 131_400 * 0.40 / 1e6)


def test_retention_days_scale_storage_only(book: PriceBook) -> None:
    week, month = estimate(100_000, 50, book, retention_days=7), estimate(100_000, 50, book, retention_days=28)
    assert amounts(month, "serverless")["S3: storage"] == pytest.approx(4 * amounts(week, "serverless")["S3: storage"])
    difference = month.serverless.total - week.serverless.total
    assert difference == pytest.approx(3 * amounts(week, "serverless")["S3: storage"])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**8), st.integers(0, 10**8), st.floats(0.5, 40_000))
def test_monotonic_in_messages(low: int, high: int, size_kb: float) -> None:
    low, high = sorted((low, high))
    prices = load_prices("us-east-1")
    a, b = estimate(low, size_kb, prices), estimate(high, size_kb, prices)
    for column in ("serverless", "ec2"):
        assert getattr(a, column).total <= getattr(b, column).total
        for row, amount in amounts(a, column).items():
            assert amount <= amounts(b, column)[row]


def test_bad_arguments(book: PriceBook) -> None:
    with pytest.raises(ValueError):
        estimate(-1, 100, book)
    with pytest.raises(ValueError):
        estimate(10, 0, book)


def test_money() -> None:
    assert money(0) == "$0.00"
    assert money(0.004) == "<$0.01"
    assert money(1234.567) == "$1,234.57"


# ------------------------------------------------------------------------ the price file


def test_the_bundled_price_file_is_dated_and_sourced() -> None:
    raw = json.loads((Path(__file__).resolve().parents[3] / "forwarder/ops/pricing/aws_prices.json").read_text())
    date.fromisoformat(raw["as_of"])
    assert "re-check" in raw["status"] and raw["as_of"] in raw["status"]
    assert "re-check" in " ".join(raw["_comment"])
    prices = load_prices("us-east-1")
    assert prices.as_of == raw["as_of"]
    for key in PRICE_KEYS:
        price = prices[key]
        assert price.price > 0 and price.per > 0
        assert re.match(r"^https://aws\.amazon\.com/[a-z0-9/-]+/$", price.source), key
    assert prices["ses_receive_mail"].source == "https://aws.amazon.com/ses/pricing/"


def test_price_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="us-east-1 only, not eu-west-1"):
        load_prices("eu-west-1")
    incomplete = dict(PRICES)
    del incomplete["sqs_request"]
    with pytest.raises(PricingError, match="lacks sqs_request"):
        load_prices("us-east-1", price_file(tmp_path, incomplete))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PricingError, match="is not a price file"):
        load_prices("us-east-1", tmp_path / "bad.json")


# ------------------------------------------------------------------------ the command


def run_cli(*args: str, region: str | None = None) -> Result:
    env = {"AWS_REGION": region, "OTHERMAIL_AWS_REGION": None}
    return CliRunner().invoke(cli, ["cost", *args], env=env, catch_exceptions=False)


def test_cli_prints_both_columns_line_by_line() -> None:
    result = run_cli("--messages-per-month", "10000", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    out = result.output
    as_of = load_prices("us-east-1").as_of
    assert out.startswith("othermail cost: 10,000 messages a month (329 a day), 100 KB on average, region us-east-1\n")
    assert f"AWS list prices as of {as_of} (forwarder/ops/pricing/aws_prices.json),\nentered by hand" in out
    assert re.search(r"^ +serverless +one EC2 box$", out, re.M)
    assert re.search(r"^SES receiving: mails +\$1\.00 +\$1\.00\n    10,000 mails at \$0\.10 per 1,000$", out, re.M)
    assert re.search(r"^Lambda: requests +<\$0\.01 +-$", out, re.M)
    assert re.search(r"^EC2: instance +- +\$15\.18$", out, re.M)
    assert re.search(r"^Database: instance +\$11\.68 +included$", out, re.M)
    assert "    serverless: 200 publishes at $0.50 per 1,000,000" in out
    # the bundled figures: warm ms on a core x 1,769 / 512 MB + 50 ms, for 10,000 messages of 0.5 GB
    figures, sizing = load_prices("us-east-1").figures, load_prices("us-east-1").sizing
    billed = figures["lambda_warm_ms_per_message"].value * sizing.lambda_full_vcpu_mb / 512 + sizing.lambda_aws_wait_ms
    assert figures["lambda_memory_mb"].value == 512
    compute = 10_000 * 0.5 * billed / 1000 * 0.0000166667
    assert re.search(rf"^Lambda: compute +\{money(compute)} +-\n.*\(512 MB, {billed:,.0f} ms each\)$", out, re.M)
    total = 17.5070720 - 0.04166675 + compute  # the hand-computed total above, priced 500 ms a message
    assert re.search(rf"^Total a month +\{money(total)} +\$23\.58$", out, re.M)
    assert "- Free tiers are not counted" in out
    assert "Aurora Serverless v2 at its 0.5 ACU minimum would cost $43.80" in " ".join(out.split())


def test_cli_options_and_json() -> None:
    result = run_cli(
        "--messages-per-month",
        "1000000",
        "--average-size-kb",
        "300",
        "--retention-days",
        "30",
        "--json",
        region="us-east-1",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["messages"] == 1_000_000 and data["size_kb"] == 300 and data["region"] == "us-east-1"
    storage = next(i for i in data["serverless"]["items"] if i["row"] == "S3: storage")
    assert storage["amount"] == pytest.approx(3.028765 * 30 / 14, rel=1e-5)
    assert storage["source"] == "https://aws.amazon.com/s3/pricing/"
    assert data["ec2"]["total"] == pytest.approx(444.557601 + 3.028765 * 16 / 14, rel=1e-6)


def test_cli_errors() -> None:
    result = run_cli("--messages-per-month", "10", region="eu-west-1")  # the default region: the settings'
    assert result.exit_code == 1
    assert "has prices for us-east-1 only, not eu-west-1: use --region us-east-1" in result.output
    assert run_cli("--messages-per-month", "-5").exit_code == 2
    assert run_cli().exit_code == 2
    assert run_cli("--messages-per-month", "10", "--average-size-kb", "0").exit_code == 2


def test_the_essentials_plan_prices_sending_per_mail(book: PriceBook) -> None:
    carte = estimate(100_000, 50, book)
    essentials = estimate(100_000, 50, book, ses_plan="essentials")
    sending = essentials.serverless.item("SES sending: mails")
    assert sending is not None and sending.price == book["ses_send_mail_essentials"]
    assert sending.amount == pytest.approx(100_000 / 1000 * book["ses_send_mail_essentials"].price)
    difference = sending.amount - carte.serverless.item("SES sending: mails").amount  # type: ignore[union-attr]
    assert essentials.serverless.total - carte.serverless.total == pytest.approx(difference)
    assert essentials.ec2.total - carte.ec2.total == pytest.approx(difference)
    assert any("Essentials" in note for note in essentials.notes)
    with pytest.raises(ValueError, match="ses_plan"):
        estimate(1, 1, book, ses_plan="pro")
    result = run_cli("--messages-per-month", "100000", "--ses-plan", "essentials", region="us-east-1")
    assert result.exit_code == 0, result.output
    assert re.search(r"^SES sending: mails +\$16\.00 +\$16\.00$", result.output, re.M)
    assert run_cli("--messages-per-month", "1", "--ses-plan", "pro", region="us-east-1").exit_code == 2
