"""The AWS prices ``othermail cost`` reads: one data file, ``forwarder/ops/pricing/aws_prices.json``
(list prices by region with their date and source pages; the operator re-checks them), its
assumptions, the default figures a message costs (forwarder/ops/measured.py) and the sizing rules
(forwarder/ops/sizing.py), read by :func:`load_prices` into a :class:`PriceBook`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from forwarder.errors import PricingError
from forwarder.ops.measured import FIGURES, Figure
from forwarder.ops.measured import parse as parse_figures
from forwarder.ops.sizing import Sizing, parse_sizing

PRICE_FILE = "forwarder/ops/pricing/aws_prices.json"
PRICE_KEYS = (
    "ses_receive_mail",
    "ses_receive_chunk",
    "ses_send_mail",
    "ses_send_data",
    "s3_put",
    "s3_get",
    "s3_storage",
    "lambda_request",
    "lambda_gb_second",
    "logs_ingestion",
    "secret_month",
    "rds_instance_hour",
    "rds_storage",
    "aurora_acu_hour",
    "sns_publish",
    "sqs_request",
    "ec2_instance_hour",
    "ebs_storage",
    "public_ipv4_hour",
    "nat_gateway_hour",
    "ses_send_mail_essentials",
    "rds_proxy_vcpu_hour",
    "aurora_storage",
)


@dataclass(frozen=True)
class Price:
    price: float  # US dollars per ``per`` units
    per: float
    unit: str
    source: str  # the AWS page it comes from


@dataclass(frozen=True)
class Assumptions:
    hours_per_month: float = 730
    destinations_per_message: float = 1
    retention_days: float = 14
    log_kb_per_message: float = 1
    feedback_fraction: float = 0.02
    rds_storage_gb: float = 20
    ebs_gb: float = 20
    sqs_empty_receives_per_month: float = 131400
    sqs_requests_per_message: float = 2
    chunk_kb: float = 256

    @property
    def days_per_month(self) -> float:
        return self.hours_per_month / 24


@dataclass(frozen=True)
class PriceBook:
    region: str
    as_of: str
    status: str
    prices: Mapping[str, Price]
    assumptions: Assumptions
    figures: Mapping[str, Figure]  # the defaults: measured (with their command) or assumed
    sizing: Sizing

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]


def load_prices(region: str, path: Path | None = None) -> PriceBook:
    """The prices of ``region`` from the price file (default: the bundled one)."""
    if path is None:
        text = resources.files("forwarder.ops.pricing").joinpath("aws_prices.json").read_text(encoding="utf-8")
        where = PRICE_FILE
    else:
        text = path.read_text(encoding="utf-8")
        where = str(path)
    try:
        data = json.loads(text)
        regions = data["regions"]
        as_of, status = str(data["as_of"]), str(data["status"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PricingError(f"{where} is not a price file: {exc}") from None
    if region not in regions:
        raise PricingError(
            f"{where} has prices for {', '.join(sorted(regions))} only, not {region}: use --region "
            f"{sorted(regions)[0]}, or add {region}'s prices from the pages the file names"
        )
    try:
        prices = {
            key: Price(float(p["price"]), float(p["per"]), str(p["unit"]), str(p["source"]))
            for key, p in regions[region].items()
        }
        known = {f.name for f in fields(Assumptions)}
        assumptions = Assumptions(**{k: float(v) for k, v in data.get("assumptions", {}).items() if k in known})
    except (ValueError, KeyError, TypeError) as exc:
        raise PricingError(f"{where}: a price of {region} is malformed: {exc}") from None
    missing = [key for key in PRICE_KEYS if key not in prices]
    if missing:
        raise PricingError(f"{where}: {region} lacks {', '.join(missing)}")
    figures = parse_figures({"figures": data.get("figures")}, where)
    lacking = [key for key in FIGURES if key not in figures]
    if lacking:
        raise PricingError(f"{where}: figures lacks {', '.join(lacking)}")
    sizing = parse_sizing(data.get("sizing"), where, prices)
    return PriceBook(region, as_of, status, prices, assumptions, figures, sizing)
