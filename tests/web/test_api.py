"""The JSON API under /api/v1 through Flask's test client: tokens, scopes, every endpoint, errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Alias, ApiToken, Delivery, Destination, User, utcnow
from tests.web.conftest import signup
from web.services import tokens


@dataclass
class Account:
    user_id: int
    destination_id: int  # verified
    pending_id: int  # unverified
    write: dict[str, str]
    read: dict[str, str]


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_account(app: Flask, email: str, verified: bool = True) -> Account:
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        user = User(email=email, password_hash="x", email_verified_at=utcnow() if verified else None)
        db.add(user)
        db.flush()
        verified = Destination(user_id=user.id, email=f"inbox.{email}", verified_at=utcnow())
        pending = Destination(user_id=user.id, email=f"pending.{email}")
        db.add_all([verified, pending])
        db.commit()
        _, write = tokens.create(db, user, "write", "write", None)
        _, read = tokens.create(db, user, "read", "read", 30)
        account = Account(user.id, verified.id, pending.id, _bearer(write), _bearer(read))
        db.close()
    return account


def query(app: Flask, statement):  # type: ignore[no-untyped-def]
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        try:
            return list(db.scalars(statement))
        finally:
            db.close()


def change(app: Flask, model: type, row_id: int, **values: object) -> None:
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        row = db.get(model, row_id)
        for name, value in values.items():
            setattr(row, name, value)
        db.commit()
        db.close()


@pytest.fixture
def ann(app: Flask) -> Account:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "verification": (100, 3600)}
    return make_account(app, "ann@example.org")


@pytest.fixture
def bob(app: Flask) -> Account:
    return make_account(app, "bob@example.org")


def error_of(response) -> str:  # type: ignore[no-untyped-def]
    body = response.get_json()
    assert response.is_json and set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]["code"]


def new_alias(client: FlaskClient, account: Account, **fields: object) -> dict:
    response = client.post(
        "/api/v1/aliases", json={"destination_ids": [account.destination_id], **fields}, headers=account.write
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer om_wrong", "Basic b21feDp5", "om_nobearer"])
def test_a_missing_or_unknown_token_is_401(client: FlaskClient, ann: Account, header: str | None) -> None:
    response = client.get("/api/v1/aliases", headers={"Authorization": header} if header else {})
    assert response.status_code == 401 and error_of(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_and_expired_tokens_and_deleted_users_are_refused(
    app: Flask, client: FlaskClient, ann: Account
) -> None:
    assert client.get("/api/v1/aliases", headers=ann.write).status_code == 200
    read, write = sorted(query(app, select(ApiToken).where(ApiToken.user_id == ann.user_id)), key=lambda t: t.scope)
    change(app, ApiToken, read.id, expires_at=utcnow() - timedelta(seconds=1))
    assert error_of(client.get("/api/v1/aliases", headers=ann.read)) == "unauthorized"
    change(app, ApiToken, write.id, revoked_at=utcnow())
    assert client.get("/api/v1/aliases", headers=ann.write).status_code == 401
    change(app, ApiToken, write.id, revoked_at=None)
    change(app, User, ann.user_id, deleted_at=utcnow())
    assert client.get("/api/v1/destinations", headers=ann.write).status_code == 401


def test_a_session_cookie_alone_does_not_authenticate(client: FlaskClient, ann: Account) -> None:
    assert signup(client, "carl@example.org").status_code == 302  # signed in: the cookie is set
    assert client.get("/account/tokens").status_code == 200
    response = client.get("/api/v1/destinations")
    assert response.status_code == 401 and error_of(response) == "unauthorized"
    response = client.post("/api/v1/destinations", json={"email": "x@example.net"})  # no CSRF error either
    assert response.status_code == 401 and error_of(response) == "unauthorized"


def test_last_used_is_recorded_at_most_once_a_minute(app: Flask, client: FlaskClient, ann: Account) -> None:
    def last_used():  # type: ignore[no-untyped-def]
        return query(app, select(ApiToken.last_used_at).where(ApiToken.scope == "write"))[0]

    assert last_used() is None
    client.get("/api/v1/aliases", headers=ann.write)
    first = last_used()
    assert first is not None
    [token] = query(app, select(ApiToken).where(ApiToken.scope == "write", ApiToken.user_id == ann.user_id))
    recent = utcnow() - timedelta(seconds=30)
    change(app, ApiToken, token.id, last_used_at=recent)
    client.get("/api/v1/aliases", headers=ann.write)
    assert last_used() == recent
    change(app, ApiToken, token.id, last_used_at=utcnow() - timedelta(minutes=2))
    client.get("/api/v1/aliases", headers=ann.write)
    assert last_used() > recent


# --- scopes --------------------------------------------------------------------------------------


def test_a_read_token_may_only_get(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    assert client.get("/api/v1/aliases", headers=ann.read).status_code == 200
    assert client.get(f"/api/v1/aliases/{alias['id']}", headers=ann.read).status_code == 200
    assert client.get(f"/api/v1/aliases/{alias['id']}/activity", headers=ann.read).status_code == 200
    assert client.get("/api/v1/destinations", headers=ann.read).status_code == 200
    attempts = [
        client.post("/api/v1/aliases", json={"destination_ids": [ann.destination_id]}, headers=ann.read),
        client.patch(f"/api/v1/aliases/{alias['id']}", json={"enabled": False}, headers=ann.read),
        client.delete(f"/api/v1/aliases/{alias['id']}", headers=ann.read),
        client.post("/api/v1/destinations", json={"email": "new@example.net"}, headers=ann.read),
        client.patch(f"/api/v1/destinations/{ann.pending_id}", json={"email": "n@example.net"}, headers=ann.read),
        client.delete(f"/api/v1/destinations/{ann.destination_id}", headers=ann.read),
        client.post(f"/api/v1/destinations/{ann.pending_id}/resend", headers=ann.read),
    ]
    assert [(r.status_code, error_of(r)) for r in attempts] == [(403, "forbidden")] * len(attempts)
    assert len(query(app, select(Alias))) == 1 and len(query(app, select(Destination))) == 2
    assert query(app, select(Alias.enabled)) == [True]


# --- destinations --------------------------------------------------------------------------------


def test_destinations_list_add_get_change_resend_delete(client: FlaskClient, ann: Account, outbox) -> None:  # type: ignore[no-untyped-def]
    listed = client.get("/api/v1/destinations", headers=ann.write).get_json()["items"]
    assert [(d["email"], d["verified"]) for d in listed] == [
        ("inbox.ann@example.org", True),
        ("pending.ann@example.org", False),
    ]
    assert listed[0]["verified_at"].endswith("Z") and listed[1]["verified_at"] is None
    created = client.post("/api/v1/destinations", json={"email": " New@Example.NET "}, headers=ann.write)
    assert created.status_code == 201
    new = created.get_json()
    assert (new["email"], new["verified"]) == ("new@example.net", False)
    assert [m.recipient for m in outbox.sent] == ["new@example.net"]
    assert client.get(f"/api/v1/destinations/{new['id']}", headers=ann.write).get_json() == new
    duplicate = client.post("/api/v1/destinations", json={"email": "new@example.net"}, headers=ann.write)
    assert duplicate.status_code == 409 and error_of(duplicate) == "duplicate"
    bad = client.post("/api/v1/destinations", json={"email": "not an address"}, headers=ann.write)
    assert bad.status_code == 400 and error_of(bad) == "invalid_email"
    changed = client.patch(
        f"/api/v1/destinations/{ann.destination_id}", json={"email": "other@example.net"}, headers=ann.write
    )
    assert changed.status_code == 200
    assert (changed.get_json()["email"], changed.get_json()["verified"]) == ("other@example.net", False)
    assert [m.recipient for m in outbox.sent][1:] == ["other@example.net"]
    resent = client.post(f"/api/v1/destinations/{new['id']}/resend", headers=ann.write)
    assert resent.status_code == 202 and resent.get_json()["id"] == new["id"]
    assert [m.recipient for m in outbox.sent][2:] == ["new@example.net"]
    assert client.delete(f"/api/v1/destinations/{new['id']}", headers=ann.write).status_code == 204
    gone = client.get(f"/api/v1/destinations/{new['id']}", headers=ann.write)
    assert gone.status_code == 404 and error_of(gone) == "not_found"


def test_a_mail_service_that_fails_is_a_503_with_a_clear_code_never_a_500(
    app: Flask, client: FlaskClient, ann: Account
) -> None:
    """Issue 12.27: a sender that raises made adding a destination a 500."""
    from tests.web.test_destinations_pages import BrokenSender

    app.extensions["othermail.runtime"].sender = BrokenSender()
    created = client.post("/api/v1/destinations", json={"email": "new@example.net"}, headers=ann.write)
    assert created.status_code == 503 and error_of(created) == "mail_unavailable"
    assert "resend" in created.get_json()["error"]["message"]
    [row] = query(app, select(Destination).where(Destination.email == "new@example.net"))  # added, unverified
    resent = client.post(f"/api/v1/destinations/{row.id}/resend", headers=ann.write)
    assert resent.status_code == 503 and error_of(resent) == "mail_unavailable"


def test_resending_to_a_verified_destination_is_a_conflict(client: FlaskClient, ann: Account, outbox) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/api/v1/destinations/{ann.destination_id}/resend", headers=ann.write)
    assert response.status_code == 409 and error_of(response) == "already_verified"
    assert outbox.sent == []


@pytest.mark.parametrize("payload", [{}, {"email": 5}, {"email": "a@example.net", "extra": 1}, [], "a@b.c"])
def test_destination_bodies_are_checked(client: FlaskClient, ann: Account, payload: object) -> None:
    response = client.post("/api/v1/destinations", json=payload, headers=ann.write)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_a_paused_destination_says_so_and_resumes(app: Flask, client: FlaskClient, ann: Account, bob: Account) -> None:
    listed = client.get("/api/v1/destinations", headers=ann.read).get_json()["items"]
    assert {(d["paused"], d["paused_at"], d["pause_reason"]) for d in listed} == {(False, None, "")}
    from datetime import UTC, datetime

    change(
        app,
        Destination,
        ann.destination_id,
        paused_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
        pause_reason="The mailbox refused a forwarded message for good (General)",
        soft_bounce_count=2,
    )
    body = client.get(f"/api/v1/destinations/{ann.destination_id}", headers=ann.read).get_json()
    assert (body["paused"], body["paused_at"], body["pause_reason"]) == (
        True,
        "2026-11-20T08:30:00Z",
        "The mailbox refused a forwarded message for good (General)",
    )
    denied = client.post(f"/api/v1/destinations/{ann.destination_id}/resume", headers=ann.read)
    assert denied.status_code == 403 and error_of(denied) == "forbidden"
    foreign = client.post(f"/api/v1/destinations/{ann.destination_id}/resume", headers=bob.write)
    assert foreign.status_code == 404 and error_of(foreign) == "not_found"
    resumed = client.post(f"/api/v1/destinations/{ann.destination_id}/resume", headers=ann.write)
    assert resumed.status_code == 200
    assert (resumed.get_json()["paused"], resumed.get_json()["pause_reason"]) == (False, "")
    assert query(app, select(Destination.soft_bounce_count).where(Destination.id == ann.destination_id)) == [0]
    again = client.post(f"/api/v1/destinations/{ann.destination_id}/resume", headers=ann.write)
    assert again.status_code == 409 and error_of(again) == "not_paused"


# --- aliases -------------------------------------------------------------------------------------


def test_create_generated_and_custom_aliases(client: FlaskClient, ann: Account) -> None:
    generated = new_alias(client, ann)
    assert generated["address"].endswith("@othermail.example") and generated["status"] == "active"
    assert (generated["destination_ids"], generated["time_left_seconds"], generated["messages_left"]) == (
        [ann.destination_id],
        None,
        None,
    )
    custom = new_alias(
        client,
        ann,
        local_part="Shop.News",
        domain="alias.example",
        label="  shop ",
        note="n",
        expires_in_hours=48,
        max_messages=3,
        idle_days=7,
        expired_action="reject",
    )
    assert custom["address"] == "shop.news@alias.example"
    assert (custom["label"], custom["note"], custom["expired_action"]) == ("shop", "n", "reject")
    assert 47 * 3600 < custom["time_left_seconds"] <= 48 * 3600
    assert (custom["messages_left"], custom["max_messages"], custom["idle_days"]) == (3, 3, 7)
    assert 6 * 86400 < custom["idle_left_seconds"] <= 7 * 86400
    assert custom["expires_at"].endswith("Z")
    taken = client.post(
        "/api/v1/aliases",
        json={"destination_ids": [ann.destination_id], "local_part": "shop.news", "domain": "alias.example"},
        headers=ann.write,
    )
    assert taken.status_code == 409 and error_of(taken) == "taken"


def test_an_empty_body_creates_an_alias_to_every_verified_destination(
    app: Flask, client: FlaskClient, ann: Account
) -> None:
    """Issue 12.27: ``POST /api/v1/aliases`` with ``{}`` answered 400 "destination_ids is required",
    while the web app's one-click button forwards to the user's verified destinations."""
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        second = Destination(user_id=ann.user_id, email="second@real.example", verified_at=utcnow())
        db.add(second)
        db.commit()
        second_id = second.id
        db.close()
    response = client.post("/api/v1/aliases", json={}, headers=ann.write)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["destination_ids"] == sorted([ann.destination_id, second_id])  # not the unverified one
    assert created["address"].endswith("@othermail.example") and created["status"] == "active"
    labelled = client.post("/api/v1/aliases", json={"label": "shop"}, headers=ann.write)
    assert labelled.status_code == 201 and labelled.get_json()["label"] == "shop"


def test_an_empty_body_without_a_verified_destination_is_a_clear_400(
    app: Flask, client: FlaskClient, ann: Account
) -> None:
    change(app, Destination, ann.destination_id, verified_at=None)
    response = client.post("/api/v1/aliases", json={}, headers=ann.write)
    assert response.status_code == 400 and error_of(response) == "no_destination"
    assert "verified destination" in response.get_json()["error"]["message"]
    assert query(app, select(Alias)) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"destination_ids": []}, "invalid_request"),
        ({"destination_ids": ["1"]}, "invalid_request"),
        ({"destination_ids": [True]}, "invalid_request"),
        ({"destination_ids": [1], "colour": "red"}, "invalid_request"),
        ({"destination_ids": [1], "label": 5}, "invalid_request"),
        ({"destination_ids": [1], "label": "x" * 101}, "invalid_request"),
        ({"destination_ids": [1], "label": "a\x00b"}, "invalid_request"),
        ({"destination_ids": [1], "expired_action": "bounce"}, "invalid_request"),
        ({"destination_ids": [1], "expires_in_hours": "2"}, "invalid_request"),
        ({"destination_ids": [1], "expires_in_hours": 0}, "invalid_expiry"),
        ({"destination_ids": [1], "expires_in_hours": 10**30}, "invalid_expiry"),
        ({"destination_ids": [1], "idle_days": 366}, "invalid_expiry"),
        ({"destination_ids": [1], "max_messages": 0}, "invalid_expiry"),
        ({"destination_ids": [1], "domain": "elsewhere.example"}, "invalid_domain"),
        ({"destination_ids": [1], "local_part": "no spaces"}, "invalid_local_part"),
        ({"destination_ids": [9999]}, "no_destination"),
        ({"destination_ids": [2]}, "unverified_destination"),
    ],
)
def test_alias_bodies_are_checked(app: Flask, client: FlaskClient, ann: Account, payload: dict, code: str) -> None:
    assert (ann.destination_id, ann.pending_id) == (1, 2)
    response = client.post("/api/v1/aliases", json=payload, headers=ann.write)
    assert response.status_code == 400 and error_of(response) == code
    assert query(app, select(Alias)) == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"null", b"[1]"])
def test_malformed_json_is_invalid_request(client: FlaskClient, ann: Account, raw: bytes) -> None:
    response = client.post("/api/v1/aliases", data=raw, content_type="application/json", headers=ann.write)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_list_paginates_and_searches(client: FlaskClient, ann: Account) -> None:
    made = [new_alias(client, ann, label=f"label {n}") for n in range(5)]
    new_alias(client, ann, local_part="findme.100", label="shop")
    first = client.get("/api/v1/aliases?per_page=2", headers=ann.write).get_json()
    assert (first["page"], first["per_page"], first["total"], len(first["items"])) == (1, 2, 6, 2)
    last = client.get("/api/v1/aliases?per_page=2&page=3", headers=ann.write).get_json()
    assert [a["id"] for a in last["items"]] == [made[1]["id"], made[0]["id"]]  # newest first
    beyond = client.get("/api/v1/aliases?per_page=2&page=9", headers=ann.write).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 6)
    found = client.get("/api/v1/aliases?q=FINDME", headers=ann.write).get_json()
    assert [a["address"] for a in found["items"]] == ["findme.100@othermail.example"] and found["total"] == 1
    by_label = client.get("/api/v1/aliases?q=label%203", headers=ann.write).get_json()
    assert [a["id"] for a in by_label["items"]] == [made[3]["id"]]
    assert client.get("/api/v1/aliases?q=100%25", headers=ann.write).get_json()["total"] == 0  # % is literal
    default = client.get("/api/v1/aliases", headers=ann.write).get_json()
    assert (default["page"], default["per_page"], len(default["items"])) == (1, 50, 6)


@pytest.mark.parametrize(
    "args", ["per_page=101", "per_page=0", "page=0", "page=x", "per_page=-1", "page=1.5", "q=" + "a" * 101]
)
def test_bad_pagination_is_invalid_request(client: FlaskClient, ann: Account, args: str) -> None:
    response = client.get(f"/api/v1/aliases?{args}", headers=ann.write)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_get_patch_extend_and_delete_an_alias(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann, expires_in_hours=1, max_messages=2, label="old")
    url = f"/api/v1/aliases/{alias['id']}"
    assert client.get(url, headers=ann.write).get_json() == alias
    change(app, Destination, ann.pending_id, verified_at=utcnow())
    patched = client.patch(
        url,
        json={
            "label": "new",
            "note": "why",
            "enabled": False,
            "expired_action": "reject",
            "destination_ids": [ann.pending_id, ann.destination_id],
        },
        headers=ann.write,
    )
    assert patched.status_code == 200
    body = patched.get_json()
    assert (body["label"], body["note"], body["enabled"], body["status"], body["expired_action"]) == (
        "new",
        "why",
        False,
        "off",
        "reject",
    )
    assert body["destination_ids"] == sorted([ann.destination_id, ann.pending_id])
    change(app, Alias, alias["id"], message_count=2)
    assert client.get(url, headers=ann.write).get_json()["messages_left"] == 0
    extended = client.patch(
        url,
        json={"expires_in_hours": 72, "extra_messages": 10, "idle_days": 3, "enabled": True, "label": None},
        headers=ann.write,
    ).get_json()
    assert 71 * 3600 < extended["time_left_seconds"] <= 72 * 3600
    assert (extended["messages_left"], extended["max_messages"], extended["idle_days"]) == (10, 12, 3)
    assert (extended["status"], extended["label"], extended["note"]) == ("active", None, "why")
    permanent = client.patch(url, json={"permanent": True}, headers=ann.write).get_json()
    assert (permanent["expires_at"], permanent["max_messages"], permanent["idle_days"]) == (None, None, None)
    assert client.delete(url, headers=ann.write).status_code == 204
    assert error_of(client.get(url, headers=ann.write)) == "not_found"
    assert client.delete(url, headers=ann.write).status_code == 404
    assert client.get("/api/v1/aliases", headers=ann.write).get_json()["total"] == 0


def test_an_expired_alias_reports_its_status(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann, expires_in_hours=1)
    change(app, Alias, alias["id"], expires_at=utcnow() - timedelta(minutes=5))
    body = client.get(f"/api/v1/aliases/{alias['id']}", headers=ann.write).get_json()
    assert (body["status"], body["time_left_seconds"]) == ("expired", 0) and body["status_reason"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"label": "changed", "destination_ids": [9999]}, "no_destination"),
        ({"label": "changed", "expires_in_hours": 9000}, "invalid_expiry"),
        ({"label": "changed", "permanent": True, "extra_messages": 2}, "invalid_request"),
        ({"label": "changed", "enabled": "no"}, "invalid_request"),
        ({"label": "changed", "destination_ids": [2]}, "unverified_destination"),
        ({"label": "changed", "address": "x@othermail.example"}, "invalid_request"),
    ],
)
def test_a_rejected_patch_changes_nothing(
    app: Flask, client: FlaskClient, ann: Account, payload: dict, code: str
) -> None:
    alias = new_alias(client, ann, label="kept")
    response = client.patch(f"/api/v1/aliases/{alias['id']}", json=payload, headers=ann.write)
    assert response.status_code == 400 and error_of(response) == code
    assert client.get(f"/api/v1/aliases/{alias['id']}", headers=ann.write).get_json() == alias


def test_activity_lists_deliveries_newest_first_with_totals(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    now = utcnow()
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        for n, outcome in enumerate(["forwarded", "dropped-spam", "forwarded"]):
            db.add(
                Delivery(
                    inbound_message_id=f"<{n}@x>",
                    recipient=alias["address"],
                    alias_id=alias["id"],
                    destination_id=ann.destination_id if outcome == "forwarded" else None,
                    outcome=outcome,
                    subject=f"s{n}",
                    mail_from="a@example.com",
                    created_at=now + timedelta(seconds=n),
                )
            )
        db.commit()
        db.close()
    body = client.get(f"/api/v1/aliases/{alias['id']}/activity", headers=ann.write).get_json()
    assert body["totals"] == {"forwarded": 2, "blocked": 1}
    assert [(d["subject"], d["blocked"]) for d in body["items"]] == [("s2", False), ("s1", True), ("s0", False)]
    limited = client.get(f"/api/v1/aliases/{alias['id']}/activity?limit=1", headers=ann.write).get_json()
    assert [d["subject"] for d in limited["items"]] == ["s2"]
    bad = client.get(f"/api/v1/aliases/{alias['id']}/activity?limit=201", headers=ann.write)
    assert bad.status_code == 400 and error_of(bad) == "invalid_request"


# --- other users, unknown paths, methods, limits ---------------------------------------------------


def test_another_users_ids_are_not_found(client: FlaskClient, ann: Account, bob: Account) -> None:
    alias = new_alias(client, ann)
    a, d = alias["id"], ann.pending_id
    attempts = [
        client.get(f"/api/v1/aliases/{a}", headers=bob.write),
        client.patch(f"/api/v1/aliases/{a}", json={"label": "mine"}, headers=bob.write),
        client.delete(f"/api/v1/aliases/{a}", headers=bob.write),
        client.get(f"/api/v1/aliases/{a}/activity", headers=bob.write),
        client.get(f"/api/v1/destinations/{d}", headers=bob.write),
        client.patch(f"/api/v1/destinations/{d}", json={"email": "bob2@example.net"}, headers=bob.write),
        client.delete(f"/api/v1/destinations/{d}", headers=bob.write),
        client.post(f"/api/v1/destinations/{d}/resend", headers=bob.write),
    ]
    assert [(r.status_code, error_of(r)) for r in attempts] == [(404, "not_found")] * len(attempts)
    stolen = client.post("/api/v1/aliases", json={"destination_ids": [ann.destination_id]}, headers=bob.write)
    assert stolen.status_code == 400 and error_of(stolen) == "no_destination"
    assert client.get(f"/api/v1/aliases/{a}", headers=ann.write).get_json() == alias
    assert bob.destination_id not in [
        x["id"] for x in client.get("/api/v1/destinations", headers=ann.write).get_json()["items"]
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing",
        "/api/v1/aliases/abc",
        "/api/v1/aliases/-1",
        "/api/v1/aliases/99999999999999999999",
        "/api/v1",
        "/api/v1/",
    ],
)
def test_unknown_paths_are_json_404(client: FlaskClient, ann: Account, path: str) -> None:
    response = client.get(path, headers=ann.write)
    assert response.status_code == 404 and error_of(response) == "not_found"


def test_a_wrong_method_is_json_405_with_allow(client: FlaskClient, ann: Account) -> None:
    response = client.put("/api/v1/aliases", json={}, headers=ann.write)
    assert response.status_code == 405 and error_of(response) == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert error_of(client.post("/api/v1/aliases/1/activity", headers=ann.write)) == "method_not_allowed"


def test_pages_outside_the_api_keep_their_html_errors(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404 and not response.is_json


def test_too_large_a_body_is_json_413(client: FlaskClient, ann: Account) -> None:
    response = client.post(
        "/api/v1/aliases",
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        content_type="application/json",
        headers=ann.write,
    )
    assert response.status_code == 413 and error_of(response) == "payload_too_large"


def test_api_calls_are_rate_limited_per_token_with_retry_after(
    app: Flask, client: FlaskClient, ann: Account, bob: Account
) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "api": (3, 60)}
    assert [client.get("/api/v1/aliases", headers=ann.write).status_code for _ in range(3)] == [200] * 3
    limited = client.get("/api/v1/destinations", headers=ann.write)
    assert limited.status_code == 429 and error_of(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get("/api/v1/aliases", headers=ann.read).status_code == 200  # another token has its own count
    assert client.get("/api/v1/aliases", headers=bob.write).status_code == 200


def test_a_service_rate_limit_is_429_with_retry_after(app: Flask, client: FlaskClient, ann: Account) -> None:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "alias-create": (1, 3600)}
    new_alias(client, ann)
    limited = client.post("/api/v1/aliases", json={"destination_ids": [ann.destination_id]}, headers=ann.write)
    assert limited.status_code == 429 and error_of(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600


def test_responses_are_not_cached(client: FlaskClient, ann: Account) -> None:
    response = client.get("/api/v1/aliases", headers=ann.write)
    assert response.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in response.headers


def test_an_alias_name_and_who_may_write_are_set_through_the_api(client: FlaskClient, ann: Account) -> None:
    """Two-way aliases: the alias's name on mail it sends and its sender mode (issue 14)."""
    alias = new_alias(client, ann)
    changed = client.patch(
        f"/api/v1/aliases/{alias['id']}",
        json={"display_name": "Shopping", "sender_mode": "allow-only"},
        headers=ann.write,
    )
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["display_name"], changed.get_json()["sender_mode"]) == ("Shopping", "allow-only")
    label_only = client.patch(f"/api/v1/aliases/{alias['id']}", json={"label": "x"}, headers=ann.write).get_json()
    assert (label_only["display_name"], label_only["sender_mode"]) == ("Shopping", "allow-only")  # kept
    for body in ({"sender_mode": "everyone"}, {"display_name": "bad\x01name", "label": "changed"}):
        refused = client.patch(f"/api/v1/aliases/{alias['id']}", json=body, headers=ann.write)
        assert refused.status_code == 400
    assert client.get(f"/api/v1/aliases/{alias['id']}", headers=ann.read).get_json()["label"] == "x"
