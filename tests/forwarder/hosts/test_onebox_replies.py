"""Two-way aliases on the one box: a reply over SMTP leaves from the alias; a forged one gets 550."""

from __future__ import annotations

import contextlib
import secrets
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forwarder.adapters.senders import MemorySender
from forwarder.hosts.onebox import OneBox
from forwarder.settings import Settings
from models import Alias, Delivery, Destination, User, utcnow

ALIAS = "shop-7hq2@othermail.example"
OWNER = "me@real.example"
FILTER = "filter.real.test"  # the authserv-id of the filter in front (Postfix + rspamd, say)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[OneBox]:
    with _box(tmp_path, ("127.0.0.1/32",)) as started:
        yield started


@contextlib.contextmanager
def _box(tmp_path: Path, relays: tuple[str, ...]) -> Iterator[OneBox]:
    settings = Settings(
        data_dir=tmp_path / "var",
        domains=("othermail.example",),
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
        contact_keys=(("k1", secrets.token_bytes(32)),),
        inbound_auth="trusted-relay",
        trusted_authserv_id=FILTER,
        trusted_relays=relays,
    )
    box = OneBox(settings, web_port=None, smtp_port=0, host="127.0.0.1", sender=MemorySender(), workers=1)
    with box.runtime.sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email=OWNER, verified_at=utcnow()))
        db.add(alias)
        db.commit()
    box.start()
    try:
        yield box
    finally:
        box.stop(timeout=5)


def reverse_of(box: OneBox, address: str) -> str:
    with box.runtime.sessions() as db:
        alias_id = db.query(Alias.id).filter(Alias.address == ALIAS).scalar()
    return box.runtime.contacts.create(alias_id, "othermail.example", address).reverse


def message(to: str, dmarc: str, authserv_id: str = FILTER) -> bytes:
    return (
        f"Authentication-Results: {authserv_id}; spf=pass smtp.mailfrom={OWNER};"
        f" dmarc={dmarc} header.from=real.example\r\n"
        f"From: Me <{OWNER}>\r\nTo: {to}\r\nSubject: Re: order\r\nMessage-ID: <r1@real.example>\r\n\r\n"
        f"Thanks, {OWNER}\r\n"
    ).encode()


def send(box: OneBox, to: str, raw: bytes) -> None:
    assert box.listener is not None
    with smtplib.SMTP("127.0.0.1", box.listener.port, timeout=10) as client:
        client.sendmail(OWNER, [to], raw)


def wait_for(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_reply_over_smtp_leaves_from_the_alias(box: OneBox) -> None:
    reverse = reverse_of(box, "jane@shop.example")
    send(box, reverse, message(reverse, "pass"))
    sender = box.sender
    assert isinstance(sender, MemorySender)
    wait_for(lambda: bool(sender.sent))
    [copy] = sender.sent
    assert copy.sender == ALIAS and copy.recipient == "jane@shop.example"
    assert OWNER.encode() not in copy.raw and FILTER.encode() not in copy.raw


def test_a_forged_reply_is_refused_after_data_and_recorded(box: OneBox) -> None:
    reverse = reverse_of(box, "jane@shop.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(box, reverse, message(reverse, "fail"))
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    with box.runtime.sessions() as db:
        outcomes = [row.outcome for row in db.query(Delivery).all()]
    assert outcomes == ["dropped-reply-refused"]
    # nothing spooled nor relayed; the owner alone hears of it (a notice)
    assert box.spool.pending() == [] and [m.recipient for m in box.sender.sent] == [OWNER]  # type: ignore[attr-defined]


def test_an_unknown_reverse_shaped_address_is_refused_at_rcpt(box: OneBox) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(box, "abcdefghijklmnop@othermail.example", message("abcdefghijklmnop@othermail.example", "pass"))


def test_a_pass_stamped_under_another_authserv_id_is_refused(box: OneBox) -> None:
    reverse = reverse_of(box, "jane@shop.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(box, reverse, message(reverse, "pass", authserv_id="mx.evil.example"))
    assert refused.value.smtp_code == 550
    assert [m.recipient for m in box.sender.sent] == [OWNER]  # type: ignore[attr-defined]  # the notice alone


def test_the_filter_s_pass_from_an_untrusted_address_is_refused(tmp_path: Path) -> None:
    """The right authserv-id is not enough: the SMTP client must be one of OTHERMAIL_TRUSTED_RELAYS."""
    with _box(tmp_path, ("10.0.0.1/32",)) as box:
        reverse = reverse_of(box, "jane@shop.example")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(box, reverse, message(reverse, "pass"))
        assert refused.value.smtp_code == 550
        assert [m.recipient for m in box.sender.sent] == [OWNER]  # type: ignore[attr-defined]
