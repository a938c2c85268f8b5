"""Sign-up and sign-in tell nobody which addresses have accounts (issue 12.4), and sign-in resists
password spraying (issue 12.7): a growing wait per account from any IP, a limit per client over all
accounts, IPv6 clients counted per /64."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from forwarder.accounts import passwords
from forwarder.adapters.senders import MemorySender
from models import SigninFailure, User
from tests.web.conftest import PASSWORD, links_in, post, signup
from web import ratelimit


def form_signup(client: FlaskClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return post(client, "/signup", {"email": email, "password": password, "confirm": password})


def from_ip(app: Flask, ip: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def attempt(app: Flask, email: str, password: str, ip: str) -> int:
    return post(from_ip(app, ip), "/signin", {"email": email, "password": password}).status_code


# --- issue 12.4 ------------------------------------------------------------------------------


def test_signing_up_with_a_taken_address_answers_as_a_new_one_and_mails_the_owner(
    app: Flask, outbox: MemorySender
) -> None:
    signup(app.test_client(), "ann@example.org")
    outbox.sent.clear()
    new, taken = app.test_client(), app.test_client()
    answers = [form_signup(new, "bob@example.org"), form_signup(taken, "ann@example.org", "another password!")]
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    pages = [
        re.sub(r'name="csrf_token" value="[^"]+"', "", c.get(a.headers["Location"]).get_data(as_text=True))
        for c, a in zip((new, taken), answers, strict=True)
    ]
    assert pages[0].replace("bob@example.org", "X") == pages[1].replace("ann@example.org", "X")
    assert "exists" not in pages[1]
    assert [m.recipient for m in outbox.sent] == ["bob@example.org", "ann@example.org"]
    note = outbox.sent[1].raw.decode()
    assert "Subject: Someone tried to sign up" in note and any(
        "/reset" in link for link in links_in(outbox.sent[1].raw)
    )
    # the taken account is untouched: its password is still the old one
    assert attempt(app, "ann@example.org", PASSWORD, "192.0.2.1") == 302
    assert attempt(app, "ann@example.org", "another password!", "192.0.2.2") == 401


def test_signing_in_as_nobody_verifies_a_hash_as_signing_in_with_a_wrong_password_does(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    signup(app.test_client(), "ann@example.org")
    calls: list[str] = []
    real = passwords._hasher

    class Spy:
        def verify(self, hash: str, password: str) -> bool:
            calls.append(hash)
            return real.verify(hash, password)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_hasher", Spy())
    assert attempt(app, "nobody@example.org", "some password", "192.0.2.1") == 401
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")
    assert attempt(app, "ann@example.org", "some password", "192.0.2.2") == 401
    assert len(calls) == 2
    with app.app_context():
        from web.db import session

        session().execute(update(User).values(password_hash=None))  # an account made without a password
        session().commit()
    assert attempt(app, "ann@example.org", "some password", "192.0.2.3") == 401
    assert len(calls) == 3


# --- issue 12.7 ------------------------------------------------------------------------------


def test_the_backoff_grows_exponentially_up_to_its_cap() -> None:
    rule = ratelimit.Backoff(free=3, base=30, most=600)
    assert [rule.wait(n) for n in range(9)] == [0, 0, 0, 30, 60, 120, 240, 480, 600]


def failures(app: Flask) -> list[SigninFailure]:
    with app.app_context():
        from web.db import session

        return list(session().scalars(select(SigninFailure)))


def backdate(app: Flask, seconds: int) -> None:
    with app.app_context():
        from web.db import session

        for row in session().scalars(select(SigninFailure)):
            row.last_failure_at = row.last_failure_at - timedelta(seconds=seconds)
        session().commit()


@pytest.mark.parametrize("email", ["ann@example.org", "nobody@example.org"])
def test_failures_from_many_ips_make_one_account_wait_longer_each_time(app: Flask, email: str) -> None:
    """The same for an address with no account: the wait must not tell them apart."""
    signup(app.test_client(), "ann@example.org")
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    codes = [attempt(app, email, "wrong password!", f"198.51.100.{n}") for n in range(1, 4)]
    assert codes == [401, 401, 401]
    blocked = post(from_ip(app, "203.0.113.9"), "/signin", {"email": email, "password": PASSWORD})
    assert blocked.status_code == 429 and "1 minute" in blocked.get_data(as_text=True)
    backdate(app, 61)
    assert attempt(app, email, "wrong password!", "203.0.113.10") == 401
    again = post(from_ip(app, "203.0.113.11"), "/signin", {"email": email, "password": PASSWORD})
    assert again.status_code == 429 and "2 minute" in again.get_data(as_text=True)  # it doubled
    assert attempt(app, "other@example.org", "wrong password!", "203.0.113.12") == 401  # other accounts go on
    backdate(app, 121)
    if email == "ann@example.org":
        assert attempt(app, email, PASSWORD, "203.0.113.13") == 302
        assert [row.failures for row in failures(app)] == [1]  # only other@'s is left: success resets
    else:
        assert attempt(app, email, "wrong password!", "203.0.113.13") == 401


def test_one_client_trying_many_accounts_is_limited(app: Flask) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin-ip": (4, 900)}
    codes = [attempt(app, f"user{n}@example.org", "wrong password!", "198.51.100.7") for n in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    assert attempt(app, "user9@example.org", "wrong password!", "198.51.100.8") == 401


def test_ipv6_clients_are_counted_by_their_64(app: Flask) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "signin-ip": (3, 900)}
    codes = [attempt(app, f"user{n}@example.org", "wrong password!", f"2001:db8:5:6::{n + 1:x}") for n in range(4)]
    assert codes == [401, 401, 401, 429]
    assert attempt(app, "user9@example.org", "wrong password!", "2001:db8:5:7::1") == 401


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_client_key(ip: str | None, key: str) -> None:
    assert ratelimit.client_key(ip) == key


# --- review finding F3: backoff, not lockout: a browser that signed in before is not shut out ---


def test_a_browser_that_signed_in_before_is_not_locked_out_by_anyone_elses_failures(app: Flask) -> None:
    """Failures from anywhere once closed the account to its owner too (claim_signin ran before the
    password check), so one wrong guess an hour kept it closed. A browser holding a device cookie
    from an earlier sign-in to that account is counted on its own; others still wait."""
    owner = from_ip(app, "192.0.2.50")
    signup(owner, "ann@example.org")  # signs in: the browser now holds ann's device cookie
    post(owner, "/signout", {}, page="/account/")
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    codes = [attempt(app, "ann@example.org", "wrong password!", f"198.51.100.{n}") for n in range(1, 6)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    assert attempt(app, "ann@example.org", PASSWORD, "203.0.113.9") == 429  # an unknown browser still waits
    assert post(owner, "/signin", {"email": "ann@example.org", "password": PASSWORD}).status_code == 302


def test_a_device_cookie_has_its_own_backoff_and_names_one_account(app: Flask) -> None:
    owner = from_ip(app, "192.0.2.50")
    signup(owner, "ann@example.org")
    signup(app.test_client(), "bob@example.org")
    post(owner, "/signout", {}, page="/account/")
    app.config["SIGNIN_BACKOFF"] = (3, 60, 3600)
    codes = [
        post(owner, "/signin", {"email": "ann@example.org", "password": "wrong password!"}).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]  # guessing from a trusted browser waits too
    assert attempt(app, "ann@example.org", PASSWORD, "203.0.113.9") == 302  # the account-wide count is untouched
    # ann's device cookie is worth nothing for bob: bob's failures from this browser count account-wide
    for _ in range(3):
        post(owner, "/signin", {"email": "bob@example.org", "password": "wrong password!"})
    assert attempt(app, "bob@example.org", PASSWORD, "203.0.113.10") == 429
