"""Passkeys through the web app (web/passkeys.py): the account page adds and removes them, the
sign-in page signs in with one; answers come from the software authenticator in
tests/support/authenticator.py, as the browser's JSON."""

from __future__ import annotations

import dataclasses
import html
import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forwarder.adapters.senders import MemorySender
from tests.support.authenticator import Authenticator
from tests.web.conftest import PASSWORD, csrf, post, signup

ORIGIN = "http://othermail.test"  # the app's SERVER_NAME (tests/web/conftest.py)


def options_on(page: str) -> dict:
    match = re.search(r'data-options="([^"]+)"', page)
    assert match, "no passkey options on the page"
    return json.loads(html.unescape(match.group(1)))


def begin(client: FlaskClient, name: str = "Laptop", password: str = PASSWORD):
    return post(client, "/account/passkeys/new", {"name": name, "password": password}, page="/account/")


def send(client: FlaskClient, path: str, body: dict, token_page: str = "/account/", token: str | None = None):
    headers = {"X-CSRFToken": token if token is not None else csrf(client, token_page)}
    return client.post(path, json=body, headers=headers)


def add_passkey(client: FlaskClient, device: Authenticator, name: str = "Laptop") -> dict:
    page = begin(client, name)
    assert page.status_code == 200, page.get_data(as_text=True)
    answer = device.create(options_on(page.get_data(as_text=True)))
    done = send(client, "/account/passkeys", {"credential": answer})
    assert done.status_code == 200, done.get_data(as_text=True)
    return done.get_json()


def passkey_signin(client: FlaskClient, device: Authenticator, next_path: str = "", **kw: object):
    token = csrf(client, "/signin")
    options = send(client, "/signin/passkey/options", {}, token=token)
    assert options.status_code == 200, options.get_data(as_text=True)
    answer = device.get(options.get_json(), **kw)  # type: ignore[arg-type]
    return send(client, "/signin/passkey", {"credential": answer, "next": next_path}, token=token)


def passkeys_section(client: FlaskClient) -> str:
    page = client.get("/account/").get_data(as_text=True)
    return page.split('id="passkeys"', 1)[1].split("</section>", 1)[0]


def signed_in(client: FlaskClient) -> bool:
    return client.get("/account/").status_code == 200


def notices(outbox: MemorySender, subject: str) -> int:
    return sum(1 for mail in outbox.sent if subject.encode() in mail.raw)


def test_adding_a_passkey_asks_for_the_password_lists_it_and_ends_other_sessions(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    other = app.test_client()
    post(other, "/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert signed_in(other)
    wrong = begin(client, password="not my password")
    assert wrong.status_code == 403 and "not your current password" in wrong.get_data(as_text=True)
    assert "data-options" not in wrong.get_data(as_text=True)
    page = begin(client, name="Work laptop")
    body = page.get_data(as_text=True)
    assert "Work laptop" in body and 'src="/static/passkeys.js"' in body
    options = options_on(body)
    assert options["rp"]["id"] == "othermail.test" and options["user"]["name"] == "ann@example.org"
    device = Authenticator(ORIGIN)
    done = send(client, "/account/passkeys", {"credential": device.create(options)})
    assert done.get_json() == {"redirect": "/account/passkeys/recovery-codes"}  # the first second factor
    codes = client.get("/account/passkeys/recovery-codes").get_data(as_text=True)
    assert "Passkey “Work laptop” added: two-factor sign-in is on. Other sessions were signed out." in codes
    account = client.get("/account/").get_data(as_text=True)
    assert "10 unused recovery code(s) left." in account  # two-factor sign-in is on (web/two_factor.py)
    row = re.search(r'<tr data-id="\d+">\s*<td[^>]*>Work laptop</td>.*?</tr>', passkeys_section(client), re.S)
    assert row and "never" in row.group(0)
    assert signed_in(client) and not signed_in(other)
    assert notices(outbox, "Passkey added") == 1


def test_the_first_passkey_of_an_account_without_an_app_shows_recovery_codes_once(
    app: Flask, client: FlaskClient
) -> None:
    """As turning the app on does: the first second factor of any kind comes with recovery codes."""
    from tests.web.test_two_factor import codes_on, second_step

    signup(client)
    assert add_passkey(client, Authenticator(ORIGIN)) == {"redirect": "/account/passkeys/recovery-codes"}
    page = client.get("/account/passkeys/recovery-codes")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    codes = codes_on(page.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    again = client.get("/account/passkeys/recovery-codes")  # shown once: no new set, no codes again
    assert again.status_code == 302 and again.headers["Location"] == "/account/"
    assert "10 unused recovery code(s) left." in client.get("/account/").get_data(as_text=True)
    # a second passkey is not the first factor: no new codes, back to the account page
    assert add_passkey(client, Authenticator(ORIGIN), "Phone") == {"redirect": "/account/"}
    assert client.get("/account/passkeys/recovery-codes").status_code == 302
    # the codes work: a password sign-in finishes with one of them
    post(client, "/signout", {}, page="/account/")
    post(client, "/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert second_step(client, codes[0], "recovery").status_code == 302
    assert signed_in(client)


def test_the_recovery_codes_page_makes_nothing_without_a_passkey_just_added(app: Flask, client: FlaskClient) -> None:
    signup(client)
    response = client.get("/account/passkeys/recovery-codes")
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert "recovery code(s) left" not in client.get("/account/").get_data(as_text=True)


def test_a_registration_answer_is_taken_once(client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    answer = device.create(options_on(begin(client).get_data(as_text=True)))
    assert send(client, "/account/passkeys", {"credential": answer}).status_code == 200
    again = send(client, "/account/passkeys", {"credential": answer})
    assert again.status_code == 400 and "expired or was used" in again.get_json()["error"]


def test_a_registration_from_another_origin_or_garbage_is_refused(client: FlaskClient) -> None:
    signup(client)
    evil = Authenticator("https://evil.example").create(options_on(begin(client).get_data(as_text=True)))
    refused = send(client, "/account/passkeys", {"credential": evil})
    assert refused.status_code == 400
    assert refused.get_json() == {"error": "The passkey could not be checked. Try again."}
    begin(client)
    garbage = send(client, "/account/passkeys", {"credential": {"id": 3}})
    assert garbage.status_code == 400
    assert "No passkeys yet." in passkeys_section(client)


def test_passkey_posts_need_the_csrf_token(client: FlaskClient) -> None:
    signup(client)
    page = begin(client)
    answer = Authenticator(ORIGIN).create(options_on(page.get_data(as_text=True)))
    assert client.post("/account/passkeys", json={"credential": answer}).status_code == 400
    assert send(client, "/account/passkeys", {"credential": answer}, token="forged").status_code == 400
    assert client.post("/signin/passkey/options", json={}).status_code == 400
    assert client.post("/signin/passkey", json={}).status_code == 400
    assert client.post("/account/passkeys/new", data={"password": PASSWORD}).status_code == 400


def test_signing_in_with_a_passkey_and_no_password(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device, "Phone")
    fresh = app.test_client()
    page = fresh.get("/signin").get_data(as_text=True)
    assert "Sign in with a passkey" in page and 'data-options-url="/signin/passkey/options"' in page
    before = notices(outbox, "New sign-in")
    done = passkey_signin(fresh, device, next_path="/account/")
    assert done.status_code == 200 and done.get_json() == {"redirect": "/account/"}
    assert signed_in(fresh)
    account = fresh.get("/account/").get_data(as_text=True)
    row = r"<td[^>]*>Phone</td>\s*<td[^>]*>[^<]+</td>\s*<td[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>"
    assert re.search(row, account)
    assert notices(outbox, "New sign-in") == before + 1  # a browser the account had not seen
    outside = passkey_signin(app.test_client(), device, next_path="//evil.example/")
    assert outside.get_json() == {"redirect": "/"}


def test_a_passkey_answer_replayed_with_an_old_cookie_is_refused(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    fresh = app.test_client()
    token = csrf(fresh, "/signin")
    options = send(fresh, "/signin/passkey/options", {}, token=token).get_json()
    cookie = fresh.get_cookie("session", domain="othermail.test")
    assert cookie is not None
    kept = cookie.value  # the session cookie holding the challenge, as an attacker could copy it
    answer = device.get(options)
    assert send(fresh, "/signin/passkey", {"credential": answer}, token=token).status_code == 200
    replay = app.test_client()
    replay.set_cookie("session", kept, domain="othermail.test")
    again = send(replay, "/signin/passkey", {"credential": answer}, token=token)
    assert again.status_code == 400 and "expired or was used" in again.get_json()["error"]
    assert not signed_in(replay)


def test_a_passkey_of_a_counter_gone_back_or_without_user_verification_is_refused(
    app: Flask, client: FlaskClient
) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    assert passkey_signin(app.test_client(), device).status_code == 200
    cloned = passkey_signin(app.test_client(), device, sign_count=1)
    assert cloned.status_code == 403 and cloned.get_json() == {"error": "That passkey was not accepted."}
    device.user_verified = False
    fresh = app.test_client()
    assert passkey_signin(fresh, device).status_code == 403
    assert not signed_in(fresh)


def test_passkey_sign_in_keeps_the_sign_in_rate_limits(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin-ip": (4, 900)}
    fresh = app.test_client()  # the password sign-in of signup() was one hit from this IP
    assert passkey_signin(fresh, device).status_code == 200  # options and answer: two more
    token = csrf(fresh, "/signin")
    assert send(fresh, "/signin/passkey/options", {}, token=token).status_code == 200
    limited = send(fresh, "/signin/passkey/options", {}, token=token)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many attempts" in limited.get_json()["error"]
    assert send(fresh, "/signin/passkey", {"credential": {}}, token=token).status_code == 429


def test_removing_a_passkey_asks_for_the_password_and_only_the_owner_can(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device, "Old key")
    account = client.get("/account/").get_data(as_text=True)
    match = re.search(r'href="(/account/passkeys/(\d+)/delete)"', account)
    assert match
    path = match.group(1)
    bob = app.test_client()
    signup(bob, "bob@example.org")
    assert bob.get(path).status_code == 404
    assert post(bob, path, {"password": PASSWORD}, page="/account/").status_code == 404
    confirm = client.get(path).get_data(as_text=True)
    assert "Remove the passkey “Old key”" in confirm and "your last passkey" in confirm
    wrong = post(client, path, {"password": "nope"})
    assert wrong.status_code == 403
    assert passkey_signin(app.test_client(), device).status_code == 200  # still there
    done = post(client, path, {"password": PASSWORD})
    assert done.status_code == 302
    assert "Passkey “Old key” removed." in client.get("/account/").get_data(as_text=True)
    assert notices(outbox, "Passkey removed") == 1
    gone = passkey_signin(app.test_client(), device)
    assert gone.status_code == 403


def test_password_checks_for_passkeys_are_rate_limited_per_account(app: Flask, client: FlaskClient) -> None:
    signup(client)
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin": (2, 900)}
    assert begin(client, password="wrong").status_code == 403
    assert begin(client, password="wrong").status_code == 403
    limited = begin(client)
    assert limited.status_code == 429 and "data-options" not in limited.get_data(as_text=True)


def test_passkeys_are_offered_only_at_a_domain_name(app: Flask, client: FlaskClient) -> None:
    signup(client)
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], public_url="http://127.0.0.1:8000")
    account = client.get("/account/").get_data(as_text=True)
    assert "Passkeys are not available on this server yet" in account and "public https address" in account
    assert "OTHERMAIL_PUBLIC_URL" not in account  # the operator's setting is in the docs, not on a user's page
    assert "Add a passkey" not in client.get("/account/").get_data(as_text=True)
    refused = begin(client)
    assert refused.status_code == 400 and "data-options" not in refused.get_data(as_text=True)
    fresh = app.test_client()
    assert "Sign in with a passkey" not in fresh.get("/signin").get_data(as_text=True)
    token = csrf(fresh, "/signin")
    assert send(fresh, "/signin/passkey/options", {}, token=token).status_code == 400


@pytest.mark.parametrize("body", [{}, {"credential": "x"}, {"credential": {"id": "AAAA", "rawId": "AAAA"}}])
def test_a_passkey_sign_in_without_options_or_with_garbage_is_refused(client: FlaskClient, body: dict) -> None:
    token = csrf(client, "/signin")
    assert send(client, "/signin/passkey", body, token=token).status_code == 400  # no ceremony in the session
    send(client, "/signin/passkey/options", {}, token=token)
    refused = send(client, "/signin/passkey", body, token=token)
    assert refused.status_code == 403 and not signed_in(client)


def test_deleting_the_account_erases_its_passkeys(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device, "Phone")
    deleted = post(client, "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}, page="/account/")
    assert deleted.status_code == 302
    with app.app_context():
        from sqlalchemy import func, select

        from models import WebAuthnCredential
        from web.db import session

        assert session().scalar(select(func.count()).select_from(WebAuthnCredential)) == 0
    assert passkey_signin(app.test_client(), device).status_code == 403


def test_the_export_lists_passkeys_without_their_keys(client: FlaskClient) -> None:
    signup(client)
    add_passkey(client, Authenticator(ORIGIN), "Phone")
    exported = client.get("/account/export").get_json()
    [passkey] = exported["passkeys"]
    assert passkey["name"] == "Phone" and passkey["last_used_at"] is None and passkey["created_at"]
    assert set(passkey) == {"id", "name", "created_at", "last_used_at", "transports", "backed_up"}
