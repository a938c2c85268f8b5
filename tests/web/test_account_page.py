"""The account page: change the password, export everything, delete the account."""

from __future__ import annotations

import hashlib
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.flows.forward import Forwarder, Inbound
from models import Alias, ApiToken, Delivery, Destination, User, utcnow
from tests.web.conftest import PASSWORD, post, signup
from web.services.errors import ServiceError

NEW_PASSWORD = "a much better passphrase"
ANN_TOKEN = "om_ann_secret_token_value"
ANN_HASH = hashlib.sha256(ANN_TOKEN.encode()).hexdigest()
MESSAGE = (
    b"From: Shop <shop@store.example>\r\nTo: shop@othermail.example\r\nSubject: Your order\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <after-delete@store.example>\r\n\r\nHello.\r\n"
)


def signin(client: FlaskClient, email: str, password: str):
    return post(client, "/signin", {"email": email, "password": password})


def seed(app: Flask, email: str, local: str, secret_bits: str) -> dict[str, int]:
    """A verified destination, an alias with settings and counters, a token and two log rows."""
    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == email)).one()
        destination = Destination(user_id=user.id, email=f"real-{secret_bits}@mailbox.example", verified_at=utcnow())
        alias = Alias(
            address=f"{local}@othermail.example",
            user_id=user.id,
            label=f"label {secret_bits}",
            note=f"note {secret_bits}",
            max_messages=10,
            message_count=2,
            forwarded_count=1,
            blocked_count=1,
            expired_action="reject",
        )
        alias.destinations.append(destination)
        token_hash = ANN_HASH if local == "shop" else hashlib.sha256(secret_bits.encode()).hexdigest()
        db.add_all(
            [
                destination,
                alias,
                ApiToken(
                    user_id=user.id,
                    name=f"script {secret_bits}",
                    token_hash=token_hash,
                    prefix="om_" + secret_bits[:4],
                    scope="write",
                ),
            ]
        )
        db.flush()
        db.add_all(
            [
                Delivery(
                    inbound_message_id=f"m1-{local}",
                    recipient=alias.address,
                    alias_id=alias.id,
                    destination_id=destination.id,
                    outcome="forwarded",
                    reason="forwarded",
                    mail_from=f"sender-{secret_bits}@store.example",
                    subject=f"subject {secret_bits}",
                ),
                Delivery(
                    inbound_message_id=f"m2-{local}",
                    recipient=alias.address,
                    alias_id=alias.id,
                    outcome="dropped-spam",
                    reason="the spam scan failed",
                    mail_from=f"spammer-{secret_bits}@prize.example",
                    subject=f"prize {secret_bits}",
                ),
            ]
        )
        db.commit()
        return {"user": user.id, "alias": alias.id, "destination": destination.id}


def two_users(app: Flask, client: FlaskClient) -> tuple[dict[str, int], dict[str, int]]:
    other = app.test_client()
    assert signup(other, "bob@example.org").status_code == 302
    assert signup(client, "ann@example.org").status_code == 302
    return seed(app, "ann@example.org", "shop", "annsecret"), seed(app, "bob@example.org", "news", "bobsecret")


def test_the_page_needs_a_session(client: FlaskClient) -> None:
    for path in ("/account/", "/account/export"):
        response = client.get(path)
        assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_changing_the_password_ends_other_sessions_and_keeps_this_one(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    laptop = app.test_client()
    assert signin(laptop, "ann@example.org", PASSWORD).status_code == 302
    assert laptop.get("/account/").status_code == 200

    wrong = post(
        client,
        "/account/password",
        {"current": "not my password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        page="/account/",
    )
    assert wrong.status_code == 403
    assert laptop.get("/account/").status_code == 200  # nothing changed

    weak = post(
        client, "/account/password", {"current": PASSWORD, "password": "short", "confirm": "short"}, page="/account/"
    )
    assert weak.status_code == 400

    changed = post(
        client,
        "/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        page="/account/",
    )
    assert changed.status_code == 302
    assert client.get("/account/").status_code == 200
    ended = laptop.get("/account/")
    assert ended.status_code == 302 and "/signin" in ended.headers["Location"]

    fresh = app.test_client()
    assert signin(fresh, "ann@example.org", PASSWORD).status_code == 401
    assert signin(fresh, "ann@example.org", NEW_PASSWORD).status_code == 302


def test_export_holds_everything_of_the_user_and_nothing_else(app: Flask, client: FlaskClient) -> None:
    ann, _bob = two_users(app, client)
    response = client.get("/account/export")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    body = response.get_data(as_text=True)
    data = json.loads(body)

    assert data["profile"]["email"] == "ann@example.org" and data["profile"]["id"] == ann["user"]
    assert [d["email"] for d in data["destinations"]] == ["real-annsecret@mailbox.example"]
    [alias] = data["aliases"]
    assert alias["address"] == "shop@othermail.example"
    assert (alias["label"], alias["note"], alias["expired_action"]) == ("label annsecret", "note annsecret", "reject")
    assert (alias["max_messages"], alias["message_count"], alias["forwarded_count"], alias["blocked_count"]) == (
        10,
        2,
        1,
        1,
    )
    assert alias["destination_ids"] == [ann["destination"]]
    [token] = data["api_tokens"]
    assert token["name"] == "script annsecret" and token["scope"] == "write" and token["prefix"] == "om_anns"
    assert "token_hash" not in token
    assert sorted(d["subject"] for d in data["deliveries"]) == ["prize annsecret", "subject annsecret"]
    assert {d["alias_id"] for d in data["deliveries"]} == {ann["alias"]}

    assert "bobsecret" not in body and "bob@example.org" not in body and "news@" not in body
    assert ANN_HASH not in body and "$argon2" not in body and "password_hash" not in body


def test_deleting_needs_the_password_and_the_typed_confirmation(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    assert (
        post(client, "/account/delete", {"password": PASSWORD, "confirm": "yes"}, page="/account/").status_code == 400
    )
    assert (
        post(
            client, "/account/delete", {"password": "wrong password!", "confirm": "delete my account"}, page="/account/"
        ).status_code
        == 403
    )
    assert (
        client.post("/account/delete", data={"password": PASSWORD, "confirm": "delete my account"}).status_code == 400
    )
    assert client.get("/account/").status_code == 200  # still there, still signed in


def test_deleting_removes_personal_data_and_keeps_the_addresses_reserved(app: Flask, client: FlaskClient) -> None:
    ann, bob = two_users(app, client)
    response = post(client, "/account/delete", {"password": PASSWORD, "confirm": "Delete my account"}, page="/account/")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    assert client.get("/account/").status_code == 302  # signed out

    with app.app_context():
        from web.db import services, session
        from web.services import aliases

        db = session()
        user = db.get(User, ann["user"])
        assert user.email == f"deleted-{ann['user']}@invalid"
        assert user.password_hash is None and user.deleted_at is not None
        assert db.scalars(select(Destination).where(Destination.user_id == ann["user"])).all() == []
        assert db.scalars(select(ApiToken).where(ApiToken.user_id == ann["user"])).all() == []
        alias = db.get(Alias, ann["alias"])
        assert alias.address == "shop@othermail.example"
        assert alias.deleted_at is not None and not alias.enabled and alias.destinations == []
        assert alias.label is None and alias.note is None
        rows = db.scalars(select(Delivery).where(Delivery.alias_id == ann["alias"])).all()
        assert len(rows) == 2 and all(r.mail_from is None and r.subject is None for r in rows)
        kept = db.scalars(select(Delivery).where(Delivery.alias_id == bob["alias"])).all()
        assert sorted(r.subject for r in kept) == ["prize bobsecret", "subject bobsecret"]
        assert db.get(Alias, bob["alias"]).deleted_at is None

        bob_user = db.get(User, bob["user"])
        with pytest.raises(ServiceError) as taken:
            aliases.create(services(), db, bob_user, destination_ids=[bob["destination"]], local_part="shop")
        assert taken.value.code == "taken"

    sender = MemorySender()
    forwarder = Forwarder(SqlDirectory(app.extensions["othermail.sessions"]), sender, Policy(), utcnow)
    [report] = forwarder.process(MESSAGE, Inbound("after-delete", ("shop@othermail.example",)))
    assert report.outcome is Outcome.DROPPED_UNKNOWN_ALIAS
    assert sender.sent == []

    again = app.test_client()
    assert signin(again, "ann@example.org", PASSWORD).status_code == 401
    assert signup(again, "ann@example.org").status_code == 302  # the address is free for a new account


def test_export_and_deletion_work_on_every_backend(session) -> None:  # type: ignore[no-untyped-def]
    from forwarder.runtime import Runtime
    from forwarder.settings import Settings
    from web.services import account
    from web.services.context import ServiceContext

    db = session
    ann, bob = User(email="ann@example.org", password_hash="x"), User(email="bob@example.org")
    db.add_all([ann, bob])
    db.flush()
    mine = Destination(user_id=ann.id, email="real@mailbox.example", verified_at=utcnow())
    shop = Alias(address="shop@othermail.example", user_id=ann.id, label="shop")
    other = Alias(address="news@othermail.example", user_id=bob.id)
    shop.destinations.append(mine)
    db.add_all(
        [mine, shop, other, ApiToken(user_id=ann.id, name="t", token_hash=ANN_HASH, prefix="om_x", scope="read")]
    )
    db.flush()
    db.add_all(
        [
            Delivery(
                inbound_message_id="m1",
                recipient=shop.address,
                alias_id=shop.id,
                outcome="forwarded",
                mail_from="a@store.example",
                subject="hello",
            ),
            Delivery(
                inbound_message_id="m2",
                recipient=other.address,
                alias_id=other.id,
                outcome="forwarded",
                mail_from="b@store.example",
                subject="kept",
            ),
        ]
    )
    db.commit()

    # no SES: the database is all this test looks at
    ctx = ServiceContext(Runtime.build(Settings(sender="outbox")), secret_key="test")
    exported = account.export(ctx, db, ann)
    assert [a["address"] for a in exported["aliases"]] == ["shop@othermail.example"]
    assert [d["subject"] for d in exported["deliveries"]] == ["hello"]
    account.delete_account(ctx, db, ann)
    db.expire_all()
    assert ann.email == f"deleted-{ann.id}@invalid" and ann.deleted_at is not None
    assert db.get(Alias, shop.id).deleted_at is not None and db.get(Alias, shop.id).destinations == []
    assert db.scalars(select(Destination)).all() == [] and db.scalars(select(ApiToken)).all() == []
    subjects = dict(db.execute(select(Delivery.inbound_message_id, Delivery.subject)).all())
    assert subjects == {"m1": None, "m2": "kept"}
    assert db.get(Alias, other.id).deleted_at is None


def test_the_page_links_to_the_api_tokens_and_the_api_document(client: FlaskClient) -> None:
    signup(client)
    page = client.get("/account/").get_data(as_text=True)
    assert 'href="/account/tokens' in page and 'href="/api/v1/openapi.json"' in page
    assert client.get("/account/tokens").status_code == 200
