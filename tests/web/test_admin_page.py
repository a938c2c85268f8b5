"""The admin page: totals per outcome, users and aliases, the latest outcomes; admins only."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Alias, Delivery, Destination, User, utcnow
from tests.web.conftest import signup

DESTINATION = "hidden-mailbox@real.example"


def make_admin(app: Flask, email: str) -> None:
    with app.app_context():
        from web.db import session

        session().scalars(select(User).where(User.email == email)).one().is_admin = True
        session().commit()


def seed(app: Flask) -> None:
    """Deliveries an hour, two days and forty days old, for two aliases."""
    now = utcnow()
    with app.app_context():
        from web.db import session

        db = session()
        owner = db.scalars(select(User).where(User.email == "bob@example.org")).one()
        destination = Destination(user_id=owner.id, email=DESTINATION, verified_at=now)
        shop = Alias(address="shop@othermail.example", user_id=owner.id, message_count=7, forwarded_count=5,
                     blocked_count=2)
        gone = Alias(address="gone@othermail.example", user_id=owner.id, deleted_at=now, enabled=False)
        shop.destinations.append(destination)
        db.add_all([destination, shop, gone])
        db.flush()
        ages = {
            "forwarded": [timedelta(hours=1), timedelta(hours=2), timedelta(days=2), timedelta(days=40)],
            "dropped-spam": [timedelta(hours=3), timedelta(days=10), timedelta(days=10)],
            "failed-rejected": [timedelta(minutes=5)],
            "dropped-unknown-alias": [timedelta(days=45)],
        }
        n = 0
        for outcome, when in ages.items():
            for age in when:
                n += 1
                reason = f"554 Message rejected: {DESTINATION} does not exist" if outcome == "failed-rejected" else outcome
                db.add(Delivery(inbound_message_id=f"m{n}", recipient=shop.address, alias_id=shop.id,
                                destination_key=n, outcome=outcome, reason=reason, created_at=now - age,
                                mail_from="sender@store.example", subject="An order"))
        db.commit()


def totals(page: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(r'<tr data-outcome="([^"]+)">.*?<td class="day">(\d+)</td>\s*<td class="month">(\d+)</td>',
                      page, re.S)
    return {outcome: (int(day), int(month)) for outcome, day, month in rows}


def test_anonymous_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_a_user_who_is_not_an_admin_gets_403(client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    assert client.get("/admin/").status_code == 403
    assert 'href="/admin/"' not in client.get("/account/").get_data(as_text=True)


def test_an_admin_sees_totals_users_aliases_and_outcomes_without_destinations(app: Flask, client: FlaskClient) -> None:
    assert signup(app.test_client(), "bob@example.org").status_code == 302
    assert signup(client, "ann@example.org").status_code == 302
    make_admin(app, "ann@example.org")
    seed(app)

    response = client.get("/admin/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert totals(page) == {
        "forwarded": (2, 3),
        "dropped-spam": (1, 3),
        "failed-rejected": (1, 1),
    }
    assert "bob@example.org" in page and "ann@example.org" in page
    assert re.search(r"ann@example.org.*?tag ok\">admin", page, re.S)
    assert "shop@othermail.example" in page and "gone@othermail.example" in page
    assert re.search(r"gone@othermail.example</td>.*?deleted</span>", page, re.S)
    assert page.count('<td class="address">shop@othermail.example</td>') == 1 + 9  # the alias row and its 9 outcomes
    assert DESTINATION not in page and "[address]" in page
    assert 'href="/admin/"' in page  # the nav shows the link to admins


def test_users_and_aliases_are_paginated(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    make_admin(app, "ann@example.org")
    with app.app_context():
        from web.db import session

        db = session()
        owner = db.scalars(select(User).where(User.email == "ann@example.org")).one()
        start = utcnow() - timedelta(days=1)
        db.add_all(Alias(address=f"a{n:02d}@othermail.example", user_id=owner.id, created_at=start + timedelta(minutes=n))
                   for n in range(60))
        db.commit()
    first = client.get("/admin/").get_data(as_text=True)
    assert "a59@othermail.example" in first and "a09@othermail.example" not in first
    assert "page 1 of 2" in first
    second = client.get("/admin/?aliases=2").get_data(as_text=True)
    assert "a09@othermail.example" in second and "a59@othermail.example" not in second
    assert "page 2 of 2" in second


def test_the_admin_queries_work_on_every_backend(session) -> None:  # type: ignore[no-untyped-def]
    from web.services import admin

    now = utcnow()
    owner = User(email="bob@example.org")
    session.add(owner)
    session.flush()
    alias = Alias(address="shop@othermail.example", user_id=owner.id)
    session.add_all([alias, Alias(address="old@othermail.example", user_id=owner.id, deleted_at=now)])
    session.flush()
    for n, (outcome, age) in enumerate([("forwarded", timedelta(hours=1)), ("forwarded", timedelta(days=3)),
                                        ("dropped-spam", timedelta(days=31))]):
        session.add(Delivery(inbound_message_id=f"m{n}", recipient=alias.address, alias_id=alias.id,
                             outcome=outcome, reason=f"to {DESTINATION}", created_at=now - age))
    session.commit()
    assert [(t.outcome, t.day, t.month) for t in admin.totals(session, now)] == [("forwarded", 1, 2)]
    [row], total = admin.users(session)
    assert (row.user.email, row.alias_count, total) == ("bob@example.org", 1, 1)
    rows, total = admin.aliases(session)
    assert total == 2 and {r.owner for r in rows} == {"bob@example.org"}
    recent = admin.recent(session)
    assert len(recent) == 3 and all(DESTINATION not in r.reason for r in recent)
