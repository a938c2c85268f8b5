"""How big a database and how many boxes a load needs: the arithmetic behind ``othermail cost``'s options.

Pure: the load (messages a day and the measured figures) and the stated sizing assumptions in,
sizes and counts out. The assumptions live in forwarder/ops/pricing/aws_prices.json (``sizing``),
each printed with the estimate:

- the peak rate is the day's average rate times ``peak_factor``; databases and boxes are sized
  for the peak, using at most ``headroom`` of what they can do;
- a database instance runs ``statements_per_vcpu_second`` on each vCPU, times the share of a vCPU
  a burstable size sustains (its baseline; 1 for a fixed-performance size);
- an Aurora Serverless v2 ACU stands for ``aurora_vcpus_per_acu`` of a vCPU; it bills the ACUs it
  scales to, priced here at the day's average rate (never below ``aurora_min_acu``);
- a box forwards the measured one-box messages a second per core on each vCPU, times its baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from forwarder.errors import PricingError

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Size:
    name: str  # db.m7g.large, c7g.large
    price: str  # its key in the region's prices
    vcpus: int
    sustained: float  # share of each vCPU it can use all the time (a burstable size's baseline)

    @property
    def cores(self) -> float:
        return self.vcpus * self.sustained


@dataclass(frozen=True)
class Sizing:
    peak_factor: float
    headroom: float
    statements_per_vcpu_second: float
    aurora_vcpus_per_acu: float
    aurora_min_acu: float
    aurora_storage_gb: float
    rds_proxy_min_vcpus: float
    lambda_full_vcpu_mb: float
    lambda_aws_wait_ms: float
    database_sizes: tuple[Size, ...]
    ec2_sizes: tuple[Size, ...]

    def database_capacity(self, size: Size) -> float:
        """Statements a second ``size`` is planned to absorb (within the headroom)."""
        return size.cores * self.statements_per_vcpu_second * self.headroom

    def acu_capacity(self) -> float:
        return self.aurora_vcpus_per_acu * self.statements_per_vcpu_second * self.headroom


def parse_sizing(data: Any, where: str, prices: Mapping[str, object]) -> Sizing:
    """The ``sizing`` object of a price file; every size's price must be among ``prices``."""
    if not isinstance(data, dict):
        raise PricingError(f"{where}: no sizing object")
    numbers = [f.name for f in fields(Sizing) if f.name not in ("database_sizes", "ec2_sizes")]
    values: dict[str, Any] = {}
    for name in numbers:
        value = data.get(name)
        lowest = "0 or more" if name == "lambda_aws_wait_ms" else "more than 0"  # no wait is a fair assumption
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (value == 0 and lowest == "more than 0")
        ):
            raise PricingError(f"{where}: sizing.{name} must be a number {lowest}, not {value!r}")
        values[name] = float(value)
    if values["headroom"] > 1:
        raise PricingError(f"{where}: sizing.headroom is a share of capacity, at most 1")
    for group in ("database_sizes", "ec2_sizes"):
        sizes = []
        for i, entry in enumerate(data.get(group) or ()):
            try:
                size = Size(str(entry["name"]), str(entry["price"]), int(entry["vcpus"]), float(entry["sustained"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise PricingError(f"{where}: sizing.{group}[{i}] is malformed: {exc}") from None
            if size.price not in prices:
                raise PricingError(f"{where}: sizing.{group}[{i}] ({size.name}) names no price {size.price}")
            if size.vcpus <= 0 or not 0 < size.sustained <= 1:
                raise PricingError(f"{where}: sizing.{group}[{i}] ({size.name}) needs vcpus > 0 and 0 < sustained <= 1")
            sizes.append(size)
        if not sizes:
            raise PricingError(f"{where}: sizing.{group} lists no size")
        values[group] = tuple(sizes)
    return Sizing(**values)


@dataclass(frozen=True)
class Load:
    per_day: float
    peak_factor: float
    statements_per_message: float

    @property
    def average_per_second(self) -> float:
        return self.per_day / SECONDS_PER_DAY

    @property
    def peak_per_second(self) -> float:
        return self.average_per_second * self.peak_factor

    @property
    def peak_statements_per_second(self) -> float:
        return self.peak_per_second * self.statements_per_message

    @property
    def average_statements_per_second(self) -> float:
        return self.average_per_second * self.statements_per_message


def pick_database(sizing: Sizing, statements_per_second: float) -> tuple[Size, int]:
    """The smallest size that absorbs ``statements_per_second``, and how many of it (more than one
    only beyond the largest size, which one PostgreSQL cannot do without sharding)."""
    for size in sizing.database_sizes:
        if sizing.database_capacity(size) >= statements_per_second:
            return size, 1
    largest = sizing.database_sizes[-1]
    return largest, math.ceil(statements_per_second / sizing.database_capacity(largest))


def aurora_acus(sizing: Sizing, statements_per_second: float) -> float:
    """ACUs for ``statements_per_second``, in Aurora's steps of 0.5, never below the minimum."""
    needed = statements_per_second / sizing.acu_capacity()
    return max(sizing.aurora_min_acu, math.ceil(needed * 2) / 2)


def boxes_needed(sizing: Sizing, size: Size, per_core: float, messages_per_second: float) -> int:
    """Boxes of ``size`` that forward ``messages_per_second`` within the headroom (at least one)."""
    per_box = size.cores * per_core * sizing.headroom
    return max(1, math.ceil(messages_per_second / per_box))


def lambda_billed_ms(sizing: Sizing, warm_ms: float, memory_mb: float) -> float:
    """The billed duration of one message: the warm time measured on a full core, stretched to the
    Lambda's share of a vCPU at ``memory_mb``, plus the assumed S3 and SES round trips."""
    return warm_ms * max(1.0, sizing.lambda_full_vcpu_mb / memory_mb) + sizing.lambda_aws_wait_ms
