"""Issue 12.3: a session is a server-side record; sign-out, password change and reset end it for every copy."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from models import ApiToken, UserSession, utcnow
from tests.web.conftest import PASSWORD, post, signup


def signed_in(app: Flask, email: str = "ann@example.org", user_agent: str = "TestBrowser/1") -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    response = post(client, "/signin", {"email": email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session", domain="othermail.test")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value, domain="othermail.test")
    return thief


def rows(app: Flask) -> list[UserSession]:
    with app.app_context():
        from web.db import session

        return list(session().scalars(select(UserSession).order_by(UserSession.id)))


def csrf_of(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def test_a_copied_cookie_stops_working_after_sign_out_and_cannot_create_a_token(app: Flask) -> None:
    signup(app.test_client())
    ann = signed_in(app)
    thief = copy_of(app, ann)
    assert thief.get("/account/").status_code == 200  # a copy works while the session lives
    token = csrf_of(thief, "/account/tokens")

    assert post(ann, "/signout", {}, page="/account/").status_code == 302

    created = thief.post("/account/tokens", data={"csrf_token": token, "name": "stolen", "scope": "write"})
    assert created.status_code == 302 and "/signin" in created.headers["Location"]
    assert thief.get("/account/").status_code == 302
    with app.app_context():
        from web.db import session

        assert session().scalar(select(func.count()).select_from(ApiToken)) == 0


def test_the_cookie_holds_a_random_id_and_the_database_only_its_hash(app: Flask) -> None:
    signup(app.test_client())
    ann = signed_in(app)
    with app.test_request_context("/"):
        interface = app.session_interface
        data = interface.get_signing_serializer(app).loads(ann.get_cookie("session", domain="othermail.test").value)
    assert "uid" not in data and len(data["sid"]) >= 40
    (row,) = [r for r in rows(app) if r.user_agent == "TestBrowser/1"]
    assert row.token_hash == hashlib.sha256(data["sid"].encode()).hexdigest() != data["sid"]
    assert row.ip == "127.0.0.1"


def test_signing_in_again_starts_a_new_session(app: Flask) -> None:
    """A session id a visitor planted before signing in is not the one used after."""
    signup(app.test_client())
    ann = signed_in(app)
    first = ann.get_cookie("session", domain="othermail.test").value
    post(ann, "/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert ann.get_cookie("session", domain="othermail.test").value != first


def test_idle_and_absolute_lifetimes_end_a_session(app: Flask) -> None:
    signup(app.test_client())
    idle, old = signed_in(app, user_agent="idle"), signed_in(app, user_agent="old")
    assert app.config["SESSION_IDLE_LIFETIME"] == 2 * 86400
    assert app.config["PERMANENT_SESSION_LIFETIME"] == 14 * 86400
    now = utcnow()
    with app.app_context():
        from web.db import session

        session().execute(
            update(UserSession)
            .where(UserSession.user_agent == "idle")
            .values(last_seen_at=now - timedelta(days=2, minutes=1))
        )
        session().execute(
            update(UserSession)
            .where(UserSession.user_agent == "old")
            .values(created_at=now - timedelta(days=14, minutes=1), last_seen_at=now)
        )
        session().commit()
    assert idle.get("/account/").status_code == 302
    assert old.get("/account/").status_code == 302
    assert not {r.user_agent for r in rows(app)} & {"idle", "old"}  # both rows are gone


def test_last_seen_is_written_at_most_once_a_minute(app: Flask) -> None:
    signup(app.test_client())
    ann = signed_in(app)
    (before,) = [r for r in rows(app) if r.user_agent == "TestBrowser/1"]
    ann.get("/account/")
    ann.get("/account/")
    (after,) = [r for r in rows(app) if r.user_agent == "TestBrowser/1"]
    assert after.last_seen_at == before.last_seen_at
    with app.app_context():
        from web.db import session

        session().execute(
            update(UserSession)
            .where(UserSession.id == after.id)
            .values(last_seen_at=after.last_seen_at - timedelta(minutes=5))
        )
        session().commit()
    ann.get("/account/")
    (seen,) = [r for r in rows(app) if r.id == after.id]
    assert seen.last_seen_at > after.last_seen_at


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(app: Flask) -> None:
    signup(app.test_client())
    ann, laptop = signed_in(app, user_agent="phone"), signed_in(app, user_agent="laptop")
    thief = copy_of(app, laptop)
    new = "another long passphrase"
    response = post(ann, "/account/password", {"current": PASSWORD, "password": new, "confirm": new}, page="/account/")
    assert response.status_code == 302
    assert ann.get("/account/").status_code == 200
    assert laptop.get("/account/").status_code == 302 and thief.get("/account/").status_code == 302
    assert [r.user_agent for r in rows(app)] == ["phone"]


def test_the_account_page_lists_sessions_and_ends_another(app: Flask) -> None:
    signup(app.test_client())
    signup(app.test_client(), "bob@example.org")
    ann, laptop = signed_in(app, user_agent="Phone Browser"), signed_in(app, user_agent="Laptop Browser")
    bob = signed_in(app, "bob@example.org", user_agent="Bob Browser")
    page = ann.get("/account/").get_data(as_text=True)
    assert "Phone Browser" in page and "Laptop Browser" in page and "Bob Browser" not in page
    assert "this session" in page
    (laptop_row,) = [r for r in rows(app) if r.user_agent == "Laptop Browser"]
    (bob_row,) = [r for r in rows(app) if r.user_agent == "Bob Browser"]
    assert post(ann, f"/account/sessions/{bob_row.id}/end", {}, page="/account/").status_code == 404
    assert bob.get("/account/").status_code == 200
    assert post(ann, f"/account/sessions/{laptop_row.id}/end", {}, page="/account/").status_code == 302
    assert laptop.get("/account/").status_code == 302
    assert ann.get("/account/").status_code == 200


def test_deleting_the_account_ends_every_session(app: Flask) -> None:
    signup(app.test_client())
    ann, other = signed_in(app, user_agent="one"), signed_in(app, user_agent="two")
    response = post(ann, "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}, page="/account/")
    assert response.status_code == 302
    assert other.get("/account/").status_code == 302
    assert rows(app) == []


def test_the_account_page_ends_every_other_session_at_once_and_keeps_this_one(app: Flask) -> None:
    first = app.test_client()
    signup(first)
    signup(app.test_client(), "bob@example.org")
    ann = signed_in(app, user_agent="Phone Browser")
    laptop, tablet = signed_in(app, user_agent="Laptop Browser"), signed_in(app, user_agent="Tablet Browser")
    thief = copy_of(app, tablet)
    bob = signed_in(app, "bob@example.org", user_agent="Bob Browser")
    page = ann.get("/account/").get_data(as_text=True)
    assert 'action="/account/sessions/end-others"' in page
    response = post(ann, "/account/sessions/end-others", {}, page="/account/")
    assert response.status_code == 302
    assert "3 other sessions were ended" in ann.get("/account/").get_data(as_text=True)  # sign-up's too
    assert [c.get("/account/").status_code for c in (first, laptop, tablet, thief)] == [302, 302, 302, 302]
    assert ann.get("/account/").status_code == 200 and bob.get("/account/").status_code == 200
    (kept,) = [r for r in rows(app) if r.user_agent == "Phone Browser"]
    assert [r.user_agent for r in rows(app) if r.user_id == kept.user_id] == ["Phone Browser"]
    assert "Bob Browser" in [r.user_agent for r in rows(app)]
    alone = ann.get("/account/").get_data(as_text=True)
    assert 'action="/account/sessions/end-others"' not in alone  # nothing left to end
