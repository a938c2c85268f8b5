"""An API token acts only on /api/v1 (issue 16): on every other page, the account, session,
two-factor and passkey pages among them, a bearer token is ignored as if it were not sent (the pages
know only the session cookie), and it is not even looked up there. The tokens page shows each
token's expiry and last use."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import ApiToken, User
from tests.web.conftest import PASSWORD, post, signup

ANN, BOB = "ann@example.org", "bob@example.org"
SECRET = re.compile(r'<code class="token-secret">(om_[A-Za-z0-9_-]{43})</code>')


def write_token(client: FlaskClient) -> str:
    page = post(
        client, "/account/tokens", {"name": "script", "scope": "write", "expires_in": "30", "password": PASSWORD}
    )
    [secret] = SECRET.findall(page.get_data(as_text=True))
    return secret


def last_used(app: Flask):  # type: ignore[no-untyped-def]
    with app.app_context():
        from web.db import session

        return session().scalars(select(ApiToken.last_used_at)).one()


def page_paths(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every rule outside /api/v1 and /static, its arguments filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return found


def test_every_page_rule_is_checked(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _, _ in page_paths(app)}
    assert {"account.index", "account.password", "account.end_session", "tokens.index", "tokens.create"} <= endpoints
    assert {endpoint.partition(".")[0] for endpoint in endpoints} >= {"two_factor", "passkeys", "auth", "account"}
    assert not any(endpoint.startswith("api.") for endpoint in endpoints)


def test_a_bearer_token_signs_nobody_in_on_any_page(app: Flask, client: FlaskClient) -> None:
    signup(client)
    secret = write_token(client)
    stranger = app.test_client()  # no session cookie, only the token
    headers = {"Authorization": f"Bearer {secret}"}
    for endpoint, method, path in page_paths(app):
        response = stranger.open(path, method=method, headers=headers)
        body = response.get_data(as_text=True)
        where = f"{method} {path} ({endpoint})"
        assert response.status_code != 500, where
        assert ANN not in body and "Sign out" not in body, where
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers["Location"]
            assert "/account" not in location or "/signin" in location, where
        elif method == "POST":
            assert response.status_code in (400, 403, 404, 405, 410, 429), where  # never done
    assert last_used(app) is None  # the token was not even looked up outside /api/v1


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/account/", None),
        ("GET", "/account/tokens", None),
        ("POST", "/account/password", {"current": PASSWORD, "password": "taken over now", "confirm": "taken over now"}),
        ("POST", "/account/sessions/1/end", {}),
        ("POST", "/account/tokens", {"name": "second", "scope": "write", "expires_in": "", "password": PASSWORD}),
        ("POST", "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}),
    ],
)
def test_the_account_and_session_pages_send_a_token_holder_to_sign_in(
    app: Flask, client: FlaskClient, method: str, path: str, data: dict | None
) -> None:
    """Even with a valid CSRF pair from a session of its own that is not signed in."""
    signup(client)
    secret = write_token(client)
    stranger = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    if data is not None:
        data = {**data, "csrf_token": _anonymous_csrf(stranger)}
    response = stranger.open(path, method=method, data=data, headers=headers)
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    with app.app_context():
        from web.db import session

        ann = session().scalars(select(User).where(User.email == ANN)).one()
        assert ann.deleted_at is None and len(ann.api_tokens) == 1 and len(ann.sessions) == 1
    assert post(app.test_client(), "/signin", {"email": ANN, "password": PASSWORD}).status_code == 302  # unchanged


def _anonymous_csrf(browser: FlaskClient) -> str:
    page = browser.get("/signin").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_a_token_does_not_change_whose_page_a_session_sees(app: Flask, client: FlaskClient) -> None:
    signup(client)
    secret = write_token(client)
    bob = app.test_client()
    signup(bob, BOB)
    page = bob.get("/account/", headers={"Authorization": f"Bearer {secret}"}).get_data(as_text=True)
    assert BOB in page and ANN not in page
    tokens = bob.get("/account/tokens", headers={"Authorization": f"Bearer {secret}"}).get_data(as_text=True)
    assert ">script</td>" not in tokens and "No token yet." in tokens


def test_a_session_cookie_does_not_open_the_api(client: FlaskClient) -> None:
    signup(client)
    response = client.get("/api/v1/aliases")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_the_tokens_page_shows_expiry_and_last_use(app: Flask, client: FlaskClient) -> None:
    signup(client)
    secret = write_token(client)
    post(client, "/account/tokens", {"name": "forever", "scope": "read", "expires_in": "", "password": PASSWORD})

    def row(name: str) -> str:
        page = client.get("/account/tokens").get_data(as_text=True)
        [found] = [tr for tr in page.split("<tr")[1:] if f">{name}</td>" in tr]
        return found

    with app.app_context():
        from web.db import session

        expires = session().scalars(select(ApiToken.expires_at).where(ApiToken.name == "script")).one()
    assert f"{expires:%Y-%m-%d}" in row("script") and re.search(r">\s*never\s*<", row("forever"))
    assert "never</span>" in row("script")  # not used yet
    assert app.test_client().get("/api/v1/aliases", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    used = last_used_of(app, "script")
    assert used is not None and f"{used:%Y-%m-%d %H:%M} UTC" in row("script")
    assert "never</span>" in row("forever")


def last_used_of(app: Flask, name: str):  # type: ignore[no-untyped-def]
    with app.app_context():
        from web.db import session

        return session().scalars(select(ApiToken.last_used_at).where(ApiToken.name == name)).one()


def test_every_account_and_two_factor_action_sends_a_token_holder_to_sign_in(app: Flask, client: FlaskClient) -> None:
    """Every POST under /account (password, sessions, two-factor, passkeys, tokens...) and the second
    sign-in step, with a valid CSRF pair of the token holder's own: nothing is done."""
    signup(client)
    secret = write_token(client)
    stranger = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    token = _anonymous_csrf(stranger)
    checked = []
    for endpoint, method, path in page_paths(app):
        if method != "POST" or not (path.startswith("/account") or path.startswith("/signin/verify")):
            continue
        response = stranger.post(path, data={"csrf_token": token, "code": "123456"}, headers=headers)
        where = f"{method} {path} ({endpoint})"
        if response.status_code in (302, 303):
            assert "/signin" in response.headers["Location"], where
        else:  # the JSON steps of a passkey sign-in: no sign-in pending
            assert response.status_code in (400, 401, 403, 404), where
            assert ANN not in response.get_data(as_text=True), where
        checked.append(endpoint)
    assert {"account.password", "two_factor.disable", "two_factor.verify", "passkeys.new"} <= set(checked)
    assert last_used(app) is None
