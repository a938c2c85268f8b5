"""Contacts, message links and sender rules in the account's life (issue 14): the export holds them
(real addresses opened); deleting an alias or the account deletes them."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import Contact, MessageLink, SenderRule, User
from tests.support.factories import add_destination, user_id, web_session
from tests.web.conftest import PASSWORD, post, signup
from tests.web.test_contacts_pages import make_alias
from web.services import tokens


def _seed(app: Flask, client: FlaskClient, email: str = "ann@example.org") -> tuple[int, int, int]:
    """Two aliases of the user, each with a contact, a message link and a rule, and an account rule."""
    signup(client, email, PASSWORD)
    uid = user_id(app, email)
    add_destination(app, uid, f"home.{email}")
    book = app.extensions["othermail.runtime"].contacts
    ids = []
    for n in (1, 2):
        alias_id, address = make_alias(client)
        domain = address.partition("@")[2]
        ref = book.create(alias_id, domain, f"friend{n}.{email}.example@people.example", f"Friend {n}")
        book.contacts_for(alias_id, domain, [(ref.address, "")])
        book.link(alias_id, ref.contact_id, [f"<seen{n}@email.amazonses.com>"], f"<orig{n}@people.example>")
        book.add_rule(uid, alias_id, "block", "domain", f"pest{n}.example")
        ids.append(alias_id)
    book.add_rule(uid, None, "allow", "empty-sender")
    return uid, ids[0], ids[1]


def _counts(app: Flask, alias_id: int) -> tuple[int, int, int]:
    with app.app_context():
        db = web_session(app)
        return tuple(  # type: ignore[return-value]
            db.scalar(select(func.count()).select_from(model).where(model.alias_id == alias_id)) or 0
            for model in (Contact, MessageLink, SenderRule)
        )


def test_the_export_holds_contacts_with_real_addresses_and_rules(app: Flask, client: FlaskClient) -> None:
    _, first, second = _seed(app, client)
    book = app.extensions["othermail.runtime"].contacts
    book.set_blocked(first, book.contacts_of(first, "x")[0].contact_id, True)
    exported = client.get("/account/export").get_json()
    contacts = exported["contacts"]
    assert [c["address"] for c in contacts] == [
        "friend1.ann@example.org.example@people.example",
        "friend2.ann@example.org.example@people.example",
    ]
    one = contacts[0]
    assert (one["alias_id"], one["name"], one["origin"], one["blocked"], one["forwarded_count"]) == (
        first,
        "Friend 1",
        "user",
        True,
        1,
    )
    assert one["reverse_address"] == book.contacts_of(first, one["reverse_address"].partition("@")[2])[0].reverse
    assert {(r["alias_id"], r["action"], r["kind"], r["value"]) for r in exported["sender_rules"]} == {
        (first, "block", "domain", "pest1.example"),
        (second, "block", "domain", "pest2.example"),
        (None, "allow", "empty-sender", ""),
    }
    assert exported["preferences"] == {
        "display_format": "name-and-address",
        "unsubscribe_action": "disable-alias",
        "sender_mode": "any",
    }


def test_deleting_an_alias_deletes_its_contacts_links_and_rules_only(app: Flask, client: FlaskClient) -> None:
    _, first, second = _seed(app, client)
    assert _counts(app, first) == (1, 1, 1) and _counts(app, second) == (1, 1, 1)
    page = f"/aliases/{first}/delete"
    assert post(client, page, {}, page=page).status_code == 302
    assert _counts(app, first) == (0, 0, 0)
    assert _counts(app, second) == (1, 1, 1)


def test_deleting_an_alias_through_the_api_deletes_them_too(app: Flask, client: FlaskClient) -> None:
    uid, first, _ = _seed(app, client)
    with app.app_context():
        db = web_session(app)
        _, secret = tokens.create(db, db.get(User, uid), "t", "write", None)
    response = client.delete(f"/api/v1/aliases/{first}", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 204
    assert _counts(app, first) == (0, 0, 0)


def test_deleting_the_account_deletes_every_contact_link_and_rule(app: Flask, client: FlaskClient) -> None:
    uid, first, second = _seed(app, client)
    other = app.test_client()
    _, kept, _ = _seed(app, other, "bob@example.org")
    response = post(client, "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}, page="/account/")
    assert response.status_code == 302
    assert _counts(app, first) == (0, 0, 0) and _counts(app, second) == (0, 0, 0)
    with app.app_context():
        assert web_session(app).scalar(select(func.count()).where(SenderRule.user_id == uid)) == 0
    assert _counts(app, kept) == (1, 1, 1)
