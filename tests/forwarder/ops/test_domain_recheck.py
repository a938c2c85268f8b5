"""forwarder/ops/domain_recheck.py, the scheduled job: besides users' domains, it deletes the
forwarder's rate-limit windows of past days (which forwarding no longer deletes per message)."""

from __future__ import annotations

from datetime import timedelta

import dns.resolver
from sqlalchemy import insert, select

from forwarder.flows.mail_limits import window_start
from forwarder.ops.domain_recheck import recheck_all
from models import RateLimitHit, make_engine, make_session_factory, utcnow


def test_the_scheduled_job_deletes_the_mail_windows_of_past_days(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        sessions = make_session_factory(engine)
        today = window_start(utcnow(), "day")
        yesterday = today - 86400
        rows = [
            {"key": "mail:alias:1:hour", "window_start": yesterday + 23 * 3600, "count": 3},
            {"key": "mail:user:1:day", "window_start": yesterday, "count": 9},
            {"key": "mail:alias:1:day", "window_start": today, "count": 2},  # still counting
            {"key": "signin:192.0.2.1", "window_start": yesterday, "count": 1},  # the web app's own
        ]
        with engine.connect() as connection:
            connection.execute(insert(RateLimitHit), rows)
            connection.commit()
        report = recheck_all(
            sessions, dns.resolver.Resolver(configure=False), timedelta(hours=72), sesv2=lambda: None, region=""
        )
        assert (report.windows_pruned, report.checked) == (2, 0)
        with sessions() as db:
            left = {tuple(row) for row in db.execute(select(RateLimitHit.key, RateLimitHit.window_start))}
        assert left == {("mail:alias:1:day", today), ("signin:192.0.2.1", yesterday)}
    finally:
        engine.dispose()
