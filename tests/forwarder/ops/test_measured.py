"""forwarder/ops/measured.py: the measured figures file the benches write and ``othermail cost`` reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from forwarder.errors import PricingError
from forwarder.ops.measured import FIGURES, Figure, current_commit, load, parse, record

ROOT = Path(__file__).resolve().parents[3]


def test_record_makes_the_file_and_merges_into_it(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "results" / "measured.json"
    first = record(path, "statements_per_message", 5, "  bench/statements.py --backends postgresql ", commit="abc")
    assert first == Figure(
        "statements_per_message", 5.0, "bench/statements.py --backends postgresql", "abc", first.measured_at
    )
    record(path, "onebox_msgs_per_second_per_core", 357.1, "bench/onebox.py", commit="abc-dirty")
    record(path, "statements_per_message", 3, "bench/statements.py", commit="def")
    data = json.loads(path.read_text())
    assert data["format"] == 1
    assert set(data["figures"]) == {"statements_per_message", "onebox_msgs_per_second_per_core"}
    figures = load(path)
    assert figures["statements_per_message"].value == 3
    assert figures["statements_per_message"].provenance == "measured by bench/statements.py at def"
    assert figures["onebox_msgs_per_second_per_core"].provenance == "measured by bench/onebox.py at abc-dirty"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", figures["statements_per_message"].measured_at)
    assert [p.name for p in path.parent.iterdir()] == ["measured.json"]  # no temporary file left


def test_record_takes_the_commit_from_git(tmp_path: Path) -> None:
    assert current_commit(tmp_path) == ""  # not a repository
    commit = current_commit(ROOT)
    assert re.match(r"^[0-9a-f]{12}(-dirty)?$", commit), commit
    figure = record(tmp_path / "m.json", "transactions_per_message", 2, "bench/statements.py")  # outside the tree
    assert re.match(r"^[0-9a-f]{12}(-dirty)?$", figure.commit), figure.commit  # this tree's, wherever the file is
    assert figure.provenance == f"measured by bench/statements.py at {figure.commit}"


def test_record_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a figure"):
        record(tmp_path / "m.json", "statements", 5, "bench/statements.py")
    with pytest.raises(ValueError, match="command"):
        record(tmp_path / "m.json", "statements_per_message", 5, " ")
    with pytest.raises(ValueError, match="more than 0"):
        record(tmp_path / "m.json", "statements_per_message", 0, "bench/statements.py")
    broken = tmp_path / "broken.json"
    broken.write_text('{"figures": {"statements_per_message": {"value": -1, "command": "x"}}}')
    with pytest.raises(PricingError, match=r"broken.json: figures\.statements_per_message\.value"):
        record(broken, "lambda_memory_mb", 512, "bench/coldstart.py")
    assert "-1" in broken.read_text()  # left as it was


def test_assumed_figures() -> None:
    figures = parse(
        {"figures": {"_comment": ["skipped"], "lambda_memory_mb": {"value": 512, "note": "the default"}}}, "f"
    )
    assert figures["lambda_memory_mb"].provenance == "assumed (the default)"
    assert figures["lambda_memory_mb"].as_json() == {"value": 512.0, "status": "assumed", "note": "the default"}
    assert set(FIGURES) >= set(figures)
    with pytest.raises(
        PricingError, match=r"^f: figures\.lambda_memory_mb\.value must be a number more than 0, not True$"
    ):
        parse({"figures": {"lambda_memory_mb": {"value": True, "note": "x"}}}, "f")


def test_no_transaction_is_a_figure_too(tmp_path: Path) -> None:
    """PostgreSQL forwards a message in no BEGIN-COMMIT transaction (bench/statements.py prints 0):
    the bench records it and ``othermail cost`` reads it; nothing else may be 0."""
    path = tmp_path / "m.json"
    assert record(path, "transactions_per_message", 0, "bench/statements.py --backends postgresql").value == 0
    assert load(path)["transactions_per_message"].value == 0
    with pytest.raises(ValueError, match="more than 0"):
        record(path, "statements_per_message", 0, "bench/statements.py")
    path.write_text('{"figures": {"transactions_per_message": {"value": -1, "command": "x"}}}')
    with pytest.raises(PricingError, match=r"figures\.transactions_per_message\.value must be a number 0 or more"):
        load(path)
