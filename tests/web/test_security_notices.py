"""Security notice mails (issue 16): a sign-in from a browser the account has not seen, a password
change or reset, a two-factor change, a new API token; one mail each, in the service's own words,
and a mail that cannot be sent never stops the action."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from models import User, utcnow
from tests.web.conftest import PASSWORD, links_in, post, signup
from tests.web.test_account_email import mails_to
from web.notices import notify
from web.services.security_notices import NoticeEvent, browser_name

ANN = "ann@example.org"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NEW = "a brand new passphrase"


def sign_in_from(app: Flask, user_agent: str = FIREFOX, address: str = ANN) -> FlaskClient:
    """Another browser (no device cookie) signing in to ``address``."""
    browser = app.test_client()
    browser.environ_base["HTTP_USER_AGENT"] = user_agent
    response = post(browser, "/signin", {"email": address, "password": PASSWORD})
    assert response.status_code == 302 and "/signin" not in response.headers["Location"]
    return browser


def notices(outbox: MemorySender, address: str = ANN) -> list[str]:
    return [mail for mail in mails_to(outbox, address) if "othermail security notice" in mail]


def test_the_browser_that_signed_up_and_confirmed_gets_no_notice(client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)  # confirms the address in this browser, then signs in
    assert client.get("/account/").status_code == 200
    assert notices(outbox) == []


def test_a_sign_in_from_an_unseen_browser_sends_one_notice_and_a_seen_one_none(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    other = sign_in_from(app)
    [mail] = notices(outbox)
    assert mail.startswith("othermail security notice: New sign-in\n")
    assert "a browser that had not signed in before" in mail
    assert "IP address: 127.0.0.1" in mail and "Browser: Firefox on Linux" in mail
    assert re.search(r"\nWhen: \d{4}-\d\d-\d\d \d\d:\d\d UTC\n", mail) and "change your password" in mail
    [link] = [link for raw in outbox.sent for link in links_in(raw.raw) if "/account/" in link]
    assert link == "http://othermail.test/account/"
    assert PASSWORD not in mail

    post(other, "/signout", {}, page="/account/")
    assert post(other, "/signin", {"email": ANN, "password": PASSWORD}).status_code == 302  # its cookie stays
    post(client, "/signout", {}, page="/account/")
    assert post(client, "/signin", {"email": ANN, "password": PASSWORD}).status_code == 302
    assert len(notices(outbox)) == 1
    sign_in_from(app)  # yet another browser
    assert len(notices(outbox)) == 2


def test_a_wrong_password_from_an_unseen_browser_sends_nothing(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    response = post(app.test_client(), "/signin", {"email": ANN, "password": "not the password"})
    assert response.status_code == 401
    assert notices(outbox) == []


def test_an_unconfirmed_address_is_never_sent_a_notice(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    """Someone may have signed up with another person's address: the service mails it nothing more."""
    signup(client, verify=False)
    outbox.sent.clear()
    sign_in_from(app)
    assert outbox.sent == []


def test_the_user_agent_is_named_in_the_services_words_only(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    sign_in_from(app, "Your account is locked: restore it at https://evil.example/restore")
    [mail] = notices(outbox)
    assert "Browser: an unknown browser" in mail and "evil.example" not in mail


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (FIREFOX, "Firefox on Linux"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 "
            "Safari/537.36 Edg/131.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        ("curl/8.5.0", "curl"),
        ("", "an unknown browser"),
    ],
)
def test_browser_names(user_agent: str, name: str) -> None:
    assert browser_name(user_agent) == name


def test_a_password_change_sends_one_notice(client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    response = post(
        client, "/account/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/account/"
    )
    assert response.status_code == 302
    [mail] = notices(outbox)
    assert mail.startswith("othermail security notice: Password changed\n")
    assert "The password of your othermail account was changed." in mail
    assert NEW not in mail and PASSWORD not in mail


def test_a_refused_password_change_sends_nothing(client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    response = post(
        client, "/account/password", {"current": "wrong password", "password": NEW, "confirm": NEW}, page="/account/"
    )
    assert response.status_code >= 400
    assert notices(outbox) == []


def test_a_password_reset_sends_one_notice(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    visitor = app.test_client()
    post(visitor, "/reset", {"email": ANN})
    [link] = [link for raw in outbox.sent for link in links_in(raw.raw) if "/reset/" in link]
    visitor.get(link.split("othermail.test", 1)[1])
    assert post(visitor, "/new-password", {"password": NEW, "confirm": NEW}).status_code == 302
    [mail] = notices(outbox)
    assert mail.startswith("othermail security notice: Password reset\n")
    assert "reset through the link mailed to this address" in mail and NEW not in mail


def test_a_new_api_token_sends_one_notice_without_its_secret_or_name(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    signup(client)
    page = post(
        client, "/account/tokens", {"name": "backup script", "scope": "write", "expires_in": "30", "password": PASSWORD}
    ).get_data(as_text=True)
    secret = page.split('<code class="token-secret">', 1)[1].split("<", 1)[0]
    [mail] = notices(outbox)
    assert mail.startswith("othermail security notice: New API token\n")
    assert "Scope: write; it expires 20" in mail
    assert secret not in mail and secret[:10] not in mail and "backup script" not in mail


def test_a_failing_mail_service_never_stops_the_action(
    app: Flask, client: FlaskClient, outbox: MemorySender, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    signup(client)

    def down(raw: bytes, *, sender: str, recipient: str) -> str:
        raise ConnectionRefusedError("the relay is down")

    monkeypatch.setattr(outbox, "send", down)
    with caplog.at_level(logging.WARNING):
        other = sign_in_from(app)  # asserts the sign-in went through
        assert other.get("/account/").status_code == 200
        response = post(
            client, "/account/tokens", {"name": "backup", "scope": "read", "expires_in": "", "password": PASSWORD}
        )
        assert response.status_code == 201
        response = post(
            client, "/account/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/account/"
        )
        assert response.status_code == 302
    assert outbox.sent == []
    assert "the security notice NEW_SIGNIN to a mailbox at example.org was not sent" in caplog.text
    assert "the security notice PASSWORD_CHANGED" in caplog.text


def test_an_error_before_sending_is_logged_and_swallowed(
    app: Flask, client: FlaskClient, outbox: MemorySender, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    signup(client)
    from web import mailer

    def broken(job: object) -> None:
        raise RuntimeError("no worker")

    monkeypatch.setattr(mailer, "send_later", broken)
    with caplog.at_level(logging.ERROR):
        assert sign_in_from(app).get("/account/").status_code == 200
    assert "the security notice NEW_SIGNIN was not sent" in caplog.text


@pytest.mark.parametrize("event", list(NoticeEvent))
def test_each_event_sends_one_mail_naming_it(app: Flask, outbox: MemorySender, event: NoticeEvent) -> None:
    """The events parts A and B report (two-factor, recovery codes, passkeys) mail as the others do."""
    with app.app_context():
        from web.db import session

        user = User(email=ANN, password_hash="x", email_verified_at=utcnow())
        session().add(user)
        session().commit()
    with app.test_request_context("/account/", environ_base={"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": FIREFOX}):
        from web.db import session

        user = session().scalars(select(User).where(User.email == ANN)).one()
        notify(user, event, detail="Scope: read.")
    [mail] = notices(outbox)
    subject, _, body = mail.partition("\n")
    assert subject == f"othermail security notice: {event.value[0]}"
    assert body.startswith(event.sentence + "\nScope: read.\n")
    assert "IP address: 203.0.113.9" in body and "Browser: Firefox on Linux" in body
    assert "http://othermail.test/account/" in body


# --- the notices' own daily caps (security review of issue 16) ----------------------------------


def test_a_notice_goes_out_when_the_recipients_cap_of_other_mail_is_used_up(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    """Notices shared the 10-a-day cap of every service mail: whoever could fill it (sign-in
    notices, reset mails, sign-up attempts) could make the next change go unnoticed."""
    signup(client)
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "recipient-mail": (0, 86400)}
    with app.test_request_context("/"):
        from web import mailer
        from web.services.errors import ServiceError

        with pytest.raises(ServiceError):  # other service mail to ann is capped now
            mailer.send_mail(ANN, "Anything", "Anything else.\n")
    response = post(
        client, "/account/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/account/"
    )
    assert response.status_code == 302
    [mail] = notices(outbox)
    assert mail.startswith("othermail security notice: Password changed\n")


def test_the_notices_own_cap_holds(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "security-notice-mail": (2, 86400)}
    with app.app_context():
        from web.db import session

        user = session().scalars(select(User).where(User.email == ANN)).one()
        with app.test_request_context("/"):
            for event in (NoticeEvent.PASSWORD_CHANGED, NoticeEvent.TWO_FACTOR_ENABLED, NoticeEvent.API_TOKEN_CREATED):
                notify(user, event)
    assert len(notices(outbox)) == 2


def test_sign_in_notices_cannot_use_up_the_room_of_a_change_notice(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    """Sign-in notices have a cap of their own within the notices': a run of sign-ins from new
    browsers leaves room for the notice of the change that follows them."""
    signup(client)
    app.config["RATE_LIMITS"] = {
        **app.config["RATE_LIMITS"],
        "signin-notice-mail": (2, 86400),
        "security-notice-mail": (3, 86400),
    }
    for _ in range(5):
        sign_in_from(app)
    assert len(notices(outbox)) == 2
    response = post(
        client, "/account/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/account/"
    )
    assert response.status_code == 302
    assert notices(outbox)[-1].startswith("othermail security notice: Password changed\n")
    assert len(notices(outbox)) == 3
