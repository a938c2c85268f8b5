"""The destinations pages: add with a verification link, resend, change (unverifies), delete."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from models import Alias, Destination, User, utcnow
from tests.web.conftest import csrf, links_in, post, signup

INDEX = "/destinations/"


def add(client: FlaskClient, address: str):
    return post(client, INDEX, {"email": address})


def destination(app: Flask, address: str) -> Destination:
    with app.app_context():
        from web.db import session

        found = session().scalars(select(Destination).where(Destination.email == address)).one()
        session().expunge(found)
        return found


def verify_link(outbox: MemorySender, recipient: str) -> str:
    mail = [m for m in outbox.sent if m.recipient == recipient]
    assert mail, f"no mail to {recipient}"
    links = links_in(mail[-1].raw)
    assert len(links) == 1 and "/destinations/verify/" in links[0]
    return links[0]


def confirm(client: FlaskClient, link: str):  # type: ignore[no-untyped-def]
    """Open the link and press its button (the GET only asks)."""
    path = link.split("othermail.test", 1)[1] if "othermail.test" in link else link
    return post(client, path, {})


@pytest.fixture
def ann(client: FlaskClient) -> FlaskClient:
    assert signup(client, "ann@example.org").status_code == 302
    return client


def test_the_pages_need_a_session(client: FlaskClient) -> None:
    response = client.get(INDEX)
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    assert client.post(INDEX, data={"email": "x@real.example"}).status_code in (302, 400)
    assert client.get("/destinations/1").status_code == 302


def test_adding_sends_a_link_that_verifies_without_a_session(
    app: Flask, ann: FlaskClient, outbox: MemorySender
) -> None:
    response = add(ann, "Me@Real.Example")
    assert response.status_code == 302
    assert [m.recipient for m in outbox.sent] == ["me@real.example"]
    assert outbox.sent[0].sender == "noreply@othermail.example"
    page = ann.get(INDEX).get_data(as_text=True)
    assert "me@real.example" in page and "unverified" in page and "Resend link" in page
    assert destination(app, "me@real.example").verified_at is None

    link = verify_link(outbox, "me@real.example")
    stranger = app.test_client()  # the mailbox owner, maybe on another device
    response = confirm(stranger, link)
    assert response.status_code == 200
    assert "Address verified" in response.get_data(as_text=True)
    assert destination(app, "me@real.example").verified_at is not None
    page = ann.get(INDEX).get_data(as_text=True)
    assert '<span class="tag ok">verified</span>' in page and "Resend link" not in page
    assert "Address verified" in stranger.get(link).get_data(as_text=True)  # opening it again is harmless
    token = csrf(stranger, "/signin")
    assert stranger.post(link, data={"csrf_token": token}).status_code == 200  # and so is confirming twice


def test_opening_the_link_only_asks_a_mail_scanner_fetching_it_confirms_nothing(
    app: Flask, ann: FlaskClient, outbox: MemorySender
) -> None:
    """Issue 12.6: a plain GET verified the address, so a link scanner confirmed it for the victim."""
    add(ann, "me@real.example")
    link = verify_link(outbox, "me@real.example")
    scanner = app.test_client()
    for _ in range(3):
        response = scanner.get(link)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert "Confirm" in page and 'method="post"' in page and "Address verified" not in page
        assert scanner.head(link).status_code == 200
    assert destination(app, "me@real.example").verified_at is None
    path = link.split("othermail.test", 1)[1]
    assert scanner.post(path).status_code == 400  # a POST without the form's CSRF token does nothing
    assert destination(app, "me@real.example").verified_at is None
    assert confirm(scanner, link).status_code == 200
    assert destination(app, "me@real.example").verified_at is not None


def test_bad_expired_and_stale_links_get_a_clear_page(
    app: Flask, ann: FlaskClient, outbox: MemorySender, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(ann, "me@real.example")
    link = verify_link(outbox, "me@real.example")
    token = link.rsplit("/", 1)[1]

    response = ann.get(f"/destinations/verify/{token[:-3]}xyz")
    assert response.status_code == 404 and "Link not valid" in response.get_data(as_text=True)

    from web.services import destinations as service

    monkeypatch.setattr(service, "VERIFY_MAX_AGE", -1)
    response = ann.get(link)
    assert response.status_code == 410 and "Link expired" in response.get_data(as_text=True)
    monkeypatch.undo()

    dest_id = destination(app, "me@real.example").id
    assert post(ann, f"/destinations/{dest_id}/change", {"email": "new@real.example"}, page=INDEX).status_code == 302
    response = ann.get(link)
    assert response.status_code == 410
    assert "has changed since" in response.get_data(as_text=True)
    assert destination(app, "new@real.example").verified_at is None


def test_changing_the_address_unverifies_it_and_sends_a_new_link(
    app: Flask, ann: FlaskClient, outbox: MemorySender
) -> None:
    add(ann, "me@real.example")
    confirm(ann, verify_link(outbox, "me@real.example"))
    dest_id = destination(app, "me@real.example").id
    assert destination(app, "me@real.example").verified_at is not None

    page = f"/destinations/{dest_id}"
    assert "Change the address" in ann.get(page).get_data(as_text=True)
    response = post(ann, f"/destinations/{dest_id}/change", {"email": "other@real.example"}, page=page)
    assert response.status_code == 302
    changed = destination(app, "other@real.example")
    assert changed.id == dest_id and changed.verified_at is None
    assert "unverified" in ann.get(INDEX).get_data(as_text=True)
    confirm(ann, verify_link(outbox, "other@real.example"))
    assert destination(app, "other@real.example").verified_at is not None

    response = post(ann, f"/destinations/{dest_id}/change", {"email": "not an address"}, page=page)
    assert response.status_code == 400 and "valid email" in response.get_data(as_text=True)
    assert destination(app, "other@real.example").verified_at is not None


def test_resend_sends_another_link_and_rate_limits_say_429(app: Flask, ann: FlaskClient, outbox: MemorySender) -> None:
    app.config["RATE_LIMITS"]["verification"] = (3, 3600)
    add(ann, "me@real.example")
    dest_id = destination(app, "me@real.example").id
    assert post(ann, f"/destinations/{dest_id}/resend", {}, page=INDEX).status_code == 302
    assert [m.recipient for m in outbox.sent] == ["me@real.example"] * 2
    assert add(ann, "two@real.example").status_code == 302
    response = post(ann, f"/destinations/{dest_id}/resend", {}, page=INDEX)
    assert response.status_code == 429
    assert "Too many verification emails" in response.get_data(as_text=True)
    assert len(outbox.sent) == 3


def test_bad_and_duplicate_addresses_are_refused(app: Flask, ann: FlaskClient, outbox: MemorySender) -> None:
    response = add(ann, "nobody")
    assert response.status_code == 400 and "valid email" in response.get_data(as_text=True)
    response = add(ann, "loop@alias.example")
    assert response.status_code == 400 and "not an alias" in response.get_data(as_text=True)
    assert add(ann, "me@real.example").status_code == 302
    response = add(ann, "ME@real.example")
    assert response.status_code == 409 and "already added" in response.get_data(as_text=True)
    assert [m.recipient for m in outbox.sent] == ["me@real.example"]


def test_deleting_warns_about_aliases_and_removes_it(app: Flask, ann: FlaskClient) -> None:
    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == "ann@example.org")).one()
        target = Destination(user_id=user.id, email="me@real.example", verified_at=utcnow())
        alias = Alias(address="shop@othermail.example", user_id=user.id)
        alias.destinations.append(target)
        db.add_all([target, alias])
        db.commit()
        dest_id = target.id
    page = ann.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert "shop@othermail.example" in page and "will stop forwarding" in page
    response = post(ann, f"/destinations/{dest_id}/delete", {}, page=f"/destinations/{dest_id}")
    assert response.status_code == 302
    page = ann.get(INDEX).get_data(as_text=True)
    assert "me@real.example was removed" in page and 'class="address"><a' not in page
    with app.app_context():
        from web.db import session

        assert session().get(Destination, dest_id) is None
        assert session().scalars(select(Alias)).one().destinations == []


def test_another_users_destination_is_404_everywhere(app: Flask, ann: FlaskClient, outbox: MemorySender) -> None:
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    add(bob, "bob@real.example")
    bobs = destination(app, "bob@real.example").id
    assert ann.get(f"/destinations/{bobs}").status_code == 404
    for action, data in (("resend", {}), ("change", {"email": "ann@real.example"}), ("delete", {})):
        assert post(ann, f"/destinations/{bobs}/{action}", data, page=INDEX).status_code == 404, action
    kept = destination(app, "bob@real.example")
    assert kept.id == bobs and kept.user_id != destination_owner(app, "ann@example.org")
    assert [m.recipient for m in outbox.sent] == ["bob@real.example"]
    assert "bob@real.example" not in ann.get(INDEX).get_data(as_text=True)


def destination_owner(app: Flask, email: str) -> int:
    with app.app_context():
        from web.db import session

        return session().scalars(select(User.id).where(User.email == email)).one()


def test_every_form_carries_a_csrf_token_and_no_inline_script(app: Flask, ann: FlaskClient) -> None:
    add(ann, "me@real.example")
    dest_id = destination(app, "me@real.example").id
    for path in (INDEX, f"/destinations/{dest_id}"):
        page = ann.get(path).get_data(as_text=True)
        forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", page, re.S)
        assert forms and all('name="csrf_token"' in form for form in forms)
        assert "<script" not in page and "style=" not in page and " onclick" not in page


def paused_destination(app: Flask, owner: str, address: str) -> int:
    """A verified destination SES feedback paused after soft bounces (forwarder/adapters/sql/feedback_store.py)."""
    from datetime import UTC, datetime

    with app.app_context():
        from web.db import session

        db = session()
        user = db.scalars(select(User).where(User.email == owner)).one()
        target = Destination(
            user_id=user.id,
            email=address,
            verified_at=utcnow(),
            soft_bounce_count=2,
            last_soft_bounce_at=utcnow(),
            bounce_count=1,
            paused_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
            pause_reason="The mailbox refused a forwarded message for good (General): 550 no such user",
        )
        db.add(target)
        db.commit()
        return target.id


def test_a_paused_destination_shows_when_and_why_and_resumes(app: Flask, ann: FlaskClient) -> None:
    dest_id = paused_destination(app, "ann@example.org", "me@real.example")
    page = ann.get(INDEX).get_data(as_text=True)
    assert 'data-state="paused">paused</span>' in page
    assert (
        "Forwarding paused</strong> on 2026-11-20 08:30 UTC: The mailbox refused a forwarded message for good "
        "(General): 550 no such user." in page
    )
    assert f'action="/destinations/{dest_id}/resume"' in page and "Resume forwarding" in page
    detail = ann.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert "Forwarding paused" in detail and "Resume forwarding" in detail

    response = post(ann, f"/destinations/{dest_id}/resume", {}, page=INDEX)
    assert response.status_code == 302
    resumed = destination(app, "me@real.example")
    assert (resumed.paused_at, resumed.pause_reason, resumed.soft_bounce_count, resumed.last_soft_bounce_at) == (
        None,
        "",
        0,
        None,
    )
    assert resumed.bounce_count == 1  # totals stay for the admin's rates
    page = ann.get(INDEX).get_data(as_text=True)
    assert "Forwarding to me@real.example resumed" in page and "Resume forwarding" not in page
    # resuming again only says so
    post(ann, f"/destinations/{dest_id}/resume", {}, page=INDEX)
    assert "me@real.example is not paused" in ann.get(INDEX).get_data(as_text=True)


def test_resume_needs_the_csrf_token_and_the_owner(app: Flask, ann: FlaskClient) -> None:
    bob = app.test_client()
    assert signup(bob, "bob@example.org").status_code == 302
    bobs = paused_destination(app, "bob@example.org", "bob@real.example")
    assert ann.post(f"/destinations/{bobs}/resume", data={}).status_code == 400
    assert post(ann, f"/destinations/{bobs}/resume", {}, page=INDEX).status_code == 404
    assert bob.post(f"/destinations/{bobs}/resume", data={}).status_code == 400
    assert destination(app, "bob@real.example").is_paused
    assert post(bob, f"/destinations/{bobs}/resume", {}, page=INDEX).status_code == 302
    assert not destination(app, "bob@real.example").is_paused


def test_changing_the_address_of_a_paused_destination_ends_the_pause(app: Flask, ann: FlaskClient) -> None:
    dest_id = paused_destination(app, "ann@example.org", "me@real.example")
    page = f"/destinations/{dest_id}"
    assert post(ann, f"{page}/change", {"email": "new@real.example"}, page=page).status_code == 302
    changed = destination(app, "new@real.example")
    assert (changed.paused_at, changed.pause_reason, changed.verified_at) == (None, "", None)


class BrokenSender:
    """A sender whose mail service is down (SES unreachable, the relay refusing)."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        self.calls += 1
        raise ConnectionError("SES endpoint unreachable")


def test_a_mail_service_that_fails_is_a_clear_message_and_a_log_line_never_a_500(
    app: Flask, ann: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12.27: a sender that raises made adding a destination a 500."""
    broken = BrokenSender()
    app.extensions["othermail.runtime"].sender = broken
    with caplog.at_level("ERROR"):
        response = add(ann, "me@real.example")
    assert response.status_code == 302
    page = ann.get(INDEX).get_data(as_text=True)
    assert "could not send" in page and "Resend link" in page  # the flash, and the way to try again
    assert destination(app, "me@real.example").verified_at is None
    assert broken.calls == 1
    assert any("ConnectionError" in r.getMessage() or r.exc_info for r in caplog.records if r.levelname == "ERROR")

    dest_id = destination(app, "me@real.example").id
    response = post(ann, f"/destinations/{dest_id}/resend", {}, page=INDEX)
    assert response.status_code in (302, 503)
    text = (ann.get(INDEX) if response.status_code == 302 else response).get_data(as_text=True)
    assert "could not send" in text
    response = post(
        ann, f"/destinations/{dest_id}/change", {"email": "other@real.example"}, page=f"/destinations/{dest_id}"
    )
    assert response.status_code == 302 and "could not send" in ann.get(INDEX).get_data(as_text=True)


def test_no_sender_configured_is_a_clear_message_not_a_500(app: Flask, ann: FlaskClient) -> None:
    from dataclasses import replace

    from forwarder.runtime import Runtime

    settings = replace(app.config["SETTINGS"], sender="smtp", relay_host="")  # no relay named
    app.extensions["othermail.runtime"] = Runtime.build(settings, engine=app.extensions["othermail.engine"])
    response = add(ann, "me@real.example")
    assert response.status_code == 302 and "could not send" in ann.get(INDEX).get_data(as_text=True)


def test_adding_the_accounts_own_confirmed_address_says_it_is_verified_not_that_a_link_was_sent(
    app: Flask, ann: FlaskClient, outbox: MemorySender
) -> None:
    response = add(ann, "Ann@Example.org")
    assert response.status_code == 302
    assert outbox.sent == []  # no link: the account's address was confirmed at sign-up
    page = ann.get(INDEX).get_data(as_text=True)
    assert "We sent a link" not in page and "Open it" not in page
    assert "ann@example.org is verified" in page and "forwarding there can start" in page
    assert destination(app, "ann@example.org").verified_at is not None

    dest_id = destination(app, "ann@example.org").id
    post(ann, f"/destinations/{dest_id}/change", {"email": "old@example.org"}, page=f"/destinations/{dest_id}")
    outbox.sent.clear()  # (the link to old@example.org)
    post(ann, f"/destinations/{dest_id}/change", {"email": "ann@example.org"}, page=f"/destinations/{dest_id}")
    assert outbox.sent == [] and destination(app, "ann@example.org").verified_at is not None
    page = ann.get(INDEX).get_data(as_text=True)
    assert "until the link we sent is opened" not in page and "ann@example.org is verified" in page
