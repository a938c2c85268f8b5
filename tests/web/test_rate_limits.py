"""Abuse limits on the pages: sign-up, password reset and alias creation answer 429 with a clear
message once over their limit, and count per client or per user, not globally."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from forwarder.adapters.senders import MemorySender
from tests.support.factories import add_destination, user_id
from tests.web.conftest import PASSWORD, post, signup
from tests.web.test_aliases_pages import LIST, NEW, Ann, ann, new_id  # noqa: F401


def test_signup_is_limited_per_client_address(app: Flask) -> None:
    app.config["RATE_LIMITS"] = {"signup": (2, 3600)}
    codes = [signup(app.test_client(), f"user{n}@example.org").status_code for n in range(3)]
    assert codes == [302, 302, 429]
    page = signup(app.test_client(), "late@example.org").get_data(as_text=True)
    assert "Too many attempts. Try again in" in page
    other_ip = app.test_client()
    other_ip.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert signup(other_ip, "elsewhere@example.org").status_code == 302


def test_password_reset_mails_are_limited(app: Flask, client: FlaskClient, outbox: MemorySender) -> None:
    app.config["RATE_LIMITS"] = {"signup": (5, 3600), "reset": (2, 3600)}
    signup(client)
    fresh = app.test_client()
    codes = [post(fresh, "/reset", {"email": "ann@example.org"}).status_code for _ in range(3)]
    assert codes[-1] == 429 and all(code != 429 for code in codes[:-1])
    assert len(outbox.sent) == 2


def test_alias_creation_is_limited_per_user(app: Flask, ann: Ann) -> None:
    app.config["RATE_LIMITS"] = {"alias-create": (2, 3600), "signup": (5, 3600)}
    new_id(post(ann.client, NEW, {}, page=LIST))
    new_id(post(ann.client, NEW, {}, page=LIST))
    response = post(ann.client, NEW, {}, page=LIST)
    assert response.status_code == 429
    assert "Too many new aliases; try again in" in response.get_data(as_text=True)
    bob = app.test_client()
    signup(bob, "bob@example.org", PASSWORD)
    add_destination(app, user_id(app, "bob@example.org"), "bob@real.example")
    new_id(post(bob, NEW, {}, page=LIST))  # Bob's own allowance is untouched


def test_pruning_keeps_the_forwarders_current_mail_windows(app: Flask, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Mail limits (forwarder/flows/mail_limits.py) share the table; a day window is current for up to a day."""
    from sqlalchemy import select

    from models import RateLimitHit
    from web import ratelimit
    from web.db import session

    midnight = 1893542400  # 2030-01-03 00:00 UTC
    now = midnight + 86399  # the worst moment: the day window is as old as it gets
    monkeypatch.setattr(ratelimit.time, "time", lambda: float(now))
    app.config["RATE_LIMITS"] = {"signin": (1, 900)}
    with app.app_context():
        db = session()
        db.add_all(
            [
                RateLimitHit(key="mail:alias:1:day", window_start=midnight, count=5),
                RateLimitHit(key="mail:user:1:hour", window_start=midnight + 23 * 3600, count=5),
                RateLimitHit(key="mail:alias:2:day", window_start=midnight - 86400, count=5),
            ]
        )
        db.commit()
        assert ratelimit.hit("signin", "203.0.113.7") is None
        assert ratelimit.hit("signin", "203.0.113.7") == 1  # over the limit: this is when it prunes
        left = {(h.key, h.window_start) for h in session().scalars(select(RateLimitHit))}
    assert ("mail:alias:1:day", midnight) in left and ("mail:user:1:hour", midnight + 23 * 3600) in left
    assert ("mail:alias:2:day", midnight - 86400) not in left  # yesterday's window is gone
