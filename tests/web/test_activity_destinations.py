"""A message forwarded to two destinations makes two log rows: each row names the destination it went to."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Alias, Delivery, Destination, User, utcnow
from tests.web.conftest import signup


def _seed_two_copies(app: Flask, email: str) -> int:
    now = utcnow()
    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == email)).one()
        home = Destination(user_id=user.id, email="home@real.example", verified_at=now)
        work = Destination(user_id=user.id, email="work@real.example", verified_at=now)
        shop = Alias(address="shop@othermail.example", user_id=user.id)
        shop.destinations.extend([home, work])
        db.add_all([home, work, shop])
        db.flush()
        for target in (home, work):
            db.add(
                Delivery(
                    inbound_message_id="one-message",
                    recipient=shop.address,
                    alias_id=shop.id,
                    destination_id=target.id,
                    outcome="forwarded",
                    reason="ok",
                    mail_from="sender@store.example",
                    subject="Your order",
                    created_at=now,
                )
            )
        db.add(
            Delivery(
                inbound_message_id="spam",
                recipient=shop.address,
                alias_id=shop.id,
                outcome="dropped-spam",
                reason="spam",
                subject="Spam",
                created_at=now,
            )
        )
        db.commit()
        return shop.id


def _to_cells(page: str) -> dict[str, str]:
    """Each activity row's subject and its destination cell's text."""
    table = re.search(r'<table class="activity">.*?</table>', page, re.S)
    assert table
    cells: dict[str, str] = {}
    for row in re.findall(r"<tr data-outcome=.*?</tr>", table.group(0), re.S):
        subject = re.search(r'data-label="Subject"><a [^>]*>(.*?)</a>', row)
        to = re.search(r'<td data-label="To"[^>]*>(.*?)</td>', row, re.S)
        assert subject and to, row
        cells.setdefault(subject.group(1), "")
        cells[subject.group(1)] += " " + re.sub(r"<[^>]+>", " ", to.group(1)).strip()
    return cells


def test_latest_mail_and_alias_activity_name_each_copys_destination(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "ann@example.org").status_code == 302
    alias_id = _seed_two_copies(app, "ann@example.org")
    for path in ("/dashboard", f"/aliases/{alias_id}"):
        page = client.get(path).get_data(as_text=True)
        assert "<th>To</th>" in page, path
        cells = _to_cells(page)
        assert sorted(cells["Your order"].split()) == ["home@real.example", "work@real.example"], path
        assert cells["Spam"].split() == ["—"], path  # blocked before any destination
