"""The forwarder zip's import trace and its guards (no pip here; tests/deploy builds the real zip)."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from forwarder.cli.main import cli
from forwarder.ops.packaging import PackagingError, Trace, requirements, trace_handler

REPO = Path(__file__).resolve().parents[3]


def test_the_trace_follows_lazy_imports_and_stops_at_the_handlers_needs() -> None:
    trace = trace_handler(REPO)
    assert "models.engine" in trace.modules  # imported inside Runtime.engine, on first use
    assert "forwarder.adapters.aws.secrets" in trace.modules
    assert set(trace.third_party) == {"sqlalchemy", "boto3", "botocore", "cryptography"}
    assert "forwarder.adapters.sealing" in trace.third_party["cryptography"]  # contacts sealed at rest (issue 14)
    assert "forwarder.runtime" in trace.third_party["boto3"]  # Runtime.aws_session, on first use
    # the runtime's one-box parts (Runtime.spool, .authenticator) are not followed (ONE_BOX_ONLY)
    assert not [m for m in trace.modules if m.startswith("forwarder.adapters.inbound_auth")]
    assert not [m for m in trace.modules if m.startswith(("forwarder.cli", "web", "migrations"))]
    one_box = {
        "forwarder.hosts.onebox",
        "forwarder.adapters.smtp.ingress",
        "forwarder.hosts.dispatch",
        "forwarder.adapters.local.spool",
    }
    assert one_box.isdisjoint(trace.modules)
    assert Path("forwarder/hosts/lambda_handler.py") in trace.files and Path("models/__init__.py") in trace.files


def _fake_project(tmp_path: Path, handler_source: str) -> Path:
    root = tmp_path / "project"
    for package in ("forwarder", "forwarder/hosts", "web", "models"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "forwarder" / "hosts" / "lambda_handler.py").write_text(handler_source)
    return root


def test_a_handler_reaching_the_web_app_is_refused(tmp_path: Path) -> None:
    root = _fake_project(tmp_path, "def handler(event, context):\n    from web import create_app\n")
    with pytest.raises(PackagingError, match="reach web, which the forwarder zip must not carry"):
        trace_handler(root)


def test_an_unknown_third_party_import_is_refused_naming_its_importer(tmp_path: Path) -> None:
    root = _fake_project(tmp_path, "import json\nimport requests\n")
    with pytest.raises(
        PackagingError, match=r"forwarder\.hosts\.lambda_handler import requests, a third-party package"
    ):
        trace_handler(root)


def test_requirements_pin_the_installed_versions_and_the_chosen_drivers() -> None:
    trace = Trace(files=[], modules=[], third_party={"sqlalchemy": {"m"}, "boto3": {"m"}, "botocore": {"m"}})
    version = importlib.metadata.version
    assert requirements(trace, ["mysql"]) == [f"pymysql=={version('pymysql')}", f"sqlalchemy=={version('sqlalchemy')}"]
    assert f"psycopg[binary]=={version('psycopg')}" in requirements(trace, ["postgres"])
    assert not [r for r in requirements(trace, ["mysql", "postgres"]) if r.startswith(("boto3", "botocore"))]


def test_the_aws_group_offers_package_forwarder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHERMAIL_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["aws", "--help"])
    assert result.exit_code == 0 and "package-forwarder" in result.output
    result = CliRunner().invoke(cli, ["aws", "package-forwarder", "--driver", "oracle"])
    assert result.exit_code != 0 and "oracle" in result.output


def test_a_refused_trace_is_a_clean_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_project(tmp_path, "import requests\n")
    monkeypatch.setenv("OTHERMAIL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("forwarder.ops.packaging.project_root", lambda: root)
    result = CliRunner().invoke(cli, ["aws", "package-forwarder", "-o", str(tmp_path / "f.zip")])
    assert result.exit_code == 1
    assert "Error: forwarder.hosts.lambda_handler import requests" in result.output
    assert not (tmp_path / "f.zip").exists()
    shutil.rmtree(root)
