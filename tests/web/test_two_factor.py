"""Two-factor sign-in with TOTP and recovery codes (issue 16): setting it up asks for the password
and ends other sessions, the sign-in's second step takes a code once only, its guesses are limited
like password guesses, and its pending state expires."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from forwarder.accounts import two_factor as rules
from forwarder.adapters.senders import MemorySender
from models import RecoveryCode, User, UserSession, WebAuthnCredential
from tests.web.conftest import PASSWORD, post, signup
from web import two_factor

EMAIL = "ann@example.org"


@contextmanager
def db(app: Flask) -> Iterator[Any]:
    with app.app_context():
        from web.db import session

        yield session()


def user_row(app: Flask) -> User:
    with db(app) as session:
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        session.expunge(user)
        return user


def setup_page(client: FlaskClient, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return post(client, "/account/two-factor/setup", {"password": password}, page="/account/")


def secret_on(page: str) -> str:
    """The key the page shows, in groups of four (the spaces taken out, as the apps do)."""
    match = re.search(r'id="totp-secret"[^>]*>((?:[A-Z2-7]{4} ){7}[A-Z2-7]{4})<', page)
    assert match, page
    return match.group(1).replace(" ", "")


def codes_on(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z2-7-]+)</code></li>", page)


def enable(client: FlaskClient) -> tuple[str, list[str]]:
    """Set up TOTP from the account page; the secret and the recovery codes shown."""
    secret = secret_on(setup_page(client).get_data(as_text=True))
    done = post(client, "/account/two-factor/enable", {"code": code_at(secret, step_now() - 1)}, page="/account/")
    assert done.status_code == 200, done.get_data(as_text=True)
    return secret, codes_on(done.get_data(as_text=True))


#: The time the TOTP checks see in these tests (mid-step, so no code turns over while a test runs).
FROZEN = 1_800_000_015.0


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "_now", lambda: FROZEN)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def step_now() -> int:
    return int(FROZEN // 30)


def password_step(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return post(client, "/signin", {"email": email, "password": password}, page="/signin")


def second_step(client: FlaskClient, code: str, method: str = "totp"):  # type: ignore[no-untyped-def]
    return post(client, "/signin/verify", {"code": code, "method": method}, page="/signin")


def signed_in(client: FlaskClient) -> bool:
    return client.get("/account/").status_code == 200


@pytest.fixture
def enabled(app: Flask) -> tuple[str, list[str]]:
    """ann has TOTP on; her browser signed out."""
    client = app.test_client()
    signup(client, EMAIL)
    secret, codes = enable(client)
    post(client, "/signout", {}, page="/account/")
    return secret, codes


# --- setting it up -----------------------------------------------------------------------------


def test_setting_up_asks_for_the_password_and_shows_a_qr_code_and_the_uri(app: Flask, client: FlaskClient) -> None:
    signup(client, EMAIL)
    account = client.get("/account/").get_data(as_text=True)
    assert "Set up two-factor sign-in" in account
    wrong = setup_page(client, "not my password")
    assert wrong.status_code == 403 and "not your current password" in wrong.get_data(as_text=True)
    assert user_row(app).totp_secret is None

    page = setup_page(client)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    secret = secret_on(html)
    assert len(secret) == 32
    assert f"otpauth://totp/othermail:ann%40example.org?secret={secret}&amp;issuer=othermail" in html
    svg = re.search(r"<svg [^>]*>.*?</svg>", html, re.S)
    assert svg and 'role="img"' in svg.group(0) and "<path" in svg.group(0)
    assert "style=" not in svg.group(0) and "data:" not in html  # the strict CSP holds as it is
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    row = user_row(app)
    assert row.totp_enabled_at is None  # not in force until confirmed
    assert row.totp_secret is not None and secret not in row.totp_secret  # sealed at rest
    with app.app_context():
        assert app.extensions["othermail.runtime"].sealer.open(row.totp_secret) == secret


def test_a_wrong_code_does_not_turn_it_on_and_a_right_one_shows_ten_codes_once(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client, EMAIL)
    secret = secret_on(setup_page(client).get_data(as_text=True))
    wrong = post(client, "/account/two-factor/enable", {"code": "000000"}, page="/account/")
    assert wrong.status_code == 400 and secret_on(wrong.get_data(as_text=True)) == secret
    assert user_row(app).totp_enabled_at is None

    done = post(client, "/account/two-factor/enable", {"code": code_at(secret, step_now())}, page="/account/")
    codes = codes_on(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)
    assert user_row(app).totp_enabled_at is not None
    with db(app) as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
    assert sorted(stored) == sorted(rules.hash_code(code) for code in codes)  # hashed, never in clear
    account = client.get("/account/").get_data(as_text=True)
    assert not any(code in account for code in codes)  # shown once only
    assert "10 unused recovery code(s) left" in account
    assert any("Two-factor sign-in turned on" in m.raw.decode() for m in outbox.sent)  # the security notice


def test_turning_it_on_ends_every_other_session(app: Flask) -> None:
    here, elsewhere = app.test_client(), app.test_client()
    signup(here, EMAIL)
    password_step(elsewhere)
    assert signed_in(elsewhere)
    enable(here)
    assert signed_in(here)
    assert not signed_in(elsewhere)
    with db(app) as session:
        assert session.scalar(select(UserSession.id).where(UserSession.user_id == user_row(app).id)) is not None
        assert len(session.scalars(select(UserSession)).all()) == 1


def test_the_confirming_step_needs_the_session_that_gave_the_password(app: Flask) -> None:
    """Another session of the same account (a left-open browser) cannot confirm a secret it never
    saw, nor get it shown by a wrong code: the setup ticket is bound to the session."""
    here, elsewhere = app.test_client(), app.test_client()
    signup(here, EMAIL)
    password_step(elsewhere)
    secret = secret_on(setup_page(here).get_data(as_text=True))
    other = post(elsewhere, "/account/two-factor/enable", {"code": "123456"}, page="/account/")
    assert other.status_code == 409 and secret not in other.get_data(as_text=True)
    refused = post(elsewhere, "/account/two-factor/enable", {"code": code_at(secret, step_now())}, page="/account/")
    assert refused.status_code == 409
    assert user_row(app).totp_enabled_at is None


def test_disabling_and_new_recovery_codes_ask_for_the_password(app: Flask, client: FlaskClient) -> None:
    signup(client, EMAIL)
    _, codes = enable(client)
    wrong = post(client, "/account/two-factor/recovery-codes", {"password": "nope"}, page="/account/")
    assert wrong.status_code == 403
    fresh = post(client, "/account/two-factor/recovery-codes", {"password": PASSWORD}, page="/account/")
    new_codes = codes_on(fresh.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    with db(app) as session:
        assert sorted(session.scalars(select(RecoveryCode.code_hash))) == sorted(map(rules.hash_code, new_codes))

    assert post(client, "/account/two-factor/disable", {"password": "nope"}, page="/account/").status_code == 403
    assert user_row(app).totp_enabled_at is not None
    off = post(client, "/account/two-factor/disable", {"password": PASSWORD}, page="/account/")
    assert off.status_code == 302
    row = user_row(app)
    assert (row.totp_secret, row.totp_enabled_at, row.totp_last_step) == (None, None, None)
    with db(app) as session:
        assert session.scalars(select(RecoveryCode)).all() == []
    post(client, "/signout", {}, page="/account/")
    assert password_step(client).headers["Location"] == "/"  # one step again


def test_the_setup_pages_need_a_session(client: FlaskClient) -> None:
    paths = ("setup", "enable", "disable", "recovery-codes")
    for path in (f"/account/two-factor/{name}" for name in paths):
        response = post(client, path, {"password": PASSWORD}, page="/signin")
        assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_turning_the_app_off_keeps_the_recovery_codes_while_a_passkey_asks_for_a_second_step(
    app: Flask, client: FlaskClient
) -> None:
    signup(client, EMAIL)
    enable(client)
    with db(app) as session:
        session.add(WebAuthnCredential(user_id=user_row(app).id, credential_id="cred", public_key=b"k", name="key"))
        session.commit()
    post(client, "/account/two-factor/disable", {"password": PASSWORD}, page="/account/")
    account = client.get("/account/").get_data(as_text=True)
    assert "asks for a passkey" in account and "10 unused recovery code(s) left" in account
    post(client, "/signout", {}, page="/account/")
    assert password_step(client).headers["Location"] == "/signin/verify"  # the passkey still asks
    page = client.get("/signin/verify").get_data(as_text=True)
    assert "Code from your authenticator app" not in page and "Use a recovery code" in page


# --- the second step ---------------------------------------------------------------------------


def test_a_right_password_alone_does_not_sign_in(app: Flask, enabled: tuple[str, list[str]]) -> None:
    client = app.test_client()
    first = password_step(client)
    assert first.status_code == 302 and first.headers["Location"] == "/signin/verify"
    assert not signed_in(client)
    page = client.get("/signin/verify").get_data(as_text=True)
    assert "Code from your authenticator app" in page and "Use a recovery code" in page
    with db(app) as session:
        assert session.scalars(select(UserSession)).all() == []


def test_a_totp_code_completes_sign_in_and_is_never_accepted_twice(app: Flask, enabled: tuple[str, list[str]]) -> None:
    secret, _ = enabled
    code = code_at(secret, step_now() + 1)  # the next step's code (a clock a little ahead): in the window
    client = app.test_client()
    password_step(client, password=PASSWORD)
    done = second_step(client, code)
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert signed_in(client)

    replay = app.test_client()
    password_step(replay)
    again = second_step(replay, code)
    assert again.status_code == 401 and "not right" in again.get_data(as_text=True)
    assert second_step(replay, code_at(secret, step_now())).status_code == 401  # an earlier step: too late
    assert not signed_in(replay)


def test_a_code_outside_the_window_or_a_wrong_code_is_refused(app: Flask, enabled: tuple[str, list[str]]) -> None:
    app.config["SIGNIN_BACKOFF"] = (10, 60, 3600)
    secret, _ = enabled
    client = app.test_client()
    password_step(client)
    for code in (code_at(secret, step_now() + 3), code_at(secret, step_now() - 3), "12345", "abcdef", ""):
        assert second_step(client, code).status_code in (400, 401), code
    assert not signed_in(client)
    assert second_step(client, code_at(secret, step_now() + 1)).status_code == 302


def test_the_code_that_confirmed_the_setup_cannot_sign_in(app: Flask, client: FlaskClient) -> None:
    signup(client, EMAIL)
    secret = secret_on(setup_page(client).get_data(as_text=True))
    step = step_now()
    post(client, "/account/two-factor/enable", {"code": code_at(secret, step)}, page="/account/")
    other = app.test_client()
    password_step(other)
    assert second_step(other, code_at(secret, step)).status_code == 401


def test_a_recovery_code_works_once_only(app: Flask, enabled: tuple[str, list[str]], outbox: MemorySender) -> None:
    _, codes = enabled
    outbox.sent.clear()
    client = app.test_client()
    password_step(client)
    typed = " " + codes[3].upper().replace("-", " ") + " "  # case, dashes and spaces do not matter
    done = second_step(client, typed, "recovery")
    assert done.status_code == 302 and signed_in(client)
    assert "9 unused recovery code(s) left" in client.get("/account/").get_data(as_text=True)
    assert any("Recovery code used" in m.raw.decode() for m in outbox.sent)

    again = app.test_client()
    password_step(again)
    refused = second_step(again, codes[3], "recovery")
    assert refused.status_code == 401 and "used already" in refused.get_data(as_text=True)
    assert not signed_in(again)
    assert second_step(again, codes[4], "recovery").status_code == 302


def test_a_recovery_code_of_another_account_is_refused(app: Flask, enabled: tuple[str, list[str]]) -> None:
    bob = app.test_client()
    signup(bob, "bob@example.org")
    _, bobs = enable(bob)
    client = app.test_client()
    password_step(client)
    assert second_step(client, bobs[0], "recovery").status_code == 401


def test_the_verify_page_without_a_right_password_sends_to_sign_in(
    app: Flask, client: FlaskClient, enabled: tuple[str, list[str]]
) -> None:
    secret, _ = enabled
    assert client.get("/signin/verify").headers["Location"].endswith("/signin")
    password_step(client, password="wrong password!")
    response = second_step(client, code_at(secret, step_now()))
    assert response.status_code == 302 and response.headers["Location"].endswith("/signin")
    assert not signed_in(client)


def test_the_pending_state_expires_after_five_minutes(
    app: Flask, client: FlaskClient, enabled: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = enabled
    password_step(client)
    real = time.time
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(real()) - two_factor.PENDING_MAX_AGE - 1)
    password_step(client)  # a pending state signed "five minutes ago"
    monkeypatch.undo()
    late = second_step(client, code_at(secret, step_now() + 1))
    assert late.status_code == 302 and late.headers["Location"].endswith("/signin")
    assert not signed_in(client)
    assert "took too long" in client.get("/signin").get_data(as_text=True)


def test_a_password_change_voids_a_pending_state(app: Flask, enabled: tuple[str, list[str]]) -> None:
    secret, _ = enabled
    client = app.test_client()
    password_step(client)
    with db(app) as session:
        from web.security import hash_password

        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        user.password_hash = hash_password("another password here")
        session.commit()
    response = second_step(client, code_at(secret, step_now()))
    assert response.status_code == 302 and response.headers["Location"].endswith("/signin")
    assert not signed_in(client)


def reset_link_opened(app: Flask, outbox: MemorySender) -> FlaskClient:
    """A browser that opened the reset link mailed to ann (and knows nothing else)."""
    from tests.web.conftest import links_in

    client = app.test_client()
    outbox.sent.clear()
    post(client, "/reset", {"email": EMAIL})
    link = next(link for m in outbox.sent for link in links_in(m.raw) if "/reset/" in link)
    client.get("/" + link.split("://", 1)[1].partition("/")[2])
    return client


def test_a_password_reset_by_mail_changes_nothing_without_the_second_factor(
    app: Flask, enabled: tuple[str, list[str]], outbox: MemorySender
) -> None:
    secret, _ = enabled
    owner = app.test_client()
    password_step(owner)
    second_step(owner, code_at(secret, step_now()))
    assert signed_in(owner)
    before = user_row(app).password_hash
    client = reset_link_opened(app, outbox)
    assert client.get("/new-password").headers["Location"] == "/signin/verify"
    new = "a brand new password"
    for _ in range(3):  # the mailbox alone, again and again
        form = {"password": new, "confirm": new, "revoke_tokens": "1"}
        done = post(client, "/new-password", form, page="/signin/verify")
        assert done.status_code == 302 and done.headers["Location"] == "/signin/verify"
    assert "before you choose a new password" in client.get("/signin/verify").get_data(as_text=True)
    assert user_row(app).password_hash == before
    assert signed_in(owner) and not signed_in(client)
    assert second_step(client, "000000").status_code == 401
    assert user_row(app).password_hash == before and signed_in(owner)


def test_a_password_reset_by_mail_applies_after_the_second_factor(
    app: Flask, enabled: tuple[str, list[str]], outbox: MemorySender
) -> None:
    secret, codes = enabled
    owner = app.test_client()
    password_step(owner)
    second_step(owner, code_at(secret, step_now()))
    for method, code in (("totp", code_at(secret, step_now() + 1)), ("recovery", codes[0])):
        client = reset_link_opened(app, outbox)
        client.get("/new-password")
        passed = second_step(client, code, method)
        assert passed.status_code == 302 and passed.headers["Location"] == "/new-password"
        assert not signed_in(client)  # the second step of a reset signs nobody in
        form = client.get("/new-password").get_data(as_text=True)
        assert "Choose a new password" in form and "Signed in" not in form
        new = f"a brand new password by {method}"
        done = post(client, "/new-password", {"password": new, "confirm": new})
        assert done.status_code == 302 and done.headers["Location"] == "/"
        assert signed_in(client) and not signed_in(owner)
        with app.app_context():
            from web.security import verify_password

            assert verify_password(user_row(app), new)
        owner = client


def test_next_survives_the_second_step(app: Flask, enabled: tuple[str, list[str]]) -> None:
    secret, _ = enabled
    client = app.test_client()
    post(client, "/signin", {"email": EMAIL, "password": PASSWORD, "next": "/aliases/"}, page="/signin")
    done = second_step(client, code_at(secret, step_now() + 1))
    assert done.headers["Location"] == "/aliases/"


# --- rate limits on the second step ------------------------------------------------------------


def test_code_guesses_are_limited_per_client_and_account(app: Flask, enabled: tuple[str, list[str]]) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin": (4, 900)}
    app.config["SIGNIN_BACKOFF"] = (50, 60, 3600)  # only the window here
    secret, _ = enabled
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert password_step(client).status_code == 302  # 1 of 4
    codes = [second_step(client, "000000").status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = second_step(client, code_at(secret, step_now() + 1))  # even a right code waits
    assert blocked.status_code == 429
    assert not signed_in(client)


def test_code_guesses_are_limited_per_client_over_all_accounts(app: Flask, enabled: tuple[str, list[str]]) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin-ip": (3, 900)}
    app.config["SIGNIN_BACKOFF"] = (50, 60, 3600)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    password_step(client)  # 1 of 3
    assert [second_step(client, "000000").status_code for _ in range(3)] == [401, 401, 429]


def test_code_guesses_back_off_per_account_and_a_right_password_does_not_reset_it(
    app: Flask, enabled: tuple[str, list[str]]
) -> None:
    """Someone who knows the password cannot guess codes forever by giving it again between guesses."""
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    secret, _ = enabled
    statuses = []
    for n in range(5):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        assert password_step(client).status_code == 302
        statuses.append(second_step(client, "000000").status_code)
    assert statuses == [401, 401, 401, 429, 429]
    late = app.test_client()
    late.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    password_step(late)
    assert second_step(late, code_at(secret, step_now() + 1)).status_code == 429


def test_the_owners_browser_has_its_own_code_backoff(app: Flask, enabled: tuple[str, list[str]]) -> None:
    """A browser that signed in to the account before (a device cookie) is not shut out by others' guesses."""
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    secret, _ = enabled
    owner = app.test_client()
    password_step(owner)
    assert second_step(owner, code_at(secret, step_now())).status_code == 302  # the device cookie is set
    post(owner, "/signout", {}, page="/account/")
    for n in range(5):
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        password_step(other)
        second_step(other, "000000")
    password_step(owner)
    assert second_step(owner, code_at(secret, step_now() + 1)).status_code == 302


# --- the rules, without the web ----------------------------------------------------------------


def test_matching_step_accepts_one_step_either_side() -> None:
    secret = pyotp.random_base32()
    now = 1_000_000_000.0
    step = int(now // 30)
    assert rules.matching_step(secret, code_at(secret, step), now) == step
    assert rules.matching_step(secret, code_at(secret, step - 1), now) == step - 1
    assert rules.matching_step(
        secret, " " + code_at(secret, step + 1)[:3] + " " + code_at(secret, step + 1)[3:], now
    ) == (step + 1)
    assert rules.matching_step(secret, code_at(secret, step + 2), now) is None
    assert rules.matching_step(secret, "1234567", now) is None


def test_deleting_the_account_erases_its_authenticator_secret_and_recovery_codes(
    app: Flask, client: FlaskClient
) -> None:
    signup(client)
    enable(client)
    deleted = post(client, "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}, page="/account/")
    assert deleted.status_code == 302
    with db(app) as session:
        user = session.scalars(select(User)).one()
        assert user.deleted_at is not None
        assert (user.totp_secret, user.totp_enabled_at, user.totp_last_step) == (None, None, None)
        assert session.scalars(select(RecoveryCode)).all() == []
