"""Check every verified, failing and suspended user domain again, and move its status.

The loop behind ``othermail domains recheck`` (one box: a systemd timer) and the web app's
scheduled Lambda on AWS (``web.scheduled.recheck_domains``, a zappa event). Each domain is checked
and committed in its own session, so a domain deleted or changed in the web app meanwhile is
skipped, and one slow name server holds up nothing else.

Being the job that runs on a schedule everywhere, it first deletes the forwarder's rate-limit
windows of past days (forwarder/adapters/sql/limit_windows.py), which forwarding no longer deletes
per message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dns.resolver
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker


@dataclass
class RecheckReport:
    checked: int = 0
    unknown: int = 0
    postponed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: Rate-limit windows of past days deleted before the domains were checked.
    windows_pruned: int = 0

    def summary(self) -> str:
        return (
            f"{self.checked} domain(s) checked: {self.statuses['verified']} verified, "
            f"{self.statuses['failing']} failing, {self.statuses['suspended']} suspended, "
            f"{self.unknown} could not be checked"
            + (f", {self.postponed} left for the next run (out of time)" if self.postponed else "")
        )


def recheck_all(
    sessions: sessionmaker[Session],
    resolver: dns.resolver.Resolver,
    grace: timedelta,
    *,
    sesv2: Callable[[], Any | None],
    region: str,
    on_line: Callable[[str], None] = lambda line: None,
    time_left: Callable[[], bool] = lambda: True,
) -> RecheckReport:
    """``sesv2`` makes the SESv2 client, or None when the service does not send through SES; it is
    called at most once, and only when a domain has an SES identity. The domains checked longest
    ago go first; when ``time_left()`` turns false (a Lambda near its timeout) the rest wait for
    the next run, and are first then."""
    from forwarder.adapters.sql import limit_windows
    from forwarder.adapters.sql.user_domains import RECHECKED, CheckResult
    from forwarder.ops.domain_checks import apply_check, check_with_ses
    from models import UserDomain, utcnow

    report = RecheckReport()
    with sessions() as db:
        report.windows_pruned = limit_windows.prune(db.connection(), utcnow())
        db.commit()
        ids = db.scalars(
            select(UserDomain.id)
            .where(UserDomain.status.in_(RECHECKED))
            .order_by(UserDomain.last_checked_at.is_(None).desc(), UserDomain.last_checked_at, UserDomain.name)
        ).all()
    client: Any = None
    client_made = False
    for position, domain_id in enumerate(ids):
        if not time_left():
            report.postponed = len(ids) - position
            break
        with sessions() as db:
            domain = db.get(UserDomain, domain_id)
            if domain is None or domain.status not in RECHECKED:
                continue  # deleted or changed in the web app meanwhile
            before = domain.status
            # SES's verdict counts for a domain that has an SES identity (one added while the
            # service sent through SES); for the others ownership is what can be checked
            if domain.ses_identity_created_at is not None and not client_made:
                client, client_made = sesv2(), True
            with_ses = client if domain.ses_identity_created_at is not None else None
            result = check_with_ses(domain, resolver, with_ses, region)
            apply_check(domain, result, utcnow(), grace)
            db.commit()
            report.checked += 1
            report.statuses[domain.status] += 1
            report.unknown += result.result is CheckResult.UNKNOWN
            line = f"{domain.name}: {before} -> {domain.status} (check {result.result.value})"
            if result.result is not CheckResult.PASS:
                line += f": {result.summary}"
            on_line(line)
    return report
