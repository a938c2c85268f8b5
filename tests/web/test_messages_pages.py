"""A received message's page, the download of the original, and the quarantine (web/messages.py)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.stores import LocalStore
from models import Alias, Delivery, Destination, User, utcnow
from tests.support.factories import web_session as db
from tests.web.conftest import post, signup

ALIAS = "shop@othermail.example"
RAW = (
    b"From: Shop <deals@store.example>\r\nTo: shop@othermail.example\r\nSubject: =?utf-8?q?Caf=C3=A9?= deals\r\n"
    b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <deal-1@store.example>\r\n"
    b"Authentication-Results: amazonses.com; spf=pass; dmarc=fail\r\n\r\nBuy now.\r\n"
)


def seed(
    app: Flask,
    email: str,
    outcome: str,
    *,
    kept: bool = True,
    age: timedelta = timedelta(0),
    message_id: str = "m1",
    raw: bytes = RAW,
) -> int:
    """A delivery of ``email``'s alias (made on first use), its raw message in the store."""
    with app.app_context():
        session = db(app)
        user = session.scalars(select(User).where(User.email == email)).one()
        alias = session.scalars(select(Alias).where(Alias.user_id == user.id)).first()
        if alias is None:
            home = Destination(user_id=user.id, email=f"home-{user.id}@real.example", verified_at=utcnow())
            alias = Alias(address=f"shop{user.id}@othermail.example", user_id=user.id)
            alias.destinations.append(home)
            session.add(alias)
            session.flush()
        row = Delivery(
            inbound_message_id=message_id,
            recipient=alias.address,
            alias_id=alias.id,
            outcome=outcome,
            reason=f"{outcome} said SES",
            mail_from="deals@store.example",
            subject="Café deals",
            bytes_in=len(raw),
            raw_key=f"smtp/{message_id}" if kept else None,
            created_at=utcnow() - age,
        )
        session.add(row)
        session.commit()
        if kept:
            LocalStore(app.config["SETTINGS"].store_dir).put(f"smtp/{message_id}", raw)
        return row.id


@pytest.fixture
def ann(app: Flask, client: FlaskClient) -> FlaskClient:
    assert signup(client, "ann@example.org").status_code == 302
    return client


def test_a_kept_message_shows_its_headers_and_downloads_as_it_arrived(app: Flask, ann: FlaskClient) -> None:
    row = seed(app, "ann@example.org", "forwarded")
    page = ann.get(f"/messages/{row}").get_data(as_text=True)
    assert "Café deals" in page and "deal-1@store.example" in page and "dmarc=fail" in page
    assert "Download .eml" in page and "Release to my destinations" not in page  # forwarded: nothing to release
    response = ann.get(f"/messages/{row}/raw")
    assert response.status_code == 200 and response.mimetype == "message/rfc822"
    assert response.data == RAW
    assert f'filename="message-{row}.eml"' in response.headers["Content-Disposition"]


def test_after_keep_days_the_original_is_gone_and_says_so(app: Flask, ann: FlaskClient) -> None:
    old = seed(app, "ann@example.org", "dropped-too-large", age=timedelta(days=15), message_id="old")
    never = seed(app, "ann@example.org", "forwarded", kept=False, message_id="never")
    page = ann.get(f"/messages/{old}").get_data(as_text=True)
    assert "kept for 14 days; it is gone now" in page and "Download" not in page
    response = ann.get(f"/messages/{old}/raw")
    assert response.status_code == 410 and "kept for 14 days only" in response.get_data(as_text=True)
    assert "No copy of this message was kept" in ann.get(f"/messages/{never}").get_data(as_text=True)
    assert ann.get(f"/messages/{never}/raw").status_code == 410


def test_a_message_missing_from_the_store_is_gone_not_an_error(app: Flask, ann: FlaskClient) -> None:
    row = seed(app, "ann@example.org", "dropped-spam")
    (app.config["SETTINGS"].store_dir / "smtp" / "m1").unlink()
    page = ann.get(f"/messages/{row}")
    assert page.status_code == 200 and "no longer kept" in page.get_data(as_text=True)
    assert "Release" not in page.get_data(as_text=True)
    assert ann.get(f"/messages/{row}/raw").status_code == 410


def test_the_quarantine_lists_what_can_be_released(app: Flask, ann: FlaskClient) -> None:
    spam = seed(app, "ann@example.org", "dropped-spam", message_id="spam")
    dmarc = seed(app, "ann@example.org", "dropped-dmarc", message_id="dmarc")
    limited = seed(app, "ann@example.org", "dropped-rate-limited", message_id="limited")
    seed(app, "ann@example.org", "dropped-virus", message_id="virus")
    seed(app, "ann@example.org", "forwarded", message_id="fine")
    seed(app, "ann@example.org", "dropped-spam", age=timedelta(days=20), message_id="expired")
    page = ann.get("/messages/quarantine").get_data(as_text=True)
    listed = {int(n) for n in re.findall(r'href="/messages/(\d+)"', page)}
    assert listed == {spam, dmarc, limited}


def test_releasing_forwards_once_and_a_virus_never(app: Flask, ann: FlaskClient) -> None:
    sent: MemorySender = app.extensions["othermail.runtime"].sender
    spam = seed(app, "ann@example.org", "dropped-spam", message_id="spam")
    before = len(sent.sent)
    response = post(ann, f"/messages/{spam}/release", {}, page=f"/messages/{spam}")
    assert response.status_code == 302
    copies = sent.sent[before:]
    assert [m.recipient for m in copies] == [f"home-{user_id(app)}@real.example"]
    forwarded = email.message_from_bytes(copies[0].raw, policy=email.policy.default)
    assert b"Buy now." in copies[0].raw
    # rewritten as any forward is (two-way): the sender named by a reverse address on the alias's
    # domain, its own address only spelled out
    sender = forwarded["From"].addresses[0]
    assert sender.domain == "othermail.example" and "deals at store.example" in sender.display_name
    assert b"deals@store.example" not in copies[0].raw.split(b"\r\n\r\n", 1)[0]
    assert "forwarded to 1 destination" in ann.get(f"/messages/{spam}").get_data(as_text=True)
    with app.app_context():
        assert db(app).get(Delivery, spam).released_at is not None
        released = db(app).scalars(select(Delivery).where(Delivery.inbound_message_id == "spam/released")).all()
        assert [r.outcome for r in released] == ["forwarded"]
    again = post(ann, f"/messages/{spam}/release", {}, page=f"/messages/{spam}")
    assert again.status_code == 409 and "released already" in again.get_data(as_text=True)
    assert len(sent.sent) == before + 1

    virus = seed(app, "ann@example.org", "dropped-virus", message_id="virus")
    page = ann.get(f"/messages/{virus}").get_data(as_text=True)
    assert "Release to my destinations" not in page
    assert "can neither be downloaded nor released" in page and "Download .eml" not in page
    assert ann.get(f"/messages/{virus}/raw").status_code == 403
    forced = post(ann, f"/messages/{virus}/release", {}, page=f"/messages/{virus}")
    assert forced.status_code == 403 and "never released" in forced.get_data(as_text=True)
    assert len(sent.sent) == before + 1


def test_another_users_message_is_not_found(app: Flask, ann: FlaskClient) -> None:
    other = app.test_client()
    assert signup(other, "bob@example.org").status_code == 302
    bobs = seed(app, "bob@example.org", "dropped-spam", message_id="bob")
    for path in (f"/messages/{bobs}", f"/messages/{bobs}/raw"):
        assert ann.get(path).status_code == 404
    assert post(ann, f"/messages/{bobs}/release", {}, page="/messages/quarantine").status_code == 404
    assert "bob" not in ann.get("/messages/quarantine").get_data(as_text=True)


def test_activity_links_to_each_message(app: Flask, ann: FlaskClient) -> None:
    row = seed(app, "ann@example.org", "dropped-spam")
    assert f'href="/messages/{row}"' in ann.get("/dashboard").get_data(as_text=True)


def user_id(app: Flask) -> int:
    with app.app_context():
        return db(app).scalars(select(User.id).where(User.email == "ann@example.org")).one()


NESTED_FROM = b"From: a " + b"(" * 5000 + b"x" + b")" * 5000 + b" <deals@store.example>\r\n"


@pytest.mark.parametrize(
    "head",
    [
        NESTED_FROM,
        b"To: " + b", ".join(b"=?utf-8?q?w%d?= <w%d@x.example>" % (n, n) for n in range(3000)) + b"\r\n",
        b"Subject: =?utf-8?q?" + b"=E9" * 30000 + b"?=\r\nFrom: =?bogus-charset?b?////?= <a@b.example>\r\n",
        b"Date: " + b"(" * 5000 + b"\r\nMessage-ID: <" + b"<" * 5000 + b"\r\n",
    ],
)
def test_a_header_that_does_not_parse_is_shown_raw_never_a_500(app: Flask, ann: FlaskClient, head: bytes) -> None:
    """Issue 12.10: a From nesting 5,000 comments made the message page a 500 (``get_all()`` parses the
    header outside the ``try``)."""
    row = seed(
        app, "ann@example.org", "dropped-spam", raw=head + b"Subject-Extra: x\r\n\r\nBody.\r\n", message_id="deep"
    )
    response = ann.get(f"/messages/{row}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    name = head.split(b":", 1)[0].decode()
    assert f"<th>{name}</th>" in page or f">{name}<" in page
    assert len(page) < 200_000  # a shown value is cut, not copied whole
