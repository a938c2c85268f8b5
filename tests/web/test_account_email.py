"""The account's own email is verified before it may add destinations; service mail carries no text a
user chose and is capped per recipient; IPv6 clients are limited per /64 (issue 12.5)."""

from __future__ import annotations

import email
import email.policy

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from forwarder.adapters.senders import MemorySender
from models import Destination, RateLimitHit, User, utcnow
from tests.web.conftest import csrf, links_in, post, signup
from tests.web.test_api import make_account
from web.ratelimit import client_key

ATTACKER = '"your account is locked, restore it at https://evil.example/restore"@evil.example'
VICTIM = "victim@real.example"


def text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return f"{message['Subject']}\n{message.get_content()}"


def mails_to(outbox: MemorySender, recipient: str) -> list[str]:
    return [text_of(m.raw) for m in outbox.sent if m.recipient == recipient]


def email_link(outbox: MemorySender, recipient: str) -> str:
    [mail] = [m for m in outbox.sent if m.recipient == recipient][-1:]
    [link] = [link for link in links_in(mail.raw) if "/email/verify/" in link]
    return link.split("othermail.test", 1)[1]


def verified_at(app: Flask, address: str):  # type: ignore[no-untyped-def]
    with app.app_context():
        from web.db import session

        return session().scalars(select(User.email_verified_at).where(User.email == address)).one()


def mark_verified(app: Flask, address: str) -> None:
    with app.app_context():
        from web.db import session

        session().scalars(select(User).where(User.email == address)).one().email_verified_at = utcnow()
        session().commit()


def destinations(app: Flask) -> list[tuple[str, bool]]:
    with app.app_context():
        from web.db import session

        return [
            (d.email, d.verified_at is not None)
            for d in session().scalars(select(Destination).order_by(Destination.id))
        ]


def test_sign_up_mails_a_signed_link_that_only_a_post_confirms(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    assert signup(client, "ann@example.org", verify=False).status_code == 302
    [mail] = mails_to(outbox, "ann@example.org")
    assert "ann@example.org" not in mail  # the recipient's address is in To: only
    path = email_link(outbox, "ann@example.org")
    assert verified_at(app, "ann@example.org") is None

    scanner = app.test_client()
    page = scanner.get(path).get_data(as_text=True)
    assert "Confirm your email address" in page and 'method="post"' in page
    assert verified_at(app, "ann@example.org") is None  # opening the link only asks
    assert scanner.post(path).status_code == 400  # no CSRF token
    assert verified_at(app, "ann@example.org") is None
    response = post(scanner, path, {})
    assert response.status_code == 200 and "Email address confirmed" in response.get_data(as_text=True)
    assert verified_at(app, "ann@example.org") is not None

    tampered = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    assert client.get(tampered).status_code == 404


def test_an_unverified_account_cannot_add_a_destination_on_a_page_or_through_the_api(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    assert signup(client, "ann@example.org", verify=False).status_code == 302
    outbox.sent.clear()
    page = client.get("/destinations/").get_data(as_text=True)
    assert "Confirm your email address" in page and "Send the link again" in page
    response = post(client, "/destinations/", {"email": VICTIM})
    assert response.status_code == 403 and "confirm" in response.get_data(as_text=True).lower()
    assert destinations(app) == [] and outbox.sent == []

    account = make_account(app, "api@example.org", verified=False)  # its email was never confirmed
    response = client.post("/api/v1/destinations", json={"email": VICTIM}, headers=account.write)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "email_unverified"
    assert mails_to(outbox, VICTIM) == []


def test_resend_sends_a_new_link_and_is_rate_limited(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    assert signup(client, "ann@example.org", verify=False).status_code == 302
    app.config["RATE_LIMITS"]["email-verification"] = (2, 3600)
    assert post(client, "/email/resend", {}, page="/destinations/").status_code == 302
    assert len(mails_to(outbox, "ann@example.org")) == 2
    response = post(client, "/email/resend", {}, page="/destinations/")
    assert response.status_code == 302
    assert "Too many" in client.get("/destinations/").get_data(as_text=True)
    assert len(mails_to(outbox, "ann@example.org")) == 2
    post(client, email_link(outbox, "ann@example.org"), {})
    assert verified_at(app, "ann@example.org") is not None
    response = post(client, "/email/resend", {}, page="/destinations/")
    assert response.status_code == 302 and len(mails_to(outbox, "ann@example.org")) == 2  # nothing to resend


def test_a_destination_that_is_the_confirmed_account_address_needs_no_second_link(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    outbox.sent.clear()
    assert post(client, "/destinations/", {"email": "Ann@Example.org"}).status_code == 302
    assert destinations(app) == [("ann@example.org", True)] and outbox.sent == []


def test_no_service_mail_carries_text_the_user_chose(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    """The account email was echoed into the verification mail sent to a destination: anyone could
    make the service mail attacker-written text to any address."""
    app.config["RATE_LIMITS"]["verification"] = (50, 3600)
    # a quoted local part holding the attacker's words is refused at sign-up now (review F4)
    assert signup(app.test_client(), ATTACKER, verify=False).status_code == 400
    attacker = "restore.locked.account@evil.example"
    assert signup(client, attacker, verify=False).status_code == 302
    mark_verified(app, attacker)
    assert post(client, "/destinations/", {"email": VICTIM}).status_code == 302
    dest_id = destinations(app)[0]
    assert dest_id == (VICTIM, False)
    post(client, "/destinations/1/change", {"email": "victim2@real.example"}, page="/destinations/1")
    post(client, "/destinations/1/resend", {}, page="/destinations/")
    sent = mails_to(outbox, VICTIM) + mails_to(outbox, "victim2@real.example")
    assert len(sent) == 3
    for text in sent:
        for words in ("locked", "evil", "restore", ATTACKER, attacker):
            assert words not in text, text


def test_service_mail_per_recipient_is_capped_across_accounts(app: Flask, outbox: MemorySender) -> None:
    app.config["RATE_LIMITS"].update({"verification": (100, 3600), "recipient-mail": (3, 86400)})
    clients = []
    for n in range(3):
        attacker = app.test_client()
        assert signup(attacker, f"attacker{n}@example.org").status_code == 302
        clients.append(attacker)
    outbox.sent.clear()
    refusals = []
    for n, attacker in enumerate(clients):
        response = post(attacker, "/destinations/", {"email": VICTIM})
        assert response.status_code == 302
        refusals.append("too many emails" in attacker.get("/destinations/").get_data(as_text=True).lower())
        for _ in range(2):
            response = post(attacker, f"/destinations/{n + 1}/resend", {}, page="/destinations/")
            refusals.append(
                response.status_code == 429 and "too many emails" in response.get_data(as_text=True).lower()
            )
    assert len(mails_to(outbox, VICTIM)) == 3  # then no more today, whoever asks
    assert refusals == [False, False, False] + [True] * 6
    with app.app_context():
        from web.db import session

        assert (
            session().scalar(
                select(func.count()).select_from(RateLimitHit).where(RateLimitHit.key.like("recipient-mail:%"))
            )
            == 4
        )  # one per recipient
        assert VICTIM not in " ".join(session().scalars(select(RateLimitHit.key)))  # keyed by a hash


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not an address", "not an address"),
        (None, "unknown"),
    ],
)
def test_client_key_counts_ipv6_by_its_64(ip: str | None, key: str) -> None:
    assert client_key(ip) == key


def test_sign_up_and_anonymous_api_calls_are_limited_per_ipv6_64(app: Flask) -> None:
    app.config["RATE_LIMITS"].update({"signup": (2, 3600), "api": (2, 60)})
    statuses = []
    for n in range(3):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"2001:db8:1:2::{n + 1:x}"
        token = csrf(client, "/signup")
        statuses.append(
            client.post(
                "/signup",
                data={
                    "csrf_token": token,
                    "email": f"u{n}@example.org",
                    "password": "correct horse battery",
                    "confirm": "correct horse battery",
                },
            ).status_code
        )
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    api = []
    for n in range(3):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"2001:db8:9:9:{n + 1:x}::1"
        api.append(client.get("/api/v1/aliases").status_code)
    assert api == [401, 401, 429]
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "2001:db8:9:a::1"  # another /64
    assert other.get("/api/v1/aliases").status_code == 401


def test_without_a_public_address_sign_up_and_destinations_say_the_mail_was_not_sent(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    """Issue 12.27: no configured address to build the link from is a message, not a 500."""
    app.config["SERVER_NAME"] = None
    response = post(
        client,
        "/signup",
        {"email": "ann@example.org", "password": "correct horse battery", "confirm": "correct horse battery"},
    )
    assert response.status_code == 302
    assert "could not send" in client.get(response.headers["Location"]).get_data(as_text=True)
    post(client, "/signin", {"email": "ann@example.org", "password": "correct horse battery"})
    assert outbox.sent == []


def test_a_mailed_link_stands_on_one_line_of_the_raw_message(client: FlaskClient, outbox: MemorySender) -> None:
    """A person reading the one box's outbox file (or a plain-text client) can copy the link as it
    stands: service mail in 7-bit text, not quoted-printable, which cuts long lines with '='."""
    signup(client, "ann@example.org", verify=False)
    [mail] = [m for m in outbox.sent if m.recipient == "ann@example.org"]
    [link] = [link for link in links_in(mail.raw) if "/email/verify/" in link]
    assert link.encode() in mail.raw
    assert b"quoted-printable" not in mail.raw.lower()
