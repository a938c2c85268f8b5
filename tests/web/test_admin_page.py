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
        shop = Alias(
            address="shop@othermail.example", user_id=owner.id, message_count=7, forwarded_count=5, blocked_count=2
        )
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
                reason = (
                    f"554 Message rejected: {DESTINATION} does not exist" if outcome == "failed-rejected" else outcome
                )
                db.add(
                    Delivery(
                        inbound_message_id=f"m{n}",
                        recipient=shop.address,
                        alias_id=shop.id,
                        destination_key=n,
                        outcome=outcome,
                        reason=reason,
                        created_at=now - age,
                        mail_from="sender@store.example",
                        subject="An order",
                    )
                )
        db.commit()


def totals(page: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(
        r'<tr data-outcome="([^"]+)">.*?<td[^>]* class="day">(\d+)</td>\s*<td[^>]* class="month">(\d+)</td>', page, re.S
    )
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
    alias_cells = re.findall(r'<td[^>]* class="address">shop@othermail.example</td>', page)
    assert len(alias_cells) == 1 + 9  # the alias row and its 9 outcomes
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
        db.add_all(
            Alias(address=f"a{n:02d}@othermail.example", user_id=owner.id, created_at=start + timedelta(minutes=n))
            for n in range(60)
        )
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
    for n, (outcome, age) in enumerate(
        [("forwarded", timedelta(hours=1)), ("forwarded", timedelta(days=3)), ("dropped-spam", timedelta(days=31))]
    ):
        session.add(
            Delivery(
                inbound_message_id=f"m{n}",
                recipient=alias.address,
                alias_id=alias.id,
                outcome=outcome,
                reason=f"to {DESTINATION}",
                created_at=now - age,
            )
        )
    session.commit()
    assert [(t.outcome, t.day, t.month) for t in admin.totals(session, now)] == [("forwarded", 1, 2)]
    [row], total = admin.users(session)
    assert (row.user.email, row.alias_count, total) == ("bob@example.org", 1, 1)
    rows, total = admin.aliases(session)
    assert total == 2 and {r.owner for r in rows} == {"bob@example.org"}
    recent = admin.recent(session)
    assert len(recent) == 3 and all(DESTINATION not in r.reason for r in recent)


def seed_feedback(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Three destinations: 'noisy' (4 forwarded, 2 bounces, 1 complaint), 'quiet' (10 forwarded, 1 soft
    bounce), 'calm' (forwarded, no feedback); and feedback on a message nobody forwarded."""
    from models import FeedbackEvent

    owner = db.scalars(select(User).where(User.email == "bob@example.org")).one_or_none()
    if owner is None:
        owner = User(email="bob@example.org")
        db.add(owner)
        db.flush()
    made = {
        name: Destination(
            user_id=owner.id,
            email=f"{name}-box@{name}.example",
            verified_at=utcnow(),
            paused_at=utcnow() if name == "noisy" else None,
        )
        for name in ("noisy", "quiet", "calm")
    }
    alias = Alias(address="rates@othermail.example", user_id=owner.id, destinations=list(made.values()))
    db.add(alias)
    db.flush()
    n = 0
    for name, forwarded in (("noisy", 4), ("quiet", 10), ("calm", 3)):
        for _ in range(forwarded):
            n += 1
            db.add(
                Delivery(
                    inbound_message_id=f"r{n}",
                    recipient=alias.address,
                    alias_id=alias.id,
                    destination_id=made[name].id,
                    outcome="forwarded",
                    provider_message_id=f"ses-{n}",
                )
            )
        db.add(
            Delivery(
                inbound_message_id=f"r{n}-spam",
                recipient=alias.address,
                alias_id=alias.id,
                destination_id=made[name].id,
                outcome="dropped-paused",
            )
        )  # not a forwarded copy
    feedback = [
        ("noisy", "bounce-permanent"),
        ("noisy", "bounce-transient"),
        ("noisy", "complaint"),
        ("quiet", "bounce-transient"),
        (None, "bounce-permanent"),
    ]
    for k, (name, kind) in enumerate(feedback):
        db.add(
            FeedbackEvent(
                feedback_id=f"fb{k}",
                recipient=f"{name}-box@{name}.example",
                kind=kind,
                destination_id=made[name].id if name else None,
                alias_id=alias.id if name else None,
            )
        )
    db.commit()
    return {name: d.id for name, d in made.items()}


def test_an_admin_sees_bounce_and_complaint_rates_highest_first_without_addresses(
    app: Flask, client: FlaskClient
) -> None:
    assert signup(app.test_client(), "bob@example.org").status_code == 302
    assert signup(client, "ann@example.org").status_code == 302
    make_admin(app, "ann@example.org")
    with app.app_context():
        from web.db import session

        ids = seed_feedback(session())
    page = client.get("/admin/").get_data(as_text=True)
    rows = re.findall(r'<tr data-destination="(\d+)">(.*?)</tr>', page, re.S)
    assert [int(i) for i, _ in rows] == [ids["noisy"], ids["quiet"]]  # calm has no feedback
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for _, row in rows]
    assert cells[0][2:8] == ["4", "1", "1", "50.0%", "1", "25.0%"]
    assert cells[1][2:8] == ["10", "0", "1", "10.0%", "0", "0.0%"]
    assert "paused" in cells[0][8] and "paused" not in cells[1][8]
    assert "@noisy.example" in cells[0][0] and "bob@example.org" in cells[0][1]
    assert "noisy-box@" not in page and "quiet-box@" not in page


def test_the_feedback_rates_query_works_on_every_backend(session) -> None:  # type: ignore[no-untyped-def]
    from web.services import admin

    ids = seed_feedback(session)
    rates = admin.feedback_rates(session)
    assert [(r.destination_id, r.forwarded, r.hard_bounces, r.soft_bounces, r.complaints) for r in rates] == [
        (ids["noisy"], 4, 1, 1, 1),
        (ids["quiet"], 10, 0, 1, 0),
    ]
    assert (rates[0].bounce_rate, rates[0].complaint_rate, rates[0].paused, rates[0].domain) == (
        0.5,
        0.25,
        True,
        "noisy.example",
    )


def test_feedback_without_forwarded_copies_comes_first_with_no_rate(session) -> None:  # type: ignore[no-untyped-def]
    from models import FeedbackEvent
    from web.services import admin

    ids = seed_feedback(session)
    owner = session.scalars(select(User)).first()
    lone = Destination(user_id=owner.id, email="lone@lone.example", verified_at=utcnow())
    session.add(lone)
    session.flush()
    session.add(FeedbackEvent(feedback_id="lone", recipient=lone.email, kind="complaint", destination_id=lone.id))
    session.commit()
    rates = admin.feedback_rates(session)
    assert [r.destination_id for r in rates] == [lone.id, ids["noisy"], ids["quiet"]]
    assert (rates[0].bounce_rate, rates[0].complaint_rate) == (None, None)


def test_huge_page_numbers_of_the_admin_lists_are_clamped_not_a_500(app: Flask, client: FlaskClient) -> None:
    """Issue 12.10: the users and aliases lists take their page from the query string."""
    assert signup(client, "root@example.org").status_code == 302
    make_admin(app, "root@example.org")
    for query in (
        "users=9223372036854775807",
        "aliases=9223372036854775807",
        "users=99999999999999999999999&aliases=-99999999999999999999",
    ):
        response = client.get(f"/admin/?{query}")
        assert response.status_code == 200, query
