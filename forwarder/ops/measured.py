"""The measured figures ``othermail cost`` prices with, and where each came from.

A small JSON file, written by the benches (``make bench`` writes ``bench/results/measured.json``)
through :func:`record` and read by ``othermail cost --measured PATH`` through :func:`load`::

    {
      "format": 1,
      "figures": {
        "statements_per_message": {
          "value": 5,
          "command": ".venv/bin/python bench/statements.py --backends postgresql",
          "commit": "f138911322e4",
          "measured_at": "2026-12-07T15:39:01Z"
        }
      }
    }

Every figure carries the command that printed it and the commit it ran at (``-dirty`` when the
working tree had changes), so an estimate can say "measured by <command> at <commit>". A figure
the file lacks falls back to the default in the price file (``figures`` in
forwarder/ops/pricing/aws_prices.json), which says the same of itself, or that it is assumed.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forwarder.errors import PricingError

FORMAT = 1
#: The figures ``othermail cost`` uses, with what each one is.
FIGURES: Mapping[str, str] = {
    "statements_per_message": "SQL statements a forwarded message costs the database (steady state)",
    "transactions_per_message": "database transactions a forwarded message costs",
    "lambda_warm_ms_per_message": "warm forwarder Lambda invocation, one 2 KB message, ms",
    "lambda_memory_mb": "memory of the Lambda the duration is billed at, MB",
    "onebox_msgs_per_second_per_core": "messages a second one core of the one box forwards",
}

#: The figures a measurement may put at 0 (PostgreSQL forwards a message in no BEGIN-COMMIT
#: transaction); every other one is more than 0.
MAY_BE_ZERO = frozenset({"transactions_per_message"})


def _valid(key: str, value: float) -> bool:
    return value >= 0 if key in MAY_BE_ZERO else value > 0


def _wanted(key: str) -> str:
    return "0 or more" if key in MAY_BE_ZERO else "more than 0"


@dataclass(frozen=True)
class Figure:
    key: str
    value: float
    command: str = ""  # empty: assumed, not measured
    commit: str = ""
    measured_at: str = ""
    note: str = ""  # for an assumption: what it rests on

    @property
    def measured(self) -> bool:
        return bool(self.command)

    @property
    def provenance(self) -> str:
        """``measured by <command> at <commit>``, or ``assumed (<why>)``."""
        if not self.measured:
            return f"assumed ({self.note})" if self.note else "assumed"
        at = f" at {self.commit}" if self.commit else ""
        return f"measured by {self.command}{at}"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "status": "measured" if self.measured else "assumed"}
        data |= {k: getattr(self, k) for k in ("command", "commit", "measured_at", "note") if getattr(self, k)}
        return data


def parse(data: Any, where: str) -> dict[str, Figure]:
    """The figures of a parsed measurements object (``{"figures": {...}}``); errors name ``where``
    and the field."""
    if not isinstance(data, dict) or not isinstance(data.get("figures"), dict):
        raise PricingError(f'{where}: no "figures" object (see forwarder/ops/measured.py for the format)')
    figures = {}
    for key, entry in data["figures"].items():
        if key.startswith("_"):
            continue
        if key not in FIGURES:
            raise PricingError(f"{where}: figures.{key} is not a figure othermail cost knows ({', '.join(FIGURES)})")
        if not isinstance(entry, dict):
            raise PricingError(f"{where}: figures.{key} must be an object with a value")
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not _valid(key, value):
            raise PricingError(f"{where}: figures.{key}.value must be a number {_wanted(key)}, not {value!r}")
        texts = {}
        for field in ("command", "commit", "measured_at", "note"):
            text = entry.get(field, "")
            if not isinstance(text, str):
                raise PricingError(f"{where}: figures.{key}.{field} must be a string, not {text!r}")
            texts[field] = text.strip()
        if not texts["command"] and not texts["note"]:
            raise PricingError(f"{where}: figures.{key} needs the command that measured it (or a note if assumed)")
        figures[key] = Figure(key, float(value), **texts)
    return figures


def load(path: Path) -> dict[str, Figure]:
    """The figures in the measurements file at ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PricingError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise PricingError(f"{path}: not JSON ({exc})") from None
    return parse(data, str(path))


def current_commit(root: Path) -> str:
    """The commit ``root`` is at, ``-dirty`` when tracked files changed; empty outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        clean = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root, capture_output=True).returncode == 0
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head if clean else f"{head}-dirty"


def record(path: Path, key: str, value: float, command: str, commit: str | None = None) -> Figure:
    """Merge one measured figure into the file at ``path`` (made if absent) and return it.

    ``commit`` defaults to the commit of the othermail tree this module is in, the code the bench
    measured (:func:`current_commit`).
    The file is replaced in one rename, so a reader never sees half of it.
    """
    if key not in FIGURES:
        raise ValueError(f"{key} is not a figure othermail cost knows ({', '.join(FIGURES)})")
    if not _valid(key, value) or not command.strip():
        raise ValueError(f"{key} needs a value {_wanted(key)} and the command that measured it")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"format": FORMAT, "figures": {}}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        parse(data, str(path))  # refuse to merge into a malformed file
    if commit is None:
        commit = current_commit(Path(__file__).resolve().parents[2])
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    figure = Figure(key, float(value), command.strip(), commit, stamp)
    data["figures"][key] = {"value": value, "command": figure.command, "commit": commit, "measured_at": stamp}
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(temporary, path)
    return figure
