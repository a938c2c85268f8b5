"""Issue 12.1: mailed links come from the configured address, never from the request's Host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.hosts.onebox import OneBox
from forwarder.runtime import Runtime
from forwarder.settings import Settings
from tests.support.databases import migrate
from tests.web.conftest import links_in
from web import create_app

PUBLIC = "https://mail.example.org"


@pytest.fixture
def public_app(app: Flask) -> Iterator[Flask]:
    """The test app's database and settings, with OTHERMAIL_PUBLIC_URL set and no SERVER_NAME."""
    settings = replace(app.config["SETTINGS"], public_url=PUBLIC)
    made = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret", "SETTINGS": settings, "RATE_LIMITS": app.config["RATE_LIMITS"]},
        runtime=Runtime.build(settings, sender=app.extensions["othermail.runtime"].sender),
    )
    made.extensions["othermail.mail_runner"] = app.extensions["othermail.mail_runner"]  # mail at once
    yield made
    made.extensions["othermail.engine"].dispose()


def test_an_unknown_host_is_refused(public_app: Flask) -> None:
    assert public_app.config["TRUSTED_HOSTS"] == ["mail.example.org"]
    client = public_app.test_client()
    assert client.get("/signin", base_url=PUBLIC).status_code == 200
    assert client.get("/signin", base_url="https://evil.example").status_code == 400
    assert client.get("/signin", base_url=PUBLIC, headers={"Host": "evil.example"}).status_code == 400


def add_user(app: Flask, email: str = "ann@example.org") -> None:
    with app.app_context():
        from models import User, utcnow
        from web.db import session
        from web.security import hash_password

        session().add(
            User(email=email, password_hash=hash_password("correct horse battery"), email_verified_at=utcnow())
        )  # a confirmed address may add destinations (12.5)
        session().commit()


def forged_post(app: Flask, path: str, data: dict[str, str]) -> int:
    """A form post whose Host header names evil.example (the form itself fetched the normal way)."""
    client = app.test_client()
    page = client.get(path, base_url=PUBLIC).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    cookie = client.get_cookie("session", domain="mail.example.org")
    assert cookie is not None
    client.set_cookie("session", cookie.value, domain="evil.example")  # as if the form came from there
    return client.post(
        path,
        base_url=PUBLIC,
        headers={"Host": "evil.example", "Referer": "https://evil.example" + path},
        data={"csrf_token": match.group(1), **data},
    ).status_code


def test_a_reset_requested_with_a_forged_host_mails_the_public_address(public_app: Flask, outbox: MemorySender) -> None:
    add_user(public_app)
    assert forged_post(public_app, "/reset", {"email": "ann@example.org"}) == 400  # refused: unknown host
    assert outbox.sent == []
    public_app.config["TRUSTED_HOSTS"] = None  # even with the Host check off, the link is the public one
    assert forged_post(public_app, "/reset", {"email": "ann@example.org"}) == 302
    (message,) = outbox.sent
    links = links_in(message.raw)
    assert links and all(link.startswith(PUBLIC + "/reset/") for link in links)
    assert "evil.example" not in message.raw.decode()


def test_a_destination_link_requested_with_a_forged_host_mails_the_public_address(
    public_app: Flask, outbox: MemorySender
) -> None:
    add_user(public_app)
    with public_app.test_request_context("/", base_url="https://evil.example"):
        from models import Destination, User
        from web.db import services, session
        from web.services.destinations import send_verification

        user = session().scalars(select(User)).one()
        destination = Destination(user_id=user.id, email="me@real.example")
        session().add(destination)
        session().commit()
        send_verification(services(), user, destination)
    (message,) = outbox.sent
    (link,) = links_in(message.raw)
    assert link.startswith(PUBLIC + "/destinations/verify/")


def test_without_a_configured_address_no_link_is_built_from_the_request(app: Flask) -> None:
    from forwarder.errors import SettingsError
    from web.links import external_url

    app.config["SERVER_NAME"] = None
    with app.test_request_context("/", base_url="https://evil.example"):
        with pytest.raises(SettingsError, match="OTHERMAIL_PUBLIC_URL"):
            external_url("auth.signin")
        app.config["PUBLIC_URL"] = "http://127.0.0.1:8025"
        assert external_url("auth.reset", token="t") == "http://127.0.0.1:8025/reset/t"


def test_the_one_box_mails_its_own_address_and_answers_only_its_names(tmp_path: Path) -> None:
    import http.client

    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )
    settings.data_dir.mkdir()
    migrate(settings.resolved_database_url)
    box = OneBox(settings, web_port=0, smtp_port=None, sender=MemorySender(), workers=1)
    try:
        started = box.start()
        assert started.web_url is not None
        port = int(started.web_url.rsplit(":", 1)[1])
        app = box._web.app.app  # OpsEndpoints around the Flask app
        assert app.config["PUBLIC_URL"] == started.web_url
        assert app.config["TRUSTED_HOSTS"] == ["127.0.0.1", "localhost"]

        def status(host: str) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/signin", headers={"Host": host})
                return connection.getresponse().status
            finally:
                connection.close()

        assert status(f"127.0.0.1:{port}") == 200 and status(f"localhost:{port}") == 200
        assert status("evil.example") == 400
    finally:
        box.stop(timeout=5)
