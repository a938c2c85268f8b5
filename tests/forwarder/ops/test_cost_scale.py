"""``othermail cost`` at scale: measured figures, the database and fleet sizing, the options, --per-day, --measured.

The hand-computed case uses the test copy of the prices (tests/forwarder/ops/test_cost.py's
``price_file``), with 8,640,000 messages a day: 100 a second on average, so every step is round.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forwarder.cli.main import cli
from forwarder.errors import PricingError
from forwarder.ops.cost import Estimate, estimate
from forwarder.ops.measured import Figure, record
from forwarder.ops.prices import PriceBook, load_prices
from tests.forwarder.ops.test_cost import price_file

PER_DAY = 8_640_000
A_MONTH = 262_800_000  # 8,640,000 x 730 / 24 days


def measured(**values: float) -> dict[str, Figure]:
    return {key: Figure(key, value, command=f"bench/{key}.py", commit="0123abc") for key, value in values.items()}


@pytest.fixture
def book(tmp_path: Path) -> PriceBook:
    """The test prices, with Lambda's real vCPU share (1,769 MB) and 50 ms of AWS round trips."""
    return load_prices(
        "us-east-1",
        price_file(
            tmp_path,
            sizing={"lambda_full_vcpu_mb": 1769, "lambda_aws_wait_ms": 50},
            figures={"lambda_warm_ms_per_message": {"value": 20, "note": "a test figure"}},
        ),
    )


def option(result: Estimate, start: str) -> tuple[str, float, dict[str, float]]:
    found = next(o for o in result.options if o.name.startswith(start))
    return found.name, found.own_total, {i.row: i.amount for i in found.items}


# ------------------------------------------------------------------------ figures computed by hand


def test_a_day_of_8_640_000_messages(book: PriceBook) -> None:
    result = estimate(A_MONTH, 100, book)
    assert result.load.per_day == pytest.approx(PER_DAY)
    assert result.load.average_per_second == pytest.approx(100)
    assert result.load.peak_per_second == pytest.approx(300)  # peak factor 3
    assert result.load.peak_statements_per_second == pytest.approx(1800)  # 6 statements a message

    # Lambda: 20 ms on a core x 1,769 / 512 MB = 69.1015625 ms, + 50 ms = 119.1015625 ms billed;
    # 262,800,000 x 0.5 GB x 0.1191015625 s = 15,649,945.3125 GB-s x $0.0000166667 = $260.83294
    lambda_side = {
        "Lambda: requests": 52.56,  # 262.8 million x $0.20
        "Lambda: compute": 260.8329435,
        "CloudWatch Logs: ingestion": 125.31280517578125,  # 262,800,000 KB = 250.6256 GB x $0.50
        "Secrets Manager: database secret": 0.40,
        "SNS: publishes": 2.628,  # 2% of 262.8 million = 5,256,000 x $0.50 per million
    }
    assert sum(lambda_side.values()) == pytest.approx(441.7337487, rel=1e-9)

    # The database for 1,800 statements/s at the peak, within 50% headroom of 2,000 a vCPU:
    # db.t4g.micro 2 x 10% x 2,000 x 50% = 200/s, db.t4g.medium 2 x 20% ... = 400/s, db.m7g.large 2,000/s.
    name, own, items = option(result, "serverless, RDS Proxy")
    assert name == "serverless, RDS Proxy + db.m7g.large"
    assert items == pytest.approx(
        {row: items[row] for row in items if row.startswith(("SES", "S3"))}
        | lambda_side
        | {
            "Database: instance": 122.64,  # 730 h x $0.168
            "Database: storage": 2.30,  # 20 GB x $0.115
            "RDS Proxy": 21.90,  # 2 vCPUs x 730 h x $0.015
        },
        rel=1e-6,
    )
    assert own == pytest.approx(588.5737487, rel=1e-9)
    assert result.serverless.item("Database: instance").amount == pytest.approx(122.64)  # type: ignore[union-attr]

    # Aurora: an ACU is 0.25 vCPU x 2,000 x 50% = 250 statements/s; the average 600/s needs 2.4, so 2.5 ACUs.
    name, own, items = option(result, "serverless, Aurora")
    assert items["Database: Aurora capacity"] == pytest.approx(219.00)  # 2.5 x 730 h x $0.12
    assert items["Database: storage"] == pytest.approx(2.00)  # 20 GB x $0.10
    assert own == pytest.approx(441.7337487 + 221.00, rel=1e-9)

    # EC2 boxes for 300 msg/s at 200 msg/s a core and 50% headroom; SNS 268,056,000 publishes = $134.028,
    # SQS 525,731,400 requests = $210.29256 whatever the fleet.
    queue = 134.028 + 210.29256
    # t3.small: 2 vCPUs x 20% x 200 x 50% = 40 msg/s a box: 8 boxes, sharing the db.m7g.large
    name, own, _ = option(result, "EC2, 8 x t3.small")
    assert own == pytest.approx(queue + 8 * 730 * 0.0208 + 8 * 1.60 + 8 * 3.65 + 122.64 + 2.30)
    assert own == pytest.approx(632.73256)
    # c7g.large: 200 msg/s a box: 2 boxes, sharing the database
    name, own, _ = option(result, "EC2, 2 x c7g.large")
    assert own == pytest.approx(queue + 2 * 730 * 0.0725 + 2 * 1.60 + 2 * 3.65 + 124.94)
    # c7g.xlarge: 400 msg/s a box: one, MariaDB on it
    name, own, items = option(result, "EC2, 1 x c7g.xlarge")
    assert own == pytest.approx(queue + 730 * 0.145 + 1.60 + 3.65)
    assert not any(row.startswith("Database") for row in items)

    # every option pays SES and S3 alike
    shared = {round(o.total - o.own_total, 6) for o in result.options}
    assert len(shared) == 1
    assert any("at this load it takes 8 of them" in note for note in result.notes)


def test_a_small_load_keeps_the_smallest_database_and_one_box(book: PriceBook) -> None:
    result = estimate(10_000, 100, book)
    assert [o.name for o in result.options] == [
        "serverless, RDS Proxy + db.t4g.micro",
        "serverless, Aurora Serverless v2",
        "EC2, 1 x t3.small",
        "EC2, 1 x c7g.large",
        "EC2, 1 x c7g.xlarge",
    ]
    _, _, items = option(result, "serverless, Aurora")
    assert items["Database: Aurora capacity"] == pytest.approx(0.5 * 730 * 0.12)  # the minimum
    assert not any("at this load it takes" in note for note in result.notes)


# ------------------------------------------------------------------------ measured figures move it the right way


def test_more_statements_take_a_bigger_database(book: PriceBook) -> None:
    previous = None
    for statements in (1, 2, 4, 6, 8, 12, 20, 40):
        result = estimate(A_MONTH, 100, book, measured=measured(statements_per_message=statements))
        database = result.serverless.item("Database: instance")
        assert database is not None
        aurora = option(result, "serverless, Aurora")[2]["Database: Aurora capacity"]
        if previous is not None:
            assert database.amount >= previous[0] and aurora >= previous[1]
        previous = (database.amount, aurora)
    low = estimate(A_MONTH, 100, book, measured=measured(statements_per_message=1))
    high = estimate(A_MONTH, 100, book, measured=measured(statements_per_message=20))
    assert low.options[0].name == "serverless, RDS Proxy + db.t4g.medium"  # 300/s within 400/s
    assert high.options[0].name == "serverless, RDS Proxy + db.m7g.xlarge"  # 6,000/s: two of 4,000/s
    assert "2 of them" in high.options[0].sizing
    assert high.options[0].own_total > low.options[0].own_total
    assert high.serverless.total > low.serverless.total


def test_a_longer_lambda_costs_more_and_nothing_else(book: PriceBook) -> None:
    short = estimate(A_MONTH, 100, book, measured=measured(lambda_warm_ms_per_message=10))
    long = estimate(A_MONTH, 100, book, measured=measured(lambda_warm_ms_per_message=40))
    compute = [r.serverless.item("Lambda: compute").amount for r in (short, long)]  # type: ignore[union-attr]
    assert compute[1] > compute[0]
    # 30 ms more on a core x 1,769 / 512 = 103.65 ms more billed for 262.8 million messages of 0.5 GB
    assert compute[1] - compute[0] == pytest.approx(A_MONTH * 0.5 * 0.030 * 1769 / 512 * 0.0000166667)
    assert long.serverless.total - short.serverless.total == pytest.approx(compute[1] - compute[0])
    assert long.ec2.total == short.ec2.total
    more_memory = estimate(A_MONTH, 100, book, measured=measured(lambda_memory_mb=1024))
    assert more_memory.serverless.item("Lambda: compute").amount > short.serverless.item("Lambda: compute").amount  # type: ignore[union-attr]


def test_a_slower_box_takes_more_boxes(book: PriceBook) -> None:
    fast = estimate(A_MONTH, 100, book, measured=measured(onebox_msgs_per_second_per_core=400))
    slow = estimate(A_MONTH, 100, book, measured=measured(onebox_msgs_per_second_per_core=100))
    assert [o.name for o in fast.options[2:]] == ["EC2, 4 x t3.small", "EC2, 1 x c7g.large", "EC2, 1 x c7g.xlarge"]
    assert [o.name for o in slow.options[2:]] == ["EC2, 15 x t3.small", "EC2, 3 x c7g.large", "EC2, 2 x c7g.xlarge"]
    for a, b in zip(fast.options[2:], slow.options[2:], strict=True):
        assert b.total > a.total


def test_the_price_file_needs_its_sizing(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"sizing\.headroom must be a number more than 0, not 0"):
        load_prices("us-east-1", price_file(tmp_path, sizing={"headroom": 0}))
    with pytest.raises(PricingError, match=r"sizing\.ec2_sizes\[0\] \(m9.huge\) names no price ec2_m9"):
        load_prices(
            "us-east-1",
            price_file(
                tmp_path, sizing={"ec2_sizes": [{"name": "m9.huge", "price": "ec2_m9", "vcpus": 2, "sustained": 1}]}
            ),
        )
    with pytest.raises(PricingError, match=r"figures\.lambda_memory_mb\.value must be a number more than 0"):
        load_prices("us-east-1", price_file(tmp_path, figures={"lambda_memory_mb": {"value": -1, "note": "x"}}))


def test_the_bundled_defaults_say_where_they_came_from() -> None:
    prices = load_prices("us-east-1")
    for figure in prices.figures.values():
        assert figure.provenance.startswith("measured by .venv/bin/python bench/") or figure.provenance.startswith(
            "assumed ("
        )
    assert prices.figures["statements_per_message"].measured
    for key in ("rds_proxy_vcpu_hour", "rds_m7g_large_hour", "ec2_c7g_large_hour", "ec2_c7g_xlarge_hour"):
        assert re.match(r"^https://aws\.amazon\.com/[a-z0-9/-]+/$", prices[key].source), key
    assert prices["rds_proxy_vcpu_hour"].source == "https://aws.amazon.com/rds/proxy/pricing/"


# ------------------------------------------------------------------------ the command


def run_cli(*args: str) -> Result:
    env = {"AWS_REGION": None, "OTHERMAIL_AWS_REGION": None}
    return CliRunner().invoke(cli, ["cost", "--region", "us-east-1", *args], env=env, catch_exceptions=False)


def test_cli_per_day_prints_the_figures_and_the_options() -> None:
    result = run_cli("--per-day", "10000000")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("othermail cost: 304,166,667 messages a month (10,000,000 a day), 100 KB on average")
    assert re.search(r"^  statements_per_message = \d+: measured by \.venv/bin/python bench/statements\.py", out, re.M)
    assert re.search(r"^  lambda_memory_mb = 512: assumed \(", out, re.M)
    assert "10,000,000 messages a day: 116 a second on average, 347 at the peak" in out
    assert re.search(r"^Options at this load +a month +without SES, S3$", out, re.M)
    assert re.search(r"^serverless, RDS Proxy \+ db\.\S+ +\$[\d,]+\.\d\d +\$[\d,]+\.\d\d$", out, re.M)
    assert re.search(r"^EC2, \d+ x c7g\.xlarge +\$", out, re.M)
    assert "Sizing assumptions (sizing in forwarder/ops/pricing/aws_prices.json; assumed, not measured):" in out
    assert "- peak factor 3:" in out and "- headroom 60%:" in out
    monthly = run_cli("--messages-per-month", "304166667")
    assert monthly.output == out


def test_cli_count_options() -> None:
    assert run_cli().exit_code == 2
    both = run_cli("--per-day", "10", "--messages-per-month", "300")
    assert both.exit_code == 2 and "one of them" in both.output


def test_cli_measured_figures_and_their_provenance_in_json(tmp_path: Path) -> None:
    path = tmp_path / "results" / "measured.json"
    record(path, "statements_per_message", 3, ".venv/bin/python bench/statements.py", commit="0123abc")
    record(path, "lambda_warm_ms_per_message", 12.5, ".venv/bin/python bench/coldstart.py", commit="0123abc-dirty")
    text = run_cli("--per-day", "10000000", "--measured", str(path))
    assert text.exit_code == 0, text.output
    out = " ".join(text.output.split())
    assert "statements_per_message = 3: measured by .venv/bin/python bench/statements.py at 0123abc " in out
    assert "lambda_warm_ms_per_message = 12.50: measured by .venv/bin/python bench/coldstart.py at 0123abc-dirty" in out
    result = run_cli("--per-day", "10000000", "--measured", str(path), "--json")
    data = json.loads(result.output)
    figures = data["figures"]
    assert figures["statements_per_message"] == {
        "value": 3,
        "status": "measured",
        "command": ".venv/bin/python bench/statements.py",
        "commit": "0123abc",
        "measured_at": figures["statements_per_message"]["measured_at"],
    }
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", figures["statements_per_message"]["measured_at"])
    assert figures["lambda_memory_mb"]["status"] == "assumed" and figures["lambda_memory_mb"]["note"]
    assert data["load"]["peak_statements_per_second"] == pytest.approx(10_000_000 / 86_400 * 3 * 3, rel=1e-6)
    assert [o["name"].split(" + ")[0] for o in data["options"][:2]] == [
        "serverless, RDS Proxy",
        "serverless, Aurora Serverless v2",
    ]
    for entry in data["options"]:
        assert entry["total"] == pytest.approx(sum(i["amount"] for i in entry["items"]), abs=1e-4)
        assert entry["sizing"] and entry["without_ses_s3"] < entry["total"]
    assert data["sizing"]["peak_factor"] == 3
    default = json.loads(run_cli("--per-day", "10000000", "--json").output)
    assert default["figures"]["statements_per_message"]["value"] != 3
    # fewer statements a message: never a bigger database
    assert data["options"][0]["total"] <= default["options"][0]["total"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"figures": {"statements_per_message": {"value": "six", "command": "b"}}}',
            "figures.statements_per_message.value must be a number more than 0, not 'six'",
        ),
        (
            '{"figures": {"statements_per_message": {"value": 6}}}',
            "figures.statements_per_message needs the command that measured it (or a note if assumed)",
        ),
        (
            '{"figures": {"statement_per_message": {"value": 6, "command": "b"}}}',
            "figures.statement_per_message is not a figure othermail cost knows",
        ),
        (
            '{"figures": {"lambda_memory_mb": {"value": 512, "command": ["b"]}}}',
            "figures.lambda_memory_mb.command must be a string, not ['b']",
        ),
        ('{"statements_per_message": 6}', 'no "figures" object'),
        ("{not json", "not JSON"),
    ],
)
def test_cli_a_malformed_measured_file_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "measured.json"
    path.write_text(content)
    result = run_cli("--per-day", "10000000", "--measured", str(path))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}: {message}")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_cli_a_missing_measured_file(tmp_path: Path) -> None:
    result = run_cli("--per-day", "1", "--measured", str(tmp_path / "none.json"))
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'none.json'}: cannot be read (No such file or directory)\n"
