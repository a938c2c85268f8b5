"""``web.wsgi`` on Lambda: the database URL and secret key from Secrets Manager or SSM (moto)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import text

from forwarder.errors import SettingsError
from tests.support.databases import migrate

REGION = "us-east-1"


@pytest.fixture
def load_wsgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], ModuleType]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("OTHERMAIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", "sqlite:////nonexistent/plain-environment.db")
    monkeypatch.setenv("OTHERMAIL_SENDER", "outbox")
    for name in ("OTHERMAIL_WEB_SECRET_KEY", "OTHERMAIL_SSM_PATH", "OTHERMAIL_SECRETS_ARN"):
        monkeypatch.delenv(name, raising=False)
    loaded: list[ModuleType] = []

    def load() -> ModuleType:
        sys.modules.pop("web.wsgi", None)
        module = importlib.import_module("web.wsgi")
        loaded.append(module)
        return module

    with mock_aws():
        yield load
    sys.modules.pop("web.wsgi", None)
    for module in loaded:
        module.app.extensions["othermail.engine"].dispose()


def _secret(values: dict[str, Any]) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return client.create_secret(Name="othermail/web", SecretString=json.dumps(values))["ARN"]


def test_the_app_runs_on_the_secrets_database_with_the_secrets_key(
    load_wsgi: Callable[[], ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-secret.db'}"
    migrate(url)
    monkeypatch.setenv(
        "OTHERMAIL_SECRETS_ARN",
        _secret(
            {
                "OTHERMAIL_DATABASE_URL": url,
                "OTHERMAIL_WEB_SECRET_KEY": "secret-from-secrets-manager",
                "OTHERMAIL_WEB_PROXY_FIX": "false",
            }
        ),
    )
    app = load_wsgi().app
    assert app.config["SECRET_KEY"] == "secret-from-secrets-manager"
    assert app.config["PROXY_FIX"] is False  # parsed as Flask parses OTHERMAIL_WEB_* variables
    assert app.config["SETTINGS"].database_url == url
    assert app.config["SETTINGS"].sender == "outbox"  # the plain environment still counts
    assert not (tmp_path / "data" / "secret_key").exists()  # no key written (Lambda's disk is read-only)
    engine = app.extensions["othermail.engine"]
    assert engine.url.render_as_string() == url
    with engine.connect() as connection:  # the migrated database from the secret, not the plain one
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
    assert app.test_client().get("/signin", base_url="https://othermail.example.com").status_code == 200


def test_ssm_parameters_feed_the_app(
    load_wsgi: Callable[[], ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-ssm.db'}"
    migrate(url)
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/othermail/dev/OTHERMAIL_DATABASE_URL", Value=url, Type="SecureString")
    ssm.put_parameter(Name="/othermail/dev/OTHERMAIL_WEB_SECRET_KEY", Value="from-ssm", Type="SecureString")
    monkeypatch.setenv("OTHERMAIL_SSM_PATH", "/othermail/dev")
    app = load_wsgi().app
    assert (app.config["SECRET_KEY"], app.config["SETTINGS"].database_url) == ("from-ssm", url)


def test_an_unreadable_secret_stops_the_import_with_a_clear_error(
    load_wsgi: Callable[[], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTHERMAIL_SECRETS_ARN", "othermail/missing")
    with pytest.raises(SettingsError, match=r"Secrets Manager secret othermail/missing \(OTHERMAIL_SECRETS_ARN\)"):
        load_wsgi()
