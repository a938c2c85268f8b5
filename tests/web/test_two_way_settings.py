"""Two-way alias settings in the web app (issue 14): the account's name format, unsubscribe action,
sender mode and rules; an alias's name on replies, sender mode and rules."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import Alias, User
from tests.support.factories import add_destination, user_id, web_session
from tests.web.conftest import PASSWORD, post, signup
from tests.web.test_contacts_pages import make_alias

ACCOUNT = "/account/"


@pytest.fixture
def ann(app: Flask, client: FlaskClient) -> FlaskClient:
    signup(client, "ann@example.org")
    add_destination(app, user_id(app, "ann@example.org"), "home@real.example")
    return client


def user_row(app: Flask, email: str = "ann@example.org") -> tuple[str, str, str]:
    with app.app_context():
        user = web_session(app).query(User).filter_by(email=email).one()
        return user.display_format, user.unsubscribe_action, user.sender_mode


def alias_row(app: Flask, alias_id: int) -> tuple[str, str]:
    with app.app_context():
        alias = web_session(app).get(Alias, alias_id)
        return alias.display_name, alias.sender_mode


def test_account_mail_preferences(app: Flask, ann: FlaskClient) -> None:
    assert user_row(app) == ("name-and-address", "disable-alias", "any")
    page = ann.get(ACCOUNT).get_data(as_text=True)
    assert 'name="display_format"' in page and 'name="unsubscribe_action"' in page
    prefs = {"display_format": "address", "unsubscribe_action": "block-contact", "sender_mode": "allow-only"}
    assert post(ann, "/account/mail", prefs, page=ACCOUNT).status_code == 302
    assert user_row(app) == ("address", "block-contact", "allow-only")
    assert 'value="block-contact" selected' in ann.get(ACCOUNT).get_data(as_text=True)
    bad = post(ann, "/account/mail", {**prefs, "display_format": "shout"}, page=ACCOUNT)
    assert bad.status_code == 400 and "name format is one of" in bad.get_data(as_text=True)
    assert user_row(app) == ("address", "block-contact", "allow-only")


def test_account_rules_apply_to_every_alias(app: Flask, ann: FlaskClient) -> None:
    alias_id, _ = make_alias(ann)
    rule = {"action": "block", "kind": "domain", "value": "spam.example"}
    assert post(ann, "/account/rules", rule, page=ACCOUNT).status_code == 302
    book = app.extensions["othermail.runtime"].contacts
    uid = user_id(app, "ann@example.org")
    assert book.sender_allowed(uid, alias_id, "a@spam.example").reason == "blocked-by-account-rule"
    page = ann.get(ACCOUNT).get_data(as_text=True)
    found = re.search(r'action="/account/rules/(\d+)/delete"', page)
    assert found and "spam.example" in page
    bad = post(ann, "/account/rules", {"action": "block", "kind": "address", "value": "nope"}, page=ACCOUNT)
    assert bad.status_code == 400 and "is not an email address" in bad.get_data(as_text=True)
    other = app.test_client()
    signup(other, "eve@example.org", PASSWORD)
    assert post(other, f"/account/rules/{found.group(1)}/delete", {}, page=ACCOUNT).status_code == 404
    assert post(ann, f"/account/rules/{found.group(1)}/delete", {}, page=ACCOUNT).status_code == 302
    assert book.sender_allowed(uid, alias_id, "a@spam.example").reason == "no-rule"


def test_alias_name_and_sender_mode(app: Flask, ann: FlaskClient) -> None:
    alias_id, _ = make_alias(ann)
    page = f"/aliases/{alias_id}"
    assert 'name="display_name"' in ann.get(page).get_data(as_text=True)
    response = post(ann, f"{page}/two-way", {"display_name": " Ann Shop ", "sender_mode": "allow-only"}, page=page)
    assert response.status_code == 302
    assert alias_row(app, alias_id) == ("Ann Shop", "allow-only")
    post(ann, f"{page}/two-way", {"display_name": "Evil\r\nBcc: x@y.example", "sender_mode": "any"}, page=page)
    assert alias_row(app, alias_id) == ("Ann Shop", "allow-only")
    post(ann, f"{page}/two-way", {"display_name": "", "sender_mode": "sometimes"}, page=page)
    assert alias_row(app, alias_id) == ("Ann Shop", "allow-only")


def test_alias_rules_on_the_contacts_page(app: Flask, ann: FlaskClient) -> None:
    alias_id, _ = make_alias(ann)
    url = f"/aliases/{alias_id}/contacts"
    assert (
        post(ann, f"/aliases/{alias_id}/rules", {"action": "allow", "kind": "empty-sender"}, page=url).status_code
        == 302
    )
    page = ann.get(url).get_data(as_text=True)
    found = re.search(rf'action="/aliases/{alias_id}/rules/(\d+)/delete"', page)
    assert found and "empty-sender" in page
    book = app.extensions["othermail.runtime"].contacts
    uid = user_id(app, "ann@example.org")
    assert book.sender_allowed(uid, alias_id, "").reason == "allowed-by-alias-rule"
    assert post(ann, f"/aliases/{alias_id}/rules/{found.group(1)}/delete", {}, page=url).status_code == 302
    assert book.rules(uid, alias_id) == []
