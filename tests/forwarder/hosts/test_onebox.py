"""forwarder/hosts/onebox.py: what the one box does besides listening and forwarding."""

from __future__ import annotations

import os
import time
from pathlib import Path

from forwarder.adapters.senders import MemorySender
from forwarder.hosts.onebox import OneBox
from forwarder.settings import Settings


def test_the_store_keeps_mail_keep_days_and_never_what_waits_to_be_forwarded(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
        keep_days=3,
    )
    box = OneBox(settings, web_port=None, smtp_port=None, sender=MemorySender(), workers=1)
    try:
        old = box.spool.accept(b"Subject: old\r\n\r\nx\r\n", "a@example.net", ("x@othermail.example",))
        waiting = box.spool.accept(b"Subject: waiting\r\n\r\nx\r\n", "a@example.net", ("x@othermail.example",))
        fresh = box.spool.accept(b"Subject: fresh\r\n\r\nx\r\n", "a@example.net", ("x@othermail.example",))
        box.spool.done(old.spool_id)
        box.spool.done(fresh.spool_id)
        past = time.time() - 4 * 86400
        for envelope in (old, waiting):
            os.utime(settings.store_dir / envelope.key, (past, past))
        assert box.prune_store() == 1
        assert not (settings.store_dir / old.key).exists()
        assert (settings.store_dir / waiting.key).exists() and (settings.store_dir / fresh.key).exists()
    finally:
        box.stop(timeout=5)


def test_start_prunes_and_says_how_long_mail_is_kept(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
        keep_days=2,
    )
    (settings.store_dir / "smtp").mkdir(parents=True)
    stale = settings.store_dir / "smtp" / "stale"
    stale.write_bytes(b"old")
    os.utime(stale, (time.time() - 3 * 86400,) * 2)
    box = OneBox(settings, web_port=None, smtp_port=None, sender=MemorySender(), workers=1)
    try:
        started = box.start()
        assert ("store", f"{settings.store_dir.resolve()} (mail kept 2 days)") in started.lines
        deadline = time.monotonic() + 5
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not stale.exists()
    finally:
        box.stop(timeout=5)


def test_the_web_servers_request_log_holds_no_secret_link(tmp_path: Path, caplog) -> None:
    """Reset and verification links carry their token in the path; the one box's request log
    (stdout under systemd, kept by journald) names the path with the token masked (issue 12.8)."""
    import logging
    import urllib.error
    import urllib.request

    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )
    box = OneBox(settings, web_port=0, smtp_port=None, sender=MemorySender(), workers=1)
    caplog.set_level(logging.INFO)
    try:
        url = box.start().web_url
        assert url is not None
        paths = ("/reset/RESETSECRET42", "/destinations/verify/DESTSECRET42", "/email/verify/MAILSECRET42?x=1")
        for path in paths:
            try:
                urllib.request.urlopen(url + path, timeout=10).close()
            except urllib.error.HTTPError:
                pass
    finally:
        box.stop(timeout=5)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/reset/" in logged and "/destinations/verify/" in logged and "/email/verify/" in logged
    assert "SECRET42" not in logged


def test_the_hourly_prune_deletes_past_days_rate_limit_windows(tmp_path: Path) -> None:
    """Issue 15: the hot path no longer deletes old windows; the one box's hourly job does."""
    from models import RateLimitHit

    settings = Settings(data_dir=tmp_path / "var", sender="outbox", outbox=tmp_path / "var" / "outbox")
    box = OneBox(settings, web_port=None, smtp_port=None, sender=MemorySender(), workers=1)
    try:
        now = int(time.time())
        with box.runtime.sessions() as db:
            for key, start in (("mail:a:1:h", now - 3 * 86400), ("mail:a:1:h", now), ("signin:1.2.3.4", 0)):
                db.add(RateLimitHit(key=key, window_start=start, count=1))
            db.commit()
        assert box.prune_limit_windows() == 1
        with box.runtime.sessions() as db:
            kept = sorted((row.key, row.window_start) for row in db.query(RateLimitHit))
        assert kept == [("mail:a:1:h", now), ("signin:1.2.3.4", 0)]  # today's, and not a mail window
    finally:
        box.stop(timeout=5)
