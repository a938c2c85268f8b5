"""Issue 12.19 on the one box: an expired alias whose expired_action is reject is refused at RCPT
with 550 5.1.1 (the sending server bounces it); drop-mode expired aliases keep accepting and
dropping; live aliases are accepted."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from pathlib import Path

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import AddressStatus
from forwarder.hosts.onebox import OneBox
from forwarder.ops.metrics import SMTP_EVENT
from forwarder.settings import Settings
from models import Alias, make_session_factory, utcnow

LIVE = "live@othermail.example"
EXPIRED_DROP = "gone-drop@othermail.example"
EXPIRED_REJECT = "gone-reject@othermail.example"
USED_UP_REJECT = "used-up@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nbody\r\n"


def _aliases(box: OneBox) -> None:
    past = utcnow() - timedelta(hours=1)
    with make_session_factory(box.engine)() as db:
        user = ensure_user(db, "owner@owner.example")
        target = ensure_destination(db, user, "me@real.example", verified_at=utcnow())
        for address, columns in (
            (LIVE, {}),
            (EXPIRED_DROP, {"expires_at": past}),
            (EXPIRED_REJECT, {"expires_at": past, "expired_action": "reject"}),
            (USED_UP_REJECT, {"max_messages": 1, "message_count": 1, "expired_action": "reject"}),
        ):
            alias = Alias(address=address, user_id=user.id, created_at=utcnow(), **columns)
            alias.destinations.append(target)
            db.add(alias)
        db.commit()


def test_the_one_box_refuses_expired_reject_aliases_at_rcpt(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )
    box = OneBox(settings, web_port=None, smtp_port=0, host="127.0.0.1", sender=MemorySender(), workers=1)
    _aliases(box)
    started = box.start()
    try:
        with smtplib.SMTP("127.0.0.1", started.smtp_port, timeout=10) as client:
            client.ehlo()
            client.mail("jane@example.net")
            code, text = client.rcpt(EXPIRED_REJECT)
            assert code == 550 and text.startswith(b"5.1.1")
            assert client.rcpt(USED_UP_REJECT)[0] == 550  # out of messages is expired too
            assert client.rcpt(EXPIRED_DROP)[0] == 250  # drop mode: accepted, then dropped
            assert client.rcpt(LIVE)[0] == 250
            assert client.data(RAW)[0] == 250
    finally:
        box.stop()
    assert box.metrics.snapshot()[SMTP_EVENT + "rcpt-expired-reject"] == 2
    assert 'othermail_smtp_events_total{event="rcpt-expired-reject"} 2' in box.metrics_text()  # /metrics


def test_address_status_tells_the_three_apart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", sender="outbox", outbox=tmp_path / "var" / "outbox")
    box = OneBox(settings, web_port=None, smtp_port=None, sender=MemorySender(), workers=1)
    _aliases(box)
    directory = box.forwarder.directory
    assert directory.address_status(LIVE) is AddressStatus.ACCEPTS
    assert directory.address_status(EXPIRED_DROP) is AddressStatus.ACCEPTS
    assert directory.address_status(EXPIRED_REJECT.upper()) is AddressStatus.REJECTS_EXPIRED
    assert directory.address_status("nobody@othermail.example") is AddressStatus.UNKNOWN
    box.engine.dispose()
