"""The forwarder Lambda: ``forwarder.aws.lambda_handler.handler``.

Nothing connects at import time. The first invocation reads the settings from the environment
(plus the secrets that ``OTHERMAIL_SSM_PATH`` / ``OTHERMAIL_SECRETS_ARN`` point at, see
``forwarder.aws.secrets``) and builds the runtime (database engine, S3 and SES clients), which warm
invocations reuse.

Retryable failures (SES throttling or 5xx, S3 errors, the database unreachable, a delivery another
invocation holds) propagate, so Lambda retries the event and finally sends it to the dead-letter
queue; every delivery already made is recorded, so a retry sends nothing twice.

Each invocation ends with one CloudWatch Embedded Metric Format line on standard output: that
invocation's count of every outcome, as metrics of the ``Othermail`` namespace (see
``forwarder.metrics`` and README.md, "Observability").
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from forwarder.aws.events import Job, Skipped, parse_event
from forwarder.aws.secrets import environ_with_secrets
from forwarder.core.envelope import recipients_from_headers, verdicts_from_headers
from forwarder.core.message import split_message
from forwarder.directory import SqlDirectory
from forwarder.errors import InvalidEvent, SettingsError
from forwarder.metrics import RETRY, emf_line
from forwarder.outcome_log import OutcomeLog
from forwarder.pipeline import Forwarder, Inbound
from forwarder.outbound import build_sender
from forwarder.settings import Settings
from forwarder.stores import S3Store

logger = logging.getLogger("othermail.lambda")


@dataclass
class LambdaRuntime:
    settings: Settings
    forwarder: Forwarder
    store: S3Store
    outcome_log: OutcomeLog
    engine: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, session: Any = None) -> "LambdaRuntime":
        import boto3

        from models import make_engine, make_session_factory, utcnow

        if not settings.s3_bucket:
            raise SettingsError("OTHERMAIL_S3_BUCKET must name the bucket the SES receipt rule writes to")
        aws = session or boto3.session.Session(region_name=settings.aws_region)
        sender = build_sender(settings, aws_session=aws)  # SES unless OTHERMAIL_SENDER says otherwise
        engine = make_engine(settings.resolved_database_url)
        directory = SqlDirectory(
            make_session_factory(engine), timedelta(seconds=settings.claim_timeout_seconds), clock=utcnow
        )
        log = OutcomeLog()
        forwarder = Forwarder(directory, sender, settings.policy, utcnow, settings.max_bytes, log)
        return cls(settings, forwarder, S3Store(aws.client("s3"), settings.s3_bucket), log, engine)

    def close(self) -> None:
        """Release database connections and the sender's (an SMTP relay's) connections (tests and
        tools; Lambda keeps them for warm starts)."""
        closer = getattr(self.forwarder.sender, "close", None)
        if closer is not None:
            closer()
        if self.engine is not None:
            self.engine.dispose()

    def invoke(self, event: Any, dimensions: Mapping[str, str] | None = None,
               emit: Callable[[str], None] | None = None) -> dict[str, Any]:
        """:meth:`handle`, then one EMF line with this invocation's counts (the Lambda's path).

        The counts are what :class:`OutcomeLog` counted during this call, so an invocation that
        raises still reports the outcomes it recorded, plus ``retry``: Lambda will run it again.
        """
        before = Counter(self.outcome_log.counts)
        failed = True
        try:
            summary = self.handle(event)
            failed = False
            return summary
        finally:
            counts = Counter(self.outcome_log.counts)
            counts.subtract(before)
            counts = +counts  # keep positive counts only
            if failed:
                counts[RETRY] += 1
            if counts:
                try:
                    (emit or _print_line)(emf_line(counts, dimensions=dimensions))
                except Exception:  # metrics must never turn a handled event into a failed one
                    logger.exception("could not write the EMF metrics line")

    def handle(self, event: Any) -> dict[str, Any]:
        """Process every record; retryable trouble raises, an event nobody can process is logged.

        An event that is not one of the accepted shapes cannot succeed on a retry, so it is not
        raised: it is logged whole (async Lambda events are at most 256 KB) under the named reason
        ``invalid-event``, which loses nothing and keeps the dead-letter queue for real failures.
        """
        try:
            items = parse_event(event, bucket=self.settings.s3_bucket, prefix=self.settings.s3_prefix)
        except InvalidEvent as exc:
            self.outcome_log.skipped("invalid-event", f"{exc}: {json.dumps(event, default=str)[:262144]}")
            return {"records": 0, "outcomes": {"skipped:invalid-event": 1}}
        outcomes: Counter[str] = Counter()
        repairs: Counter[str] = Counter()
        for item in items:
            if isinstance(item, Skipped):
                self.outcome_log.skipped(item.reason, item.detail)
                outcomes[f"skipped:{item.reason}"] += 1
                continue
            for report in self._run(item):
                outcomes["duplicate" if report.duplicate else report.outcome.value] += 1
                repairs.update(report.repairs)
        return {"records": len(items), "outcomes": dict(outcomes), "repairs": dict(repairs)}

    def _run(self, job: Job) -> list:
        raw = job.content if job.content is not None else self.store.get(job.key or "", bucket=job.bucket)
        recipients, verdicts = job.recipients, job.verdicts
        if job.recipients_from_headers:
            split = split_message(raw)
            # the service's domains and users' verified ones (forwarder/user_domains.py)
            domains = self.settings.domains + self.forwarder.directory.user_domains.names()
            recipients = recipients_from_headers(split, domains)
            verdicts = verdicts_from_headers(split)
            if not recipients:
                self.outcome_log.skipped("no-recipient", f"no address on {', '.join(self.settings.domains)} in {job.key}")
                return []
        inbound = Inbound(job.message_id, recipients, verdicts, job.mail_from, job.received_at)
        return self.forwarder.process(raw, inbound)


def _print_line(line: str) -> None:
    """The raw line on standard output: CloudWatch Logs reads EMF only from an unprefixed line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


_runtime: LambdaRuntime | None = None


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    global _runtime
    if _runtime is None:
        logging.getLogger("othermail").setLevel(logging.INFO)
        # OTHERMAIL_SSM_PATH / OTHERMAIL_SECRETS_ARN: the database URL and other secrets, fetched once here
        _runtime = LambdaRuntime.from_settings(Settings.from_env(environ_with_secrets()))
    function = getattr(context, "function_name", None)
    return _runtime.invoke(event, dimensions={"FunctionName": function} if function else None)
