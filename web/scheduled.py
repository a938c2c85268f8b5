"""Jobs the web app's deployment runs on a schedule rather than per request.

On AWS zappa turns ``events`` in zappa_settings.json into EventBridge rules that invoke the web
app's own function with ``(event, context)``: ``web.scheduled.recheck_domains`` every six hours is
the serverless twin of the one box's ``othermail domains recheck`` timer. It runs inside the app
(``web.wsgi.app``, secrets from SSM or Secrets Manager already laid over), so it reads the same
settings as the pages do: ``OTHERMAIL_WEB_DNS_NAMESERVER``, ``OTHERMAIL_WEB_DNS_TIMEOUT``,
``OTHERMAIL_WEB_DOMAIN_GRACE_HOURS`` and the sender.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask

logger = logging.getLogger("othermail.scheduled")


def recheck_domains(event: Any = None, context: Any = None, app: Flask | None = None) -> dict[str, Any]:
    """Check users' domains again (forwarder/ops/domain_recheck.py); one JSON line per run.

    Raises when a domain could not be checked, so the invocation shows as failed in CloudWatch.
    Nothing was lost: the domains it could not check keep their status until the next run.
    """
    logger.setLevel(logging.INFO)  # Lambda's root logger passes WARNING and up only
    if app is None:
        from web.wsgi import app
    assert app is not None  # for mypy: the import above binds it
    from forwarder.ops.domain_recheck import recheck_all
    from web.services import domains
    from web.services.context import ServiceContext

    ctx: ServiceContext = app.extensions["othermail.services"]
    with app.app_context():
        report = recheck_all(
            ctx.runtime.sessions,
            domains.resolver(ctx),
            ctx.domain_grace,
            sesv2=lambda: ctx.sesv2 if ctx.uses_ses else None,
            region=ctx.settings.aws_region,
            on_line=logger.info,
            time_left=lambda: _time_left(context),
        )
    result = {
        "event": "domains-recheck",
        "checked": report.checked,
        "could_not_check": report.unknown,
        "postponed": report.postponed,
        **{status: report.statuses[status] for status in ("verified", "failing", "suspended")},
    }
    logger.info(json.dumps(result))
    if report.unknown:
        raise RuntimeError(report.summary())
    return result


#: Seconds a run keeps in hand: one more domain's DNS and SES checks fit in it.
RESERVE_SECONDS = 10.0


def _time_left(context: Any) -> bool:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining is None or remaining() > RESERVE_SECONDS * 1000
