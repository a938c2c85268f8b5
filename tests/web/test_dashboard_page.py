"""The dashboard: counts, a 30-day SVG chart drawn on the server, the latest mail, one-click create."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Alias, Delivery, Destination, User, utcnow
from tests.web.conftest import post, signup


def seed(app: Flask, email: str, local: str) -> None:
    """Three forwarded and one blocked today, two forwarded five days ago, one 40 days ago."""
    now = utcnow()
    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == email)).one()
        home = Destination(user_id=user.id, email=f"home-{local}@real.example", verified_at=now)
        pending = Destination(user_id=user.id, email=f"pending-{local}@real.example")
        shop = Alias(address=f"{local}@othermail.example", user_id=user.id)
        gone = Alias(address=f"{local}-gone@othermail.example", user_id=user.id, deleted_at=now, enabled=False)
        shop.destinations.append(home)
        db.add_all([home, pending, shop, gone])
        db.flush()
        rows = [(0, "forwarded", f"{local} today {n}") for n in range(3)] + [(0, "dropped-spam", f"{local} spam")]
        rows += [(5, "forwarded", f"{local} older {n}") for n in range(2)] + [(40, "forwarded", f"{local} ancient")]
        for n, (days_ago, outcome, subject) in enumerate(rows):
            db.add(
                Delivery(
                    inbound_message_id=f"{local}-{n}",
                    recipient=shop.address,
                    alias_id=shop.id,
                    destination_id=home.id if outcome == "forwarded" else None,
                    outcome=outcome,
                    reason=outcome,
                    mail_from="sender@store.example",
                    subject=subject,
                    created_at=now - timedelta(days=days_ago, seconds=n),
                )
            )
        db.commit()


def card(page: str, name: str) -> list[str]:
    match = re.search(rf'data-count="{name}">(.*?)</div>', page, re.S)
    assert match, name
    return re.sub(r"<[^>]+>", " ", match.group(1)).split()


def count(page: str, name: str) -> int:
    match = re.search(rf'data-count="{name}">.*?<strong[^>]*>(\d+)</strong>', page, re.S)
    assert match, name
    return int(match.group(1))


def test_the_dashboard_needs_a_session(client: FlaskClient) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_home_sends_a_signed_in_user_to_the_dashboard(client: FlaskClient) -> None:
    assert signup(client).status_code == 302
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard")


def test_an_empty_dashboard_has_thirty_empty_days_and_the_new_alias_button(client: FlaskClient) -> None:
    assert signup(client).status_code == 302
    response = client.get("/dashboard")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.count('<g class="day">') == 30
    assert len(re.findall(r'<rect class="forwarded"[^>]* height="0.0"', page)) == 30
    assert count(page, "live") == 0 and count(page, "forwarded") == 0
    assert re.search(r'<form class="inline one-click" method="post" action="/aliases/new">', page)
    assert "No verified destination yet" in page and "No mail yet." in page


def test_seeded_counts_chart_and_activity(app: Flask, client: FlaskClient) -> None:
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    assert signup(client, "ann@example.org").status_code == 302
    seed(app, "ann@example.org", "ann")
    seed(app, "bob@example.org", "bob")
    response = client.get("/dashboard")
    page = response.get_data(as_text=True)

    assert count(page, "live") == 1 and "of 1 kept (at most 200)" in " ".join(card(page, "live"))
    assert card(page, "destinations") == ["Destinations", "1", "verified,", "1", "unverified"]
    assert count(page, "forwarded") == 5 and count(page, "blocked") == 1

    svg = re.search(r"<svg class=\"chart\".*?</svg>", page, re.S)
    assert svg
    groups = re.findall(r'<g class="day">(.*?)</g>', svg.group(0), re.S)
    assert len(groups) == 30
    titles = [re.search(r"<title>(.*?)</title>", g).group(1) for g in groups]  # type: ignore[union-attr]
    today = utcnow().date()
    assert titles[-1] == f"{today.isoformat()}: 3 forwarded, 1 blocked"
    assert titles[-6] == f"{(today - timedelta(days=5)).isoformat()}: 2 forwarded, 0 blocked"
    assert titles[0] == f"{(today - timedelta(days=29)).isoformat()}: 0 forwarded, 0 blocked"
    assert sum(1 for t in titles if t.endswith(": 0 forwarded, 0 blocked")) == 28
    heights = [float(re.search(r'class="forwarded"[^>]* height="([\d.]+)"', g).group(1)) for g in groups]  # type: ignore[union-attr]
    assert heights[-1] > heights[-6] > 0 and heights.count(0.0) == 28
    blocked = [float(re.search(r'class="blocked"[^>]* height="([\d.]+)"', g).group(1)) for g in groups]  # type: ignore[union-attr]
    assert 0 < blocked[-1] < heights[-1] and blocked.count(0.0) == 29

    activity = re.search(r'<table class="activity">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "ann today 0" in activity and "ann spam" in activity and "ann ancient" in activity
    assert "bob" not in activity
    assert '<span class="tag bad">dropped-spam</span>' in activity
    assert "<script" not in page and "style=" not in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_new_alias_button_creates_one(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    seed(app, "ann@example.org", "ann")
    response = post(client, "/aliases/new", {}, page="/dashboard")
    assert response.status_code == 302 and re.search(r"/aliases/\d+$", response.headers["Location"])
    page = client.get("/dashboard").get_data(as_text=True)
    assert count(page, "live") == 2


def test_a_paused_destination_puts_a_warning_on_the_dashboard(app: Flask, client: FlaskClient) -> None:
    assert signup(client).status_code == 302
    seed(app, "ann@example.org", "shop")
    assert 'data-warning="paused"' not in client.get("/dashboard").get_data(as_text=True)
    with app.app_context():
        from web.db import session

        home = session().scalars(select(Destination).where(Destination.email == "home-shop@real.example")).one()
        home.paused_at, home.pause_reason = utcnow(), "The mailbox refused a forwarded message for good"
        session().commit()
        home_id = home.id
    page = client.get("/dashboard").get_data(as_text=True)
    warning = re.search(r'<p class="error" data-warning="paused">(.*?)</p>', page, re.S)
    assert warning, page
    assert f'href="/destinations/{home_id}">home-shop@real.example</a>' in warning.group(1)
    assert 'href="/destinations/">resume it</a>' in warning.group(1)


def test_live_aliases_count_only_those_that_forward_now_and_the_counters_say_what_they_count(
    app: Flask, client: FlaskClient
) -> None:
    """Issue 12.23: "Live aliases" counted expired and switched-off aliases; "Delivered" and
    "Forwarded" could not be told apart."""
    assert signup(client, "ann@example.org").status_code == 302
    now = utcnow()
    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == "ann@example.org")).one()
        home = Destination(user_id=user.id, email="home@real.example", verified_at=now)
        paused = Destination(user_id=user.id, email="paused@real.example", verified_at=now, paused_at=now)
        unverified = Destination(user_id=user.id, email="new@real.example")
        aliases = {
            "active": (True, None, None, [home]),
            "both": (True, None, None, [home, paused]),
            "off": (False, None, None, [home]),
            "expired": (True, now - timedelta(hours=1), None, [home]),
            "used-up": (True, None, 1, [home]),
            "paused-only": (True, None, None, [paused]),
            "unverified-only": (True, None, None, [unverified]),
        }
        for local, (enabled, expires_at, max_messages, targets) in aliases.items():
            alias = Alias(
                address=f"{local}@othermail.example",
                user_id=user.id,
                enabled=enabled,
                expires_at=expires_at,
                max_messages=max_messages,
                message_count=max_messages or 0,
            )
            alias.destinations.extend(targets)
            db.add(alias)
        db.add(Alias(address="gone@othermail.example", user_id=user.id, deleted_at=now, enabled=False))
        db.commit()
        shop = db.scalars(select(Alias).where(Alias.address == "active@othermail.example")).one()
        shop.message_count = 1
        shop.forwarded_count = 1
        db.add(
            Delivery(
                inbound_message_id="m1",
                recipient=shop.address,
                alias_id=shop.id,
                destination_id=home.id,
                destination_key=home.id,
                outcome="forwarded",
                reason="ok",
                created_at=now,
            )
        )
        db.commit()
        shop_id = shop.id
    page = client.get("/dashboard").get_data(as_text=True)
    assert count(page, "live") == 2  # "active" and "both": on, not expired, a destination that takes mail
    live = " ".join(card(page, "live"))
    assert live.startswith("Forwarding aliases 2") and "of 7 kept (at most 200)" in live
    forwarded = " ".join(card(page, "forwarded"))
    assert forwarded.startswith("Copies forwarded, 30 days 1") and "one per destination" in forwarded

    detail = client.get(f"/aliases/{shop_id}").get_data(as_text=True)
    assert "Delivered" not in detail
    assert "Accepted" in detail and "count toward the message limit" in detail
    assert "Copies forwarded" in detail and "one per destination" in detail
    assert "Delivered" not in client.get("/aliases/").get_data(as_text=True)
