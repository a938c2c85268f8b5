"""Accounts: sign up, sign in, sign out, password reset, and the headers every page carries."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from models import User
from tests.web.conftest import PASSWORD, assert_states_the_password_rule, links_in, post, signup


def user(app: Flask, email: str) -> User:
    with app.app_context():
        from web.db import session

        return session().scalars(select(User).where(User.email == email)).one()


def test_signup_hashes_the_password_and_signs_in(app: Flask, client: FlaskClient) -> None:
    response = signup(client, "Ann@Example.org")
    assert response.status_code == 302
    stored = user(app, "ann@example.org")
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Sign out" in page


def test_signup_rejects_bad_input_and_duplicates(client: FlaskClient) -> None:
    assert signup(client, "not-an-address").status_code == 400
    assert (
        post(client, "/signup", {"email": "b@example.org", "password": "short", "confirm": "short"}).status_code == 400
    )
    assert (
        post(client, "/signup", {"email": "b@example.org", "password": PASSWORD, "confirm": PASSWORD + "x"}).status_code
        == 400
    )
    assert signup(client, "c@example.org").status_code == 302
    client.post("/signout", data={})  # no CSRF token: refused, still signed in
    assert "Sign out" in client.get("/", follow_redirects=True).get_data(as_text=True)
    client.delete_cookie("session", domain="othermail.test")
    assert signup(client, "C@example.org").status_code == 302  # taken: the same answer (issue 12.4)


def test_signin_signout(client: FlaskClient) -> None:
    signup(client)
    post(client, "/signout", {}, page="/dashboard")
    assert "Sign in" in client.get("/").get_data(as_text=True)
    wrong = post(client, "/signin", {"email": "ann@example.org", "password": "wrong password!"})
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.get_data(as_text=True)
    right = post(client, "/signin", {"email": "ann@example.org", "password": PASSWORD, "next": "//evil.example/"})
    assert right.status_code == 302 and right.headers["Location"] in ("/", "http://othermail.test/")


def test_state_changes_need_a_csrf_token(client: FlaskClient) -> None:
    response = client.post("/signup", data={"email": "x@example.org", "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 400


def test_cookies_and_security_headers(app: Flask) -> None:
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    response = signup(client, "h@example.org")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    page = client.get("/signin")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None and "style=" not in html  # scripts are files


def test_password_reset_by_email_is_single_use_and_signs_out_other_sessions(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    other = app.test_client()
    post(other, "/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert "Sign out" in other.get("/", follow_redirects=True).get_data(as_text=True)
    assert [m.recipient for m in outbox.sent] == ["ann@example.org"]  # the notice of a sign-in from a new browser
    outbox.sent.clear()

    fresh = app.test_client()
    post(fresh, "/reset", {"email": "ann@example.org"})
    post(fresh, "/reset", {"email": "nobody@example.org"})
    assert [m.recipient for m in outbox.sent] == ["ann@example.org"]
    (link,) = [found for found in links_in(outbox.sent[0].raw) if "/reset/" in found]
    path = link.split("othermail.test", 1)[1]
    new = "a brand new passphrase"
    opened = fresh.get(path)
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/new-password")
    assert post(fresh, "/new-password", {"password": new, "confirm": new}).status_code == 302
    assert fresh.get(path).status_code == 410  # used
    assert app.test_client().get("/new-password").headers["Location"].endswith("/reset")  # no link: ask for one
    assert "Sign in" in other.get("/").get_data(as_text=True)  # the old session ended
    assert post(app.test_client(), "/signin", {"email": "ann@example.org", "password": new}).status_code == 302
    assert fresh.get("/reset/not-a-token").status_code == 404


def test_signin_is_rate_limited(app: Flask, client: FlaskClient) -> None:
    signup(client)
    app.config["RATE_LIMITS"] = {"signin": (3, 900)}
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    codes = [
        post(other, "/signin", {"email": "ann@example.org", "password": "nope nope nope"}).status_code for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]


#: Targets that browsers (which drop tabs and newlines and read a backslash as a slash) or
#: urllib would send to another site; each must land on the home page instead.
OPEN_REDIRECTS = [
    "//evil.example/",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    " //evil.example",
    "/ /evil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "https:evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "java\tscript:alert(1)",
    "evil.example",
    "///evil.example",
    "/\x00/evil.example",
    "/\u3000/evil.example",
    "\t",
    "",
    "@evil.example",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_signin_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    """Issue 12.2: /signin?next=/%09/evil.com redirected to //evil.com."""
    signup(client)
    post(client, "/signout", {}, page="/signin")
    response = post(client, "/signin", {"email": "ann@example.org", "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] in ("/", "http://othermail.test/")


@pytest.mark.parametrize("target", ["/aliases/", "/aliases/?page=2", "/messages/7#top", "/account/tokens"])
def test_signin_returns_to_a_page_of_this_site(client: FlaskClient, target: str) -> None:
    signup(client)
    post(client, "/signout", {}, page="/signin")
    response = post(client, "/signin", {"email": "ann@example.org", "password": PASSWORD, "next": target})
    assert response.headers["Location"] in (target, "http://othermail.test" + target)


def test_the_signin_link_of_a_protected_page_carries_its_path(client: FlaskClient) -> None:
    response = client.get("/account/")
    assert response.status_code == 302 and "next=/account/" in unquote(response.headers["Location"])


def test_the_signup_form_states_the_password_rule_beside_the_field(client: FlaskClient) -> None:
    page = client.get("/signup").get_data(as_text=True)
    assert_states_the_password_rule(page)
