"""Findings of the issue-16 security review: each test failed on the code before its fix."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from models import RecoveryCode, User, utcnow
from tests.web.conftest import PASSWORD, links_in, post, signup
from tests.web.test_security_notices import notices
from tests.web.test_two_factor import (
    EMAIL,
    code_at,
    db,
    enable,
    frozen_clock,  # noqa: F401 - autouse fixture: the TOTP clock these tests use
    password_step,
    second_step,
    step_now,
)
from web import devices


def _verification_path(outbox: MemorySender) -> str:
    link = next(link for m in outbox.sent for link in links_in(m.raw) if "/email/verify/" in link)
    return "/" + link.split("://", 1)[1].partition("/")[2]


def test_the_address_link_gives_no_fresh_device_cookie_once_the_address_is_confirmed(
    app: Flask, outbox: MemorySender
) -> None:
    """The sign-up link (good for a week) gave every browser that pressed its button a new device
    cookie, and a device cookie gets its own backoff at the second step: whoever can read the
    account's mail could reset the password and then guess TOTP codes from any number of browsers,
    five free guesses each, instead of waiting on the account-wide backoff."""
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    owner = app.test_client()
    signup(owner, EMAIL, verify=False)
    path = _verification_path(outbox)
    assert post(owner, path, {}).status_code == 200  # the owner confirms: this browser is a device
    assert owner.get_cookie(devices.COOKIE, domain="othermail.test") is not None
    secret, _ = enable(owner)
    post(owner, "/signout", {}, page="/account/")

    statuses = []
    for n in range(5):
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        assert post(other, path, {}, page="/signin").status_code == 200  # the link still says "confirmed"
        assert other.get_cookie(devices.COOKIE, domain="othermail.test") is None
        assert password_step(other).status_code == 302
        statuses.append(second_step(other, "000000").status_code)
    assert statuses == [401, 401, 401, 429, 429]
    # the owner's own browser still has its own backoff
    password_step(owner)
    assert second_step(owner, code_at(secret, step_now() + 1)).status_code == 302


def test_a_password_reset_with_two_factor_sends_the_reset_notice(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    """A reset by mail for an account with two-factor sign-in changed the password without the
    'Password reset' notice that every other password change sends."""
    signup(client, EMAIL)
    secret, _ = enable(client)
    post(client, "/signout", {}, page="/account/")
    outbox.sent.clear()
    browser = app.test_client()
    post(browser, "/reset", {"email": EMAIL})
    link = next(link for m in outbox.sent for link in links_in(m.raw) if "/reset/" in link)
    browser.get("/" + link.split("://", 1)[1].partition("/")[2])
    browser.get("/new-password")  # the second step comes first now (the reset needs it)
    assert second_step(browser, code_at(secret, step_now() + 1)).headers["Location"] == "/new-password"
    new = "a brand new password"
    done = post(browser, "/new-password", {"password": new, "confirm": new})
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert any(mail.startswith("othermail security notice: Password reset\n") for mail in notices(outbox, EMAIL))


def test_removing_the_last_passkey_without_an_app_removes_the_recovery_codes(app: Flask, client: FlaskClient) -> None:
    """Turning the app off with no passkey left drops the recovery codes; removing the last passkey
    with no app left kept them, so they came back into force with the next passkey or app, codes
    the owner had reason to think were dead."""
    import re

    from tests.support.authenticator import Authenticator
    from tests.web.test_passkeys import ORIGIN, add_passkey

    signup(client, EMAIL)
    add_passkey(client, Authenticator(ORIGIN))
    match = re.search(r'href="/account/passkeys/(\d+)/delete"', client.get("/account/").get_data(as_text=True))
    assert match
    passkey_id = match.group(1)
    post(client, "/account/two-factor/recovery-codes", {"password": PASSWORD}, page="/account/")
    with db(app) as session:
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        assert session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    removed = post(client, f"/account/passkeys/{passkey_id}/delete", {"password": PASSWORD}, page="/account/")
    assert removed.status_code == 302
    with db(app) as session:
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        assert session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []


def test_of_two_requests_that_confirm_the_address_at_once_only_one_gets_a_device_cookie(
    app: Flask, outbox: MemorySender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a POST is the one that confirms is decided by the database (one compare-and-set),
    not by what the request read first: pressed in many browsers at once before the owner did,
    the link must not hand out a device cookie to each."""
    from web.db import session as db_session
    from web.services import account_email

    owner = app.test_client()
    signup(owner, EMAIL, verify=False)
    path = _verification_path(outbox)
    read_first = account_email.linked

    def linked_then_another_request_confirms(*args: object, **kwargs: object) -> User:
        user = read_first(*args, **kwargs)  # type: ignore[arg-type]
        with app.app_context():  # another request, on its own database session, confirms meanwhile
            other = db_session()
            other.get(User, user.id).email_verified_at = utcnow()  # type: ignore[union-attr]
            other.commit()
        return user

    monkeypatch.setattr(account_email, "linked", linked_then_another_request_confirms)
    browser = app.test_client()
    assert post(browser, path, {}, page="/signin").status_code == 200
    assert browser.get_cookie(devices.COOKIE, domain="othermail.test") is None


def test_a_code_in_other_scripts_digits_is_a_wrong_code_not_a_server_error(app: Flask, client: FlaskClient) -> None:
    """str.isdigit() takes Arabic-Indic or superscript digits, and hmac.compare_digest then raised
    TypeError on them: a 500 at the second step and on the setup page instead of 'not right'."""
    signup(client, EMAIL)
    secret, _ = enable(client)
    post(client, "/signout", {}, page="/account/")
    assert password_step(client).status_code == 302
    assert second_step(client, "١٢٣٤٥٦").status_code == 401
    assert second_step(client, "²²²²²²").status_code == 401
    assert second_step(client, code_at(secret, step_now())).status_code == 302


HUGE_ID = "99999999999999999999"


def test_a_bulk_action_on_an_id_out_of_range_is_a_404_not_a_500(client: FlaskClient) -> None:
    """The bulk form's ids reached the query as they came: OverflowError on SQLite (a 500), as
    ids in routes did before web/converters.py."""
    signup(client, EMAIL)
    for action in ("disable", "delete"):
        answer = post(client, "/aliases/bulk", {"action": action, "alias": HUGE_ID}, page="/aliases/")
        assert answer.status_code == 404


def test_a_destination_id_out_of_range_on_the_alias_form_is_refused_not_a_500(client: FlaskClient) -> None:
    signup(client, EMAIL)
    form = {"custom": "1", "destination": HUGE_ID, "local_part": "abc"}
    answer = post(client, "/aliases/new", form, page="/aliases/new")
    assert answer.status_code == 400
    assert "Choose your own destinations." in answer.get_data(as_text=True)
