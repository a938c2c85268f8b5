"""Review finding F4: one address validator for sign-up, destinations and the API, and a
per-recipient cap that counts one mailbox once however its address is spelled (issue 12.5)."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.web.conftest import PASSWORD, post, signup
from web import auth, mailer
from web.db import services, session
from web.services import destinations
from web.services.errors import ServiceError

REFUSED = [
    '"ann"@example.org',
    '"a\\\nn"@example.org',
    '"a n"@example.org',
    '"see https://x.example"@example.org',
    "ann@example.org.",
    "a n@example.org",
    "ann@@example.org",
    "ann@example..org",
    "ann@.example.org",
    "x@othermail.example.",
]


@pytest.mark.parametrize("raw", REFUSED)
def test_sign_up_and_destinations_refuse_quoted_spaced_and_dotted_addresses(app: Flask, raw: str) -> None:
    with app.test_request_context():
        assert auth.clean_email(raw) is None
        with pytest.raises(ServiceError):
            destinations.clean_address(services(), session(), raw)


@pytest.mark.parametrize("raw", ["Ann@Example.org", " ann.b+news@example.org ", "o'brien@example.org"])
def test_ordinary_addresses_still_pass(app: Flask, raw: str) -> None:
    with app.test_request_context():
        assert auth.clean_email(raw) == raw.strip().lower()
        assert destinations.clean_address(services(), session(), raw) == raw.strip().lower()


def test_signing_up_with_a_quoted_twin_of_an_address_is_refused(app: Flask) -> None:
    signup(app.test_client(), "ann@example.org")
    answer = post(
        app.test_client(), "/signup", {"email": '"ann"@example.org', "password": PASSWORD, "confirm": PASSWORD}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "spellings",
    [
        ["ann@example.org", "ann+1@example.org", "ANN+two@example.org"],
        ["a.nn@gmail.com", "ann@googlemail.com", "a.n.n+x@gmail.com", "ANN@gmail.com"],
    ],
)
def test_one_mailbox_has_one_daily_cap_however_it_is_spelled(app: Flask, spellings: list[str]) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "recipient-mail": (len(spellings), 86400)}
    with app.test_request_context():
        for address in spellings:
            mailer.send_mail(address, "Confirm this address for othermail", "hello")
        for address in spellings:
            with pytest.raises(mailer.RecipientCapped):
                mailer.send_mail(address, "Confirm this address for othermail", "hello")


def test_different_mailboxes_keep_their_own_caps(app: Flask) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "recipient-mail": (1, 86400)}
    with app.test_request_context():
        for address in ["ann@example.org", "a.nn@example.org", "ann@example.com", "bob@gmail.com"]:
            mailer.send_mail(address, "Confirm this address for othermail", "hello")
