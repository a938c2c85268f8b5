"""A web app on a migrated SQLite database, with an in-memory outbound sender."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forwarder.accounts.passwords import MIN_PASSWORD
from forwarder.adapters.senders import MemorySender
from forwarder.runtime import Runtime
from forwarder.settings import Settings
from tests.support.databases import migrate
from web import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        domains=("othermail.example", "alias.example"),
        sender="outbox",
        outbox=tmp_path / "outbox",
        store_dir=tmp_path / "mail",
    )
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "SETTINGS": settings,
            "SERVER_NAME": "othermail.test",
            "RATE_LIMITS": {"signup": (50, 3600), "signin": (50, 900), "reset": (50, 3600)},
        },
        runtime=Runtime.build(settings, sender=MemorySender()),
    )
    # service mail sent off the request path (web.mailer.send_later) runs at once here, so tests
    # see it in the outbox as the request returns
    app.extensions["othermail.mail_runner"] = lambda job: job()
    yield app
    app.extensions["othermail.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def outbox(app: Flask) -> MemorySender:
    return app.extensions["othermail.runtime"].sender


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post(client: FlaskClient, path: str, data: dict, page: str | None = None, **kw: object):
    return client.post(path, data={"csrf_token": csrf(client, page or path), **data}, **kw)


def signup(client: FlaskClient, email: str = "ann@example.org", password: str = PASSWORD, verify: bool = True):
    """Sign up and sign in; with ``verify`` also confirm the account's email through the link mailed
    to it (the mail is then taken out of the outbox, so tests see only the mail they cause)."""
    response = post(client, "/signup", {"email": email, "password": password, "confirm": password})
    if verify:
        confirm_account_email(client, email)
    if response.status_code == 302:  # sign-up answers the same for a taken address: it never signs in (12.4)
        post(client, "/signin", {"email": email, "password": password})
    return response


def confirm_account_email(client: FlaskClient, address: str) -> None:
    """Press the button behind the account-verification link mailed to ``address`` (issue 12.5)."""
    sender = vars(client.application.extensions["othermail.runtime"]).get("sender")  # not built here
    if not isinstance(sender, MemorySender):
        return
    for mail in [m for m in sender.sent if m.recipient == address.strip().lower()]:
        links = [link for link in links_in(mail.raw) if "/email/verify/" in link]
        if links:
            path = links[-1].split("://", 1)[1].partition("/")[2]
            confirmed = post(client, "/" + path, {})
            assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
            sender.sent.remove(mail)


def links_in(message_raw: bytes) -> list[str]:
    """The links in a plain-text message the service sent (decoded, as a mail client shows it)."""
    message = email.message_from_bytes(message_raw, policy=email.policy.default)
    return re.findall(r"https?://\S+", message.get_content())


def assert_states_the_password_rule(page: str, name: str = "password") -> None:
    """The new-password field ``name`` has the minimum length, and a hint it points at says it."""
    field = re.search(rf'<input type="password" name="{name}"[^>]*>', page)
    assert field and f'minlength="{MIN_PASSWORD}"' in field.group(0)
    described = re.search(r'aria-describedby="([^"]+)"', field.group(0))
    assert described, field.group(0)
    hint = re.search(rf'id="{described.group(1)}">([^<]+)<', page)
    assert hint and f"At least {MIN_PASSWORD} characters" in hint.group(1)
