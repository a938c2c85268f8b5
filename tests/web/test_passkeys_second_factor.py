"""A passkey as the second sign-in step (/signin/verify, web/two_factor.py): after the password,
only one of the account's own passkeys finishes the sign-in."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from forwarder.adapters.senders import MemorySender
from tests.support.authenticator import Authenticator
from tests.web.conftest import PASSWORD, csrf, post, signup
from tests.web.test_passkeys import ORIGIN, add_passkey, send, signed_in


def password_step(client: FlaskClient, email: str = "ann@example.org") -> None:
    response = post(client, "/signin", {"email": email, "password": PASSWORD, "next": "/account/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/signin/verify")
    assert not signed_in(client)


def second_step(client: FlaskClient, device: Authenticator, **kw: object):
    token = csrf(client, "/signin/verify")
    options = send(client, "/signin/verify/passkey/options", {}, token=token)
    assert options.status_code == 200, options.get_data(as_text=True)
    return send(client, "/signin/verify/passkey", {"credential": device.get(options.get_json(), **kw)}, token=token)


def test_after_the_password_a_passkey_finishes_the_sign_in(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    fresh = app.test_client()
    password_step(fresh)
    page = fresh.get("/signin/verify").get_data(as_text=True)
    assert "Use a passkey" in page and 'data-options-url="/signin/verify/passkey/options"' in page
    device.user_verified = False  # presence is enough after the password
    done = second_step(fresh, device)
    assert done.status_code == 200 and done.get_json() == {"redirect": "/account/"}
    assert signed_in(fresh)


def test_the_second_step_takes_only_the_accounts_own_passkey(app: Flask, client: FlaskClient) -> None:
    signup(client)
    add_passkey(client, Authenticator(ORIGIN))
    bob = app.test_client()
    signup(bob, "bob@example.org")
    bobs = Authenticator(ORIGIN)
    add_passkey(bob, bobs)
    fresh = app.test_client()
    password_step(fresh)
    token = csrf(fresh, "/signin/verify")
    options = send(fresh, "/signin/verify/passkey/options", {}, token=token).get_json()
    answer = bobs.get(options, credential=bobs.credentials[0])  # bob's key answering ann's challenge
    refused = send(fresh, "/signin/verify/passkey", {"credential": answer}, token=token)
    assert refused.status_code == 403 and not signed_in(fresh)
    assert send(fresh, "/signin/verify/passkey", {"credential": answer}, token=token).status_code == 400  # used


def test_the_passkey_second_step_needs_a_right_password_first(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    fresh = app.test_client()
    token = csrf(fresh, "/signin")
    assert send(fresh, "/signin/verify/passkey/options", {}, token=token).status_code == 400
    # a password-less ceremony's answer is no second step either
    options = send(fresh, "/signin/passkey/options", {}, token=token).get_json()
    refused = send(fresh, "/signin/verify/passkey", {"credential": device.get(options)}, token=token)
    assert refused.status_code == 400 and not signed_in(fresh)


def test_passkey_second_steps_are_counted_like_codes(app: Flask, client: FlaskClient) -> None:
    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    fresh = app.test_client()
    password_step(fresh)
    app.config["SIGNIN_BACKOFF"] = (2, 600, 600)  # two free failures, then ten minutes
    token = csrf(fresh, "/signin/verify")
    for expected in (403, 403):
        send(fresh, "/signin/verify/passkey/options", {}, token=token)
        assert send(fresh, "/signin/verify/passkey", {"credential": {}}, token=token).status_code == expected
    send(fresh, "/signin/verify/passkey/options", {}, token=token)
    limited = send(fresh, "/signin/verify/passkey", {"credential": {}}, token=token)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert not signed_in(fresh)


def test_a_passkey_is_the_second_factor_of_a_password_reset_by_mail(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    """With the reset link alone, nothing changes; the account's passkey then opens the form."""
    from tests.web.test_two_factor import reset_link_opened

    signup(client)
    device = Authenticator(ORIGIN)
    add_passkey(client, device)
    client.get("/account/passkeys/recovery-codes")
    fresh = reset_link_opened(app, outbox)
    assert fresh.get("/new-password").headers["Location"] == "/signin/verify"
    assert "Use a passkey" in fresh.get("/signin/verify").get_data(as_text=True)
    done = second_step(fresh, device)
    assert done.status_code == 200 and done.get_json() == {"redirect": "/new-password"}
    assert not signed_in(fresh) and signed_in(client)
    new = "a brand new password"
    changed = post(fresh, "/new-password", {"password": new, "confirm": new})
    assert changed.status_code == 302 and signed_in(fresh) and not signed_in(client)
