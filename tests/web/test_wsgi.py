"""``web.wsgi``: the app uWSGI loads, configured from the environment, trusting one proxy (nginx)."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from flask import request, url_for
from sqlalchemy import create_engine, select

from forwarder.errors import SettingsError
from models import RateLimitHit
from tests.support.databases import migrate

NGINX_HEADERS = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "othermail.example.com",
}


@pytest.fixture
def load_wsgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Import ``web.wsgi`` afresh with OTHERMAIL_* variables pointing at a migrated SQLite database."""
    migrate(f"sqlite:///{tmp_path / 'othermail.db'}")
    monkeypatch.setenv("OTHERMAIL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OTHERMAIL_DATABASE_URL", raising=False)
    monkeypatch.setenv("OTHERMAIL_SENDER", "outbox")
    monkeypatch.setenv("OTHERMAIL_WEB_SECRET_KEY", "wsgi-test-secret")
    loaded: list[ModuleType] = []

    def load(**env: str) -> ModuleType:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("web.wsgi", None)
        module = importlib.import_module("web.wsgi")
        loaded.append(module)
        return module

    yield load
    sys.modules.pop("web.wsgi", None)
    for module in loaded:
        module.app.extensions["othermail.engine"].dispose()


def _add_probe(module: ModuleType) -> None:
    """A route that reports what the app believes about the request."""

    def probe() -> dict[str, str | None]:
        return {
            "remote_addr": request.remote_addr,
            "scheme": request.scheme,
            "host": request.host,
            "signin": url_for("auth.signin", _external=True),
        }

    module.app.add_url_rule("/_probe", "probe", probe)


def test_settings_come_from_the_environment(load_wsgi: Callable[..., ModuleType], tmp_path: Path) -> None:
    module = load_wsgi()
    app = module.app
    assert app.config["SECRET_KEY"] == "wsgi-test-secret"
    assert app.config["SETTINGS"].data_dir == tmp_path
    assert app.config["SETTINGS"].sender == "outbox"
    assert app.config["SESSION_COOKIE_SECURE"] is True  # nginx serves https only
    response = app.test_client().get("/signin", base_url="https://othermail.example.com")
    assert response.status_code == 200
    assert 'name="password"' in response.get_data(as_text=True)


def test_forwarded_headers_from_nginx_are_honoured(load_wsgi: Callable[..., ModuleType]) -> None:
    module = load_wsgi()
    _add_probe(module)
    seen = (
        module.app.test_client()
        .get("/_probe", headers=NGINX_HEADERS, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        .get_json()
    )
    assert seen == {
        "remote_addr": "203.0.113.7",
        "scheme": "https",
        "host": "othermail.example.com",
        "signin": "https://othermail.example.com/signin",
    }


def test_only_the_last_hop_is_trusted(load_wsgi: Callable[..., ModuleType]) -> None:
    """A client's own X-Forwarded-For is ignored: nginx's entry (the last) is the one used."""
    module = load_wsgi()
    _add_probe(module)
    headers = {**NGINX_HEADERS, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    seen = module.app.test_client().get("/_probe", headers=headers).get_json()
    assert seen["remote_addr"] == "203.0.113.7"


def test_rate_limits_count_the_forwarded_client(load_wsgi: Callable[..., ModuleType], tmp_path: Path) -> None:
    """A real form post as a browser sends it through nginx: over https, Flask-WTF also checks that
    the Referer is this host, which holds only because X-Forwarded-Host and -Proto are applied."""
    module = load_wsgi()
    client = module.app.test_client()
    page = client.get("/signin", headers=NGINX_HEADERS)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token
    headers = {**NGINX_HEADERS, "Referer": "https://othermail.example.com/signin"}
    response = client.post(
        "/signin", headers=headers, data={"csrf_token": token.group(1), "email": "nobody@example.org", "password": "x"}
    )
    assert response.status_code == 401
    engine = create_engine(f"sqlite:///{tmp_path / 'othermail.db'}")
    try:
        with engine.connect() as connection:
            keys = connection.scalars(select(RateLimitHit.key)).all()
    finally:
        engine.dispose()
    assert sorted(keys) == ["signin-ip:203.0.113.7", "signin:203.0.113.7:nobody@example.org"]


@pytest.mark.parametrize("value", ["false", "0", "off"])
def test_proxy_fix_can_be_turned_off(load_wsgi: Callable[..., ModuleType], value: str) -> None:
    module = load_wsgi(OTHERMAIL_WEB_PROXY_FIX=value)
    _add_probe(module)
    seen = (
        module.app.test_client()
        .get("/_probe", headers=NGINX_HEADERS, environ_base={"REMOTE_ADDR": "192.0.2.9"})
        .get_json()
    )
    assert seen == {
        "remote_addr": "192.0.2.9",
        "scheme": "http",
        "host": "localhost",
        "signin": "http://localhost/signin",
    }


def test_a_wrong_proxy_fix_value_names_the_variable(load_wsgi: Callable[..., ModuleType]) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_WEB_PROXY_FIX"):
        load_wsgi(OTHERMAIL_WEB_PROXY_FIX="maybe")
