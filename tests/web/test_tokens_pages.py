"""/account/tokens: create a token (its secret shown once, stored only hashed), list, revoke."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import ApiToken, utcnow
from tests.web.conftest import PASSWORD, post, signup

SECRET = re.compile(r'<code class="token-secret">(om_[A-Za-z0-9_-]{43})</code>')


def tokens_in(app: Flask) -> list[ApiToken]:
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        rows = list(db.scalars(select(ApiToken).order_by(ApiToken.id)))
        db.close()
    return rows


def create(  # type: ignore[no-untyped-def]
    client: FlaskClient, name: str = "backup", scope: str = "write", expires_in: str = "30", password: str = PASSWORD
):
    form = {"name": name, "scope": scope, "expires_in": expires_in, "password": password}
    return post(client, "/account/tokens", form)


def test_the_page_needs_a_session(client: FlaskClient) -> None:
    response = client.get("/account/tokens")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_a_new_secret_is_shown_once_and_stored_only_as_its_sha256(app: Flask, client: FlaskClient) -> None:
    signup(client)
    response = create(client)
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    [secret] = SECRET.findall(page)
    assert "shown this once only" in page
    [token] = tokens_in(app)
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:10] and token.name == "backup" and token.scope == "write"
    assert token.expires_at is not None and timedelta(days=29) < token.expires_at - utcnow() <= timedelta(days=30)
    assert secret not in repr([getattr(token, c) for c in ("name", "token_hash", "prefix", "scope")])
    again = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in again and not SECRET.search(again)
    assert f"{token.prefix}…" in again and ">backup</td>" in again and "never" in again  # never used yet
    assert response.headers["Cache-Control"] == "no-store"


def test_creating_a_token_asks_for_the_current_password(app: Flask, client: FlaskClient) -> None:
    """A session alone (one taken over, a browser left open) must not mint a lasting write token."""
    signup(client)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert 'name="password" required autocomplete="current-password"' in page
    for password in ("", "not the password"):
        response = create(client, password=password)
        page = response.get_data(as_text=True)
        assert response.status_code == 403 and "not your current password" in page
        assert not SECRET.search(page) and 'value="backup"' in page
    assert tokens_in(app) == []
    assert create(client).status_code == 201 and len(tokens_in(app)) == 1


def test_password_guesses_on_the_tokens_page_count_with_the_account_pages(app: Flask, client: FlaskClient) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin": (3, 900)}
    signup(client)
    for _ in range(3):  # the per-account "signin" budget of the account page's password checks
        post(client, "/account/two-factor/disable", {"password": "wrong guess"}, page="/account/")
    response = create(client)  # the right password, but the budget is spent
    assert response.status_code == 429 and "Too many attempts" in response.get_data(as_text=True)
    assert tokens_in(app) == []


def test_the_secret_works_for_the_api_with_its_scope(app: Flask, client: FlaskClient) -> None:
    signup(client)
    [secret] = SECRET.findall(create(client, "reader", "read", "").get_data(as_text=True))
    assert tokens_in(app)[0].expires_at is None
    api = app.test_client()  # no session cookie
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/aliases", headers=headers).status_code == 200
    assert api.post("/api/v1/destinations", json={"email": "x@example.net"}, headers=headers).status_code == 403
    listed = client.get("/account/tokens").get_data(as_text=True)
    assert "UTC" in listed  # last used is shown now


def test_revoking_stops_the_token_at_once(app: Flask, client: FlaskClient) -> None:
    signup(client)
    [secret] = SECRET.findall(create(client).get_data(as_text=True))
    [token] = tokens_in(app)
    response = post(client, f"/account/tokens/{token.id}/revoke", {}, page="/account/tokens")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/tokens")
    assert tokens_in(app)[0].revoked_at is not None
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "revoked" in page and f"/account/tokens/{token.id}/revoke" not in page
    api = app.test_client()
    assert api.get("/api/v1/aliases", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_expired_tokens_are_marked(app: Flask, client: FlaskClient) -> None:
    signup(client)
    create(client)
    [token] = tokens_in(app)
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        db.get(ApiToken, token.id).expires_at = utcnow() - timedelta(days=1)
        db.commit()
        db.close()
    assert '<span class="tag bad">expired</span>' in client.get("/account/tokens").get_data(as_text=True)


def test_another_users_token_cannot_be_revoked(app: Flask, client: FlaskClient) -> None:
    signup(client)
    create(client)
    [token] = tokens_in(app)
    other = app.test_client()
    signup(other, "eve@example.org")
    assert post(other, f"/account/tokens/{token.id}/revoke", {}, page="/account/tokens").status_code == 404
    assert tokens_in(app)[0].revoked_at is None
    assert "No token yet." in other.get("/account/tokens").get_data(as_text=True)


def test_forms_need_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    signup(client)
    assert client.post("/account/tokens", data={"name": "x", "scope": "read"}).status_code == 400
    assert tokens_in(app) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  "}, "Give the token a name"),
        ({"name": "x" * 101}, "Give the token a name"),
        ({"scope": "admin"}, "either read or write"),
        ({"expires_in": "soon"}, "Choose when the token expires"),
        ({"expires_in": "0"}, "1 to 3650 days"),
    ],
)
def test_bad_input_is_shown_and_nothing_is_created(app: Flask, client: FlaskClient, fields: dict, message: str) -> None:
    signup(client)
    form = {"name": "ok", "scope": "read", "expires_in": "30", "password": PASSWORD, **fields}
    response = post(client, "/account/tokens", form)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert not SECRET.search(response.get_data(as_text=True))
    assert tokens_in(app) == []
