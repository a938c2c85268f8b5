"""Password reset by email: the token (issue 12.8) and the API tokens it can revoke (issue 12.9)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.senders import MemorySender
from models import ApiToken, User
from tests.web.conftest import PASSWORD, links_in, post, signup

REPO = Path(__file__).resolve().parents[2]
NEW = "a brand new passphrase"


def reset_link(app: Flask, outbox: MemorySender, email: str = "ann@example.org") -> str:
    outbox.sent.clear()
    post(app.test_client(), "/reset", {"email": email})
    (message,) = outbox.sent
    (link,) = [link for link in links_in(message.raw) if "/reset/" in link]
    return link.split("othermail.test", 1)[1]


def stored_user(app: Flask) -> User:
    with app.app_context():
        from web.db import session

        return session().scalars(select(User).where(User.email == "ann@example.org")).one()


def api_token(app: Flask) -> str:
    with app.app_context():
        from web.db import session
        from web.services import tokens

        _, secret = tokens.create(session(), stored_user(app), "script", "read", None)
        return secret


def test_the_token_shows_nothing_of_the_password_hash(app: Flask, client: FlaskClient,
                                                      outbox: MemorySender) -> None:
    signup(client)
    path = reset_link(app, outbox)
    token = path.removeprefix("/reset/")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    password_hash = stored_user(app).password_hash
    assert password_hash[-16:] not in token and password_hash[-16:] not in json.dumps(payload)
    salt_and_hash = password_hash.rsplit("$", 2)[-2:]
    assert not any(part[:8] in json.dumps(payload) for part in salt_and_hash)
    assert re.fullmatch(r"[0-9a-f]{32}", payload["fp"])


def test_a_link_dies_when_the_password_changes(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    path = reset_link(app, outbox)
    post(client, "/account/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}, page="/account/")
    assert app.test_client().get(path).status_code == 410


def test_the_token_leaves_the_address_bar_at_once(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    path = reset_link(app, outbox)
    visitor = app.test_client()
    opened = visitor.get(path)
    token = path.removeprefix("/reset/")
    assert opened.status_code == 302 and token not in opened.headers["Location"]
    form = visitor.get(opened.headers["Location"])
    assert form.status_code == 200 and token not in form.get_data(as_text=True)


def test_secret_links_are_kept_out_of_the_access_logs() -> None:
    site = (REPO / "deploy" / "ec2" / "nginx" / "othermail.conf").read_text()
    block = re.search(r"location ~ \^/\(reset\|destinations/verify\)/ \{(.*?)\n    \}", site, re.S)
    assert block, "no location for the links that carry a token"
    assert "access_log off;" in block.group(1) and "uwsgi_pass unix:/run/othermail/uwsgi.sock;" in block.group(1)
    ini = (REPO / "deploy" / "ec2" / "uwsgi" / "othermail.ini").read_text()
    assert "\ndisable-logging = true\n" in ini


def test_the_reset_form_offers_to_revoke_the_api_tokens_and_does_by_default(
        app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    secret = api_token(app)
    assert app.test_client().get("/api/v1/aliases", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    visitor = app.test_client()
    visitor.get(reset_link(app, outbox))
    page = visitor.get("/new-password").get_data(as_text=True)
    assert re.search(r'<input type="checkbox" name="revoke_tokens" value="1" checked>', page)
    response = post(visitor, "/new-password", {"password": NEW, "confirm": NEW, "revoke_tokens": "1"})
    assert response.status_code == 302
    assert app.test_client().get("/api/v1/aliases", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with app.app_context():
        from web.db import session

        (token,) = session().scalars(select(ApiToken)).all()
        assert token.revoked_at is not None


def test_the_api_tokens_stay_when_the_box_is_unticked(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    signup(client)
    secret = api_token(app)
    visitor = app.test_client()
    visitor.get(reset_link(app, outbox))
    assert post(visitor, "/new-password", {"password": NEW, "confirm": NEW}).status_code == 302
    assert app.test_client().get("/api/v1/aliases", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
