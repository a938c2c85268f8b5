"""One-click unsubscribe (RFC 8058, issue 14): /u/<token> without a session or CSRF token does the
owner's chosen action; a forged token is a 404 and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forwarder.flows.unsubscribe import sign
from models import Alias, Contact, User
from tests.support.factories import web_session

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class Seeded:
    alias_id: int
    contact_id: int
    token: str


def seed(app: Flask, action: str | None = None) -> Seeded:
    with app.app_context():
        db = web_session(app)
        user = User(email="ann@example.org", password_hash="x")
        if action:
            user.unsubscribe_action = action
        db.add(user)
        db.flush()
        alias = Alias(address="shop@othermail.example", user_id=user.id)
        db.add(alias)
        db.commit()
        alias_id = alias.id
    runtime = app.extensions["othermail.runtime"]
    contact = runtime.contacts.create(alias_id, "othermail.example", "news@store.example", origin="forward")
    return Seeded(alias_id, contact.contact_id, sign(runtime.unsubscribe_keys[0], alias_id, contact.contact_id))


def state(app: Flask, seeded: Seeded) -> tuple[bool, str | None, bool]:
    """(alias enabled, its disabled reason, contact blocked)"""
    with app.app_context():
        db = web_session(app)
        alias, contact = db.get(Alias, seeded.alias_id), db.get(Contact, seeded.contact_id)
        return alias.enabled, alias.disabled_reason, contact.blocked


@pytest.mark.parametrize(
    ("action", "after"),
    [
        (None, (False, "unsubscribed with one click (List-Unsubscribe)", False)),
        ("disable-alias", (False, "unsubscribed with one click (List-Unsubscribe)", False)),
        ("block-contact", (True, None, True)),
        ("pass-through", (True, None, False)),
    ],
)
def test_a_one_click_post_does_the_owners_action(
    app: Flask, client: FlaskClient, action: str | None, after: tuple[bool, str | None, bool]
) -> None:
    seeded = seed(app, action)
    assert state(app, seeded) == (True, None, False)
    response = client.post(f"/u/{seeded.token}", data=ONE_CLICK)  # no session, no CSRF token
    assert response.status_code == 200
    assert state(app, seeded) == after
    assert "news@store.example" not in response.get_data(as_text=True)


def test_get_shows_a_confirm_form_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app)
    page = client.get(f"/u/{seeded.token}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'action="/u/{seeded.token}"' in text and 'name="List-Unsubscribe" value="One-Click"' in text
    assert state(app, seeded) == (True, None, False)


def test_forged_and_stale_tokens_are_404_and_change_nothing(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app)
    alias_id, contact_id, mac = seeded.token.split(".")
    forged = [
        f"{alias_id}.{contact_id}.{'A' * len(mac)}",
        f"{alias_id}.{int(contact_id) + 1}.{mac}",
        sign(b"k" * 32, seeded.alias_id, seeded.contact_id),
        "garbage",
        "1.2",
        "9" * 500,
    ]
    for token in forged:
        assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 404, token
        assert client.get(f"/u/{token}").status_code == 404, token
    assert state(app, seeded) == (True, None, False)
    app.extensions["othermail.runtime"].contacts.delete_contact(seeded.alias_id, seeded.contact_id)
    assert client.post(f"/u/{seeded.token}", data=ONE_CLICK).status_code == 404


def test_a_post_without_the_one_click_body_changes_nothing(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app)
    assert client.post(f"/u/{seeded.token}", data={"other": "x"}).status_code == 400
    assert state(app, seeded) == (True, None, False)


def test_unsubscribe_is_rate_limited_per_client(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app, "pass-through")
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "unsubscribe": (3, 3600)}
    statuses = [client.post(f"/u/{seeded.token}", data=ONE_CLICK).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
