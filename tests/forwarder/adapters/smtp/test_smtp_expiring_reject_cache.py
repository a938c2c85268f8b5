"""The RCPT check's cache never answers 250 for an alias that has become expired-with-reject:
an alias that may expire (max_messages, expires_at, idle_days) with expired_action reject is asked
about at every RCPT, while a plain alias keeps being answered from the cache."""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta
from pathlib import Path

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import AddressStatus
from forwarder.hosts.onebox import OneBox
from forwarder.settings import Settings
from models import Alias, make_session_factory, utcnow

ONE_SHOT = "one-shot@othermail.example"
PLAIN = "plain@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nbody\r\n"


def _box(tmp_path: Path, smtp_port: int | None) -> tuple[OneBox, MemorySender]:
    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )
    sender = MemorySender()
    box = OneBox(settings, web_port=None, smtp_port=smtp_port, host="127.0.0.1", sender=sender, workers=1)
    with make_session_factory(box.engine)() as db:
        user = ensure_user(db, "owner@owner.example")
        target = ensure_destination(db, user, "me@real.example", verified_at=utcnow())
        for address, columns in ((ONE_SHOT, {"max_messages": 1, "expired_action": "reject"}), (PLAIN, {})):
            alias = Alias(address=address, user_id=user.id, created_at=utcnow(), **columns)
            alias.destinations.append(target)
            db.add(alias)
        db.commit()
    return box, sender


def _send(port: int, recipient: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("jane@example.net", [recipient], RAW)


def _wait_for(sender: MemorySender, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(sender.sent) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sender.sent) == count


def test_a_used_up_reject_alias_is_refused_at_the_next_rcpt(tmp_path: Path) -> None:
    box, sender = _box(tmp_path, smtp_port=0)
    started = box.start()
    try:
        _send(started.smtp_port, ONE_SHOT)  # its one message: accepted and forwarded
        _wait_for(sender, 1)
        with smtplib.SMTP("127.0.0.1", started.smtp_port, timeout=10) as client:
            client.ehlo()
            client.mail("jane@example.net")
            code, text = client.rcpt(ONE_SHOT)
            assert (code, text[:5]) == (550, b"5.1.1")  # not a 250 from the cache, then a silent drop
            assert client.rcpt(PLAIN)[0] == 250
    finally:
        box.stop()


def test_only_aliases_that_may_expire_with_reject_are_asked_every_time(tmp_path: Path) -> None:
    box, _ = _box(tmp_path, smtp_port=None)
    directory = box.forwarder.directory
    assert directory.address_status(PLAIN) is AddressStatus.ACCEPTS
    assert directory.address_status(ONE_SHOT) is AddressStatus.ACCEPTS_UNCACHED
    with make_session_factory(box.engine)() as db:
        for alias in db.query(Alias):
            alias.max_messages = None
            alias.expires_at = utcnow() + timedelta(days=1)
        db.commit()
    assert directory.address_status(ONE_SHOT) is AddressStatus.ACCEPTS_UNCACHED  # a date expires too
    assert directory.address_status(PLAIN) is AddressStatus.ACCEPTS  # drop mode: expiry needs no RCPT answer
    box.engine.dispose()
