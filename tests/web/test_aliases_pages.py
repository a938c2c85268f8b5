"""The alias pages: one-click and custom creation, limits, the alias page's actions, activity."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Policy
from forwarder.flows.forward import Forwarder, Inbound
from models import Alias, Delivery, make_session_factory, utcnow
from tests.support.factories import add_destination, user_id
from tests.support.factories import web_session as db_session
from tests.web.conftest import post, signup

LIST = "/aliases/"
NEW = "/aliases/new"


@dataclass
class Ann:
    client: FlaskClient
    user: int
    home: int  # verified
    work: int  # verified
    pending: int  # unverified


def alias(app: Flask, alias_id: int) -> Alias:
    with app.app_context():
        found = db_session(app).get(Alias, alias_id)
        assert found is not None
        found.destination_ids = sorted(d.id for d in found.destinations)  # type: ignore[attr-defined]
        db_session(app).expunge(found)
        return found


def new_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.search(r"/aliases/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def create(client: FlaskClient, **fields: object):  # type: ignore[no-untyped-def]
    return post(client, NEW, {"custom": "1", **fields})


@pytest.fixture
def ann(app: Flask, client: FlaskClient) -> Ann:
    app.config["RATE_LIMITS"]["alias-create"] = (1000, 3600)
    assert signup(client, "ann@example.org").status_code == 302
    uid = user_id(app, "ann@example.org")
    return Ann(
        client,
        uid,
        add_destination(app, uid, "home@real.example"),
        add_destination(app, uid, "work@real.example"),
        add_destination(app, uid, "pending@real.example", verified=False),
    )


def test_the_pages_need_a_session(client: FlaskClient) -> None:
    for path in (LIST, NEW, "/aliases/1", "/aliases/1/delete"):
        response = client.get(path)
        assert response.status_code == 302 and "/signin" in response.headers["Location"], path


def test_one_click_gives_a_word_address_on_the_first_domain_to_every_verified_destination(app: Flask, ann: Ann) -> None:
    alias_id = new_id(post(ann.client, NEW, {}, page=LIST))
    created = alias(app, alias_id)
    assert re.fullmatch(r"[a-z]+-[a-z2-9]{4}@othermail\.example", created.address)
    assert created.destination_ids == sorted([ann.home, ann.work])  # type: ignore[attr-defined]
    assert created.expires_at is None and created.enabled and created.expired_action == "drop"
    page = ann.client.get(f"/aliases/{alias_id}").get_data(as_text=True)
    assert created.address in page and "active" in page and "permanent" in page
    assert created.address in ann.client.get(LIST).get_data(as_text=True)


def test_one_click_without_a_verified_destination_says_what_to_do(app: Flask, client: FlaskClient) -> None:
    assert signup(client, "new@example.org").status_code == 302
    add_destination(app, user_id(app, "new@example.org"), "pending@real.example", verified=False)
    response = post(client, NEW, {}, page=LIST)
    assert response.status_code == 400
    assert "only forwarded to verified addresses" in response.get_data(as_text=True)
    with app.app_context():
        assert db_session(app).scalars(select(Alias)).all() == []


def test_nothing_can_be_sent_to_an_unverified_or_foreign_destination(app: Flask, ann: Ann) -> None:
    response = create(ann.client, local_part="shop", destination=str(ann.pending))
    assert response.status_code == 400 and "must be verified" in response.get_data(as_text=True)
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    bobs = add_destination(app, user_id(app, "bob@example.org"), "bob@real.example")
    response = create(ann.client, local_part="shop", destination=str(bobs))
    assert response.status_code == 400 and "your own destinations" in response.get_data(as_text=True)
    response = create(ann.client, local_part="shop")
    assert response.status_code == 400 and "at least one verified destination" in response.get_data(as_text=True)
    with app.app_context():
        assert db_session(app).scalars(select(Alias)).all() == []
    page = ann.client.get(NEW).get_data(as_text=True)
    assert f'value="{ann.home}"' in page and f'value="{ann.pending}"' not in page


def test_a_custom_alias_keeps_its_choices(app: Flask, ann: Ann) -> None:
    alias_id = new_id(
        create(
            ann.client,
            local_part="Bike.Shop",
            domain="alias.example",
            destination=str(ann.work),
            label="Bike shop",
            note="ordered a bell",
            expired_action="reject",
            duration="7d",
            idle_days="10",
            max_messages="3",
        )
    )
    created = alias(app, alias_id)
    assert created.address == "bike.shop@alias.example"
    assert created.destination_ids == [ann.work]  # type: ignore[attr-defined]
    assert (created.label, created.note, created.expired_action) == ("Bike shop", "ordered a bell", "reject")
    assert created.expires_at - created.created_at == timedelta(days=7)
    assert (created.idle_days, created.max_messages) == (10, 3)
    page = ann.client.get(f"/aliases/{alias_id}").get_data(as_text=True)
    assert "7 days left" in page and "3 messages left" in page and "10 idle days left" in page
    assert '<option value="reject" selected>' in page


@pytest.mark.parametrize(
    ("local_part", "words"),
    [
        ("postmaster", "reserved"),
        ("Abuse", "reserved"),
        ("bad char!", "letters, digits"),
        ("-dash", "letters, digits"),
        ("a..b", "letters, digits"),
        ("x" * 65, "at most 64"),
        ("ann@othermail.example", "letters, digits"),
    ],
)
def test_bad_local_parts_are_refused(app: Flask, ann: Ann, local_part: str, words: str) -> None:
    response = create(ann.client, local_part=local_part, destination=str(ann.home))
    assert response.status_code == 400
    assert words in response.get_data(as_text=True)
    with app.app_context():
        assert db_session(app).scalars(select(Alias)).all() == []


def test_taken_addresses_are_refused_case_insensitively_even_after_delete(app: Flask, ann: Ann) -> None:
    first = new_id(create(ann.client, local_part="shop", destination=str(ann.home)))
    response = create(ann.client, local_part="SHOP", destination=str(ann.home))
    assert response.status_code == 409 and "is taken" in response.get_data(as_text=True)
    assert new_id(create(ann.client, local_part="shop", domain="alias.example", destination=str(ann.home)))
    assert post(ann.client, f"/aliases/{first}/delete", {}).status_code == 302
    response = create(ann.client, local_part="Shop", destination=str(ann.home))
    assert response.status_code == 409 and "is taken" in response.get_data(as_text=True)
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    bobs = add_destination(app, user_id(app, "bob@example.org"), "bob@real.example")
    assert create(bob, local_part="shop", destination=str(bobs)).status_code == 409


@pytest.mark.parametrize(
    ("duration", "delta"),
    [
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
        ("365d", timedelta(days=365)),
    ],
)
def test_durations_from_an_hour_to_a_year(app: Flask, ann: Ann, duration: str, delta: timedelta) -> None:
    created = alias(app, new_id(create(ann.client, duration=duration, destination=str(ann.home))))
    assert created.expires_at - created.created_at == delta


@pytest.mark.parametrize("duration", ["0", "0h", "30m", "730d", "104w", "soon"])
def test_durations_outside_an_hour_to_a_year_are_refused(app: Flask, ann: Ann, duration: str) -> None:
    response = create(ann.client, duration=duration, destination=str(ann.home))
    assert response.status_code == 400
    assert "one hour to a year" in response.get_data(as_text=True)
    with app.app_context():
        assert db_session(app).scalars(select(Alias)).all() == []


def test_bad_limits_are_refused(ann: Ann) -> None:
    for fields, words in (
        ({"idle_days": "0"}, "Idle days"),
        ({"idle_days": "many"}, "whole number"),
        ({"max_messages": "0"}, "message limit"),
        ({"expired_action": "bounce"}, "drop or reject"),
    ):
        response = create(ann.client, destination=str(ann.home), **fields)
        assert response.status_code == 400 and words in response.get_data(as_text=True), fields


def test_the_page_shows_what_is_left_and_extend_changes_it(app: Flask, ann: Ann) -> None:
    alias_id = new_id(
        create(ann.client, local_part="short", duration="1h", max_messages="2", destination=str(ann.home))
    )
    page_path = f"/aliases/{alias_id}"
    page = ann.client.get(page_path).get_data(as_text=True)
    assert "1 h left" in page and "2 messages left" in page
    listed = ann.client.get(LIST).get_data(as_text=True)
    assert "1 h left" in listed and "2 messages left" in listed

    assert (
        post(ann.client, f"{page_path}/extend", {"duration": "30d", "extra_messages": "3"}, page=page_path).status_code
        == 302
    )
    page = ann.client.get(page_path).get_data(as_text=True)
    assert "30 days left" in page and "5 messages left" in page
    assert alias(app, alias_id).max_messages == 5

    assert post(ann.client, f"{page_path}/extend", {"idle_days": "5"}, page=page_path).status_code == 302
    assert "5 idle days left" in ann.client.get(page_path).get_data(as_text=True)

    for data, words in (
        ({}, "Choose a new duration"),
        ({"duration": "730d"}, "one hour to a year"),
        ({"idle_days": "400"}, "Idle days"),
    ):
        response = post(ann.client, f"{page_path}/extend", data, page=page_path)
        assert response.status_code == 400 and words in response.get_data(as_text=True), data
    assert alias(app, alias_id).idle_days == 5

    assert post(ann.client, f"{page_path}/permanent", {}, page=page_path).status_code == 302
    made = alias(app, alias_id)
    assert (made.expires_at, made.idle_days, made.max_messages) == (None, None, None)
    page = ann.client.get(page_path).get_data(as_text=True)
    assert "permanent" in page and " left" not in page.split("<h2>Expiry")[0]


def test_extra_messages_need_a_message_limit(ann: Ann) -> None:
    alias_id = new_id(post(ann.client, NEW, {}, page=LIST))
    response = post(ann.client, f"/aliases/{alias_id}/extend", {"extra_messages": "5"}, page=f"/aliases/{alias_id}")
    assert response.status_code == 400 and "no message limit" in response.get_data(as_text=True)


def test_disable_enable_edit_and_destinations(app: Flask, ann: Ann) -> None:
    alias_id = new_id(create(ann.client, local_part="news", destination=str(ann.home)))
    path = f"/aliases/{alias_id}"
    assert post(ann.client, f"{path}/disable", {}, page=path).status_code == 302
    assert not alias(app, alias_id).enabled
    assert 'data-state="off">disabled</span>' in ann.client.get(path).get_data(as_text=True)  # the filter's word
    assert 'data-state="off">disabled</span>' in ann.client.get(LIST).get_data(as_text=True)
    assert post(ann.client, f"{path}/enable", {}, page=path).status_code == 302
    assert alias(app, alias_id).enabled
    assert 'data-state="active"' in ann.client.get(path).get_data(as_text=True)

    data = {"label": "Newsletter", "note": "weekly", "expired_action": "reject"}
    assert post(ann.client, f"{path}/edit", data, page=path).status_code == 302
    edited = alias(app, alias_id)
    assert (edited.label, edited.note, edited.expired_action) == ("Newsletter", "weekly", "reject")
    response = post(ann.client, f"{path}/edit", {"label": "Changed", "expired_action": "bounce"}, page=path)
    assert response.status_code == 400
    assert alias(app, alias_id).label == "Newsletter"  # nothing half-saved

    assert (
        post(ann.client, f"{path}/destinations", {"destination": [str(ann.home), str(ann.work)]}, page=path).status_code
        == 302
    )
    assert alias(app, alias_id).destination_ids == sorted([ann.home, ann.work])  # type: ignore[attr-defined]
    response = post(ann.client, f"{path}/destinations", {"destination": str(ann.pending)}, page=path)
    assert response.status_code == 400 and "must be verified" in response.get_data(as_text=True)
    assert alias(app, alias_id).destination_ids == sorted([ann.home, ann.work])  # type: ignore[attr-defined]


def test_delete_asks_first_then_stops_the_alias(app: Flask, ann: Ann) -> None:
    alias_id = new_id(create(ann.client, local_part="gone", label="secret label", destination=str(ann.home)))
    confirm = ann.client.get(f"/aliases/{alias_id}/delete")
    assert confirm.status_code == 200 and "Delete for good" in confirm.get_data(as_text=True)
    assert alias(app, alias_id).deleted_at is None
    response = post(ann.client, f"/aliases/{alias_id}/delete", {})
    assert response.status_code == 302 and response.headers["Location"].endswith(LIST)
    gone = alias(app, alias_id)
    assert gone.deleted_at is not None and not gone.enabled and gone.label is None
    assert ann.client.get(f"/aliases/{alias_id}").status_code == 404
    assert 'href="/aliases/%d"' % alias_id not in ann.client.get(LIST).get_data(as_text=True)


def test_the_live_alias_cap_gives_a_clear_message(app: Flask, ann: Ann) -> None:
    # the services read the cap from the context create_app built: the same app, with a cap of 2
    app.extensions["othermail.services"] = replace(app.extensions["othermail.services"], max_live_aliases=2)
    first = new_id(post(ann.client, NEW, {}, page=LIST))
    new_id(post(ann.client, NEW, {}, page=LIST))
    response = post(ann.client, NEW, {}, page=LIST)
    assert response.status_code == 409
    assert "You have 2 aliases, the most an account may have" in response.get_data(as_text=True)
    assert post(ann.client, f"/aliases/{first}/delete", {}).status_code == 302
    new_id(post(ann.client, NEW, {}, page=LIST))


def test_the_activity_list_shows_deliveries(app: Flask, ann: Ann) -> None:
    alias_id = new_id(create(ann.client, local_part="shop", destination=str(ann.home)))
    raw = (
        b"From: Store <orders@store.example>\r\nTo: shop@othermail.example\r\nSubject: Your parcel\r\n"
        b"Message-ID: <p1@store.example>\r\n\r\nOn its way.\r\n"
    )
    sessions = make_session_factory(app.extensions["othermail.engine"])
    forwarder = Forwarder(SqlDirectory(sessions), MemorySender(), Policy(), utcnow)
    forwarder.process(raw, Inbound("inbound-1", ("shop@othermail.example",), mail_from="orders@store.example"))
    assert [m.recipient for m in forwarder.sender.sent] == ["home@real.example"]
    with app.app_context():
        db = db_session(app)
        db.add(
            Delivery(
                inbound_message_id="inbound-2",
                recipient="shop@othermail.example",
                alias_id=alias_id,
                outcome="dropped-spam",
                reason="the spam scan failed",
                mail_from="prize@spam.example",
                subject="You won",
            )
        )
        db.commit()
    page = ann.client.get(f"/aliases/{alias_id}").get_data(as_text=True)
    rows = re.findall(r'<tr data-outcome="([^"]+)">(.*?)</tr>', page, re.S)
    assert [outcome for outcome, _ in rows] == ["dropped-spam", "forwarded"]
    assert "You won" in rows[0][1] and "the spam scan failed" in rows[0][1] and "prize@spam.example" in rows[0][1]
    assert "Your parcel" in rows[1][1] and "orders@store.example" in rows[1][1]
    assert '<span class="tag bad">dropped-spam</span>' in page and '<span class="tag ok">forwarded</span>' in page
    assert re.search(r'class="total-forwarded">1<', page) and re.search(r'class="total-blocked">1<', page)


def test_another_users_alias_is_404_on_every_page_and_action(app: Flask, ann: Ann) -> None:
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    bobs_destination = add_destination(app, user_id(app, "bob@example.org"), "bob@real.example")
    bobs = new_id(create(bob, local_part="bobs", label="Bob's", destination=str(bobs_destination)))
    assert ann.client.get(f"/aliases/{bobs}").status_code == 404
    assert ann.client.get(f"/aliases/{bobs}/delete").status_code == 404
    for action, data in (
        ("edit", {"label": "mine", "expired_action": "reject"}),
        ("destinations", {"destination": str(ann.home)}),
        ("extend", {"duration": "1d"}),
        ("permanent", {}),
        ("enable", {}),
        ("disable", {}),
        ("delete", {}),
    ):
        assert post(ann.client, f"/aliases/{bobs}/{action}", data, page=LIST).status_code == 404, action
    kept = alias(app, bobs)
    assert (kept.label, kept.enabled, kept.deleted_at, kept.expired_action) == ("Bob's", True, None, "drop")
    assert kept.destination_ids == [bobs_destination]  # type: ignore[attr-defined]
    assert "bobs@othermail.example" not in ann.client.get(LIST).get_data(as_text=True)
    assert ann.client.get("/aliases/999999").status_code == 404


def test_search_and_pagination(app: Flask, ann: Ann) -> None:
    with app.app_context():
        db = db_session(app)
        for n in range(25):
            db.add(
                Alias(
                    address=f"item{n:02d}@othermail.example",
                    user_id=ann.user,
                    label="Bike shop" if n % 5 == 0 else None,
                    created_at=utcnow() - timedelta(minutes=n),
                )
            )
        db.add(Alias(address="odd_one@othermail.example", user_id=ann.user, created_at=utcnow() - timedelta(days=1)))
        db.add(Alias(address="oddxone@othermail.example", user_id=ann.user, created_at=utcnow() - timedelta(days=1)))
        db.commit()

    def addresses(path: str) -> list[str]:
        return re.findall(
            r'<td class="address"><a href="/aliases/\d+">([^<]+)</a>', ann.client.get(path).get_data(as_text=True)
        )

    first = addresses(LIST)
    assert len(first) == 25 and first[0] == "item00@othermail.example"
    page = ann.client.get(LIST).get_data(as_text=True)
    assert "page 1 of 2" in page and 'href="/aliases/?page=2"' in page
    second = addresses(f"{LIST}?page=2")
    assert len(second) == 2 and not set(first) & set(second)
    assert addresses(f"{LIST}?q=BIKE") == [f"item{n:02d}@othermail.example" for n in (0, 5, 10, 15, 20)]
    assert addresses(f"{LIST}?q=item1") == [f"item{n}@othermail.example" for n in range(10, 20)]
    assert addresses(f"{LIST}?q=odd_one") == ["odd_one@othermail.example"]
    assert addresses(f"{LIST}?q=nothing-like-it") == []
    assert addresses(f"{LIST}?page=99") == []


def test_pages_have_csrf_tokens_and_no_inline_script(app: Flask, ann: Ann) -> None:
    alias_id = new_id(post(ann.client, NEW, {}, page=LIST))
    for path in (LIST, NEW, f"/aliases/{alias_id}", f"/aliases/{alias_id}/delete"):
        page = ann.client.get(path).get_data(as_text=True)
        forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", page, re.S)
        assert forms and all('name="csrf_token"' in form for form in forms), path
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
        assert all(re.search(r'src="/static/[a-z]+\.js"', attrs) and not body.strip() for attrs, body in scripts), path
        assert "style=" not in page and " onclick" not in page


def test_mail_over_a_rate_limit_shows_as_blocked_with_its_reason(app: Flask, ann: Ann) -> None:
    from forwarder.flows.mail_limits import MailLimits

    alias_id = new_id(create(ann.client, local_part="shop", destination=str(ann.home)))
    sessions = make_session_factory(app.extensions["othermail.engine"])
    forwarder = Forwarder(SqlDirectory(sessions, limits=MailLimits(alias_per_hour=1)), MemorySender(), Policy(), utcnow)
    for n in (1, 2):
        raw = (
            f"From: Store <orders@store.example>\r\nTo: shop@othermail.example\r\nSubject: Sale {n}\r\n"
            f"Message-ID: <s{n}@store.example>\r\n\r\nBuy.\r\n"
        ).encode()
        forwarder.process(raw, Inbound(f"inbound-{n}", ("shop@othermail.example",)))
    assert len(forwarder.sender.sent) == 1
    reason = "the alias&#39;s limit of 1 message an hour is reached; it resets at "
    for path in (f"/aliases/{alias_id}", "/dashboard"):
        page = ann.client.get(path).get_data(as_text=True)
        rows = dict(re.findall(r'<tr data-outcome="([^"]+)">(.*?)</tr>', page, re.S))
        assert set(rows) == {"dropped-rate-limited", "forwarded"}, path
        assert '<span class="tag bad">dropped-rate-limited</span>' in rows["dropped-rate-limited"], path
        assert "Sale 2" in rows["dropped-rate-limited"] and reason in rows["dropped-rate-limited"], path
    page = ann.client.get(f"/aliases/{alias_id}").get_data(as_text=True)
    assert re.search(r'class="total-forwarded">1<', page) and re.search(r'class="total-blocked">1<', page)


def test_an_alias_the_service_switched_off_shows_why_until_its_owner_switches_it_on(app: Flask, ann: Ann) -> None:
    alias_id = new_id(create(ann.client, local_part="shop", destination=str(ann.home)))
    reason = "Switched off after a spam complaint (abuse) on 2026-11-23 about mail it forwarded."
    with app.app_context():
        row = db_session(app).get(Alias, alias_id)
        row.enabled, row.disabled_reason = False, reason  # what forwarder/adapters/sql/feedback_store.py does
        db_session(app).commit()
    path = f"/aliases/{alias_id}"
    for page in (ann.client.get(path).get_data(as_text=True), ann.client.get(LIST).get_data(as_text=True)):
        assert 'data-state="off"' in page and reason in page
    assert post(ann.client, f"{path}/enable", {}, page=path).status_code == 302
    switched_on = alias(app, alias_id)
    assert switched_on.enabled and switched_on.disabled_reason is None
    assert reason not in ann.client.get(LIST).get_data(as_text=True)
    # switched off by its owner: no reason of the service's is shown
    assert post(ann.client, f"{path}/disable", {}, page=path).status_code == 302
    page = ann.client.get(LIST).get_data(as_text=True)
    assert 'data-state="off"' in page and "spam complaint" not in page


@pytest.mark.parametrize("number", ["9223372036854775807", "99999999999999999999999", "-9223372036854775809"])
def test_a_huge_page_number_is_clamped_not_a_500(app: Flask, ann: Ann, number: str) -> None:
    """Issue 12.10: ``?page=9223372036854775807`` made an OFFSET no database takes (a 500)."""
    response = ann.client.get(f"{LIST}?page={number}")
    assert response.status_code == 200
    assert "<h1>" in response.get_data(as_text=True)
