"""The forwarder Lambda: ``forwarder.hosts.lambda_handler.handler``.

Nothing connects at import time. The first invocation reads the settings from the environment
(plus the secrets that ``OTHERMAIL_SSM_PATH`` / ``OTHERMAIL_SECRETS_ARN`` point at, see
``forwarder.adapters.aws.secrets``) and builds the runtime (database engine, S3 and SES clients), which warm
invocations reuse.

SES bounce and complaint notifications (the configuration set's topic invokes the function too)
are applied by ``forwarder.adapters.sql.feedback_store``: recorded once, a bouncing destination paused, an alias
complained about switched off; nothing is sent for them.

Retryable failures (SES throttling or 5xx, S3 errors, the database unreachable, a delivery another
invocation holds) are first retried inside the invocation, with exponential backoff and full jitter,
while the time the Lambda context has left allows (``forwarder.hosts.retry``); then they propagate, so
Lambda retries the event (twice) and finally sends it to the dead-letter queue, which ``othermail
replay`` re-drives. Every delivery already made is recorded, so a retry sends nothing twice.

Each invocation ends with one CloudWatch Embedded Metric Format line on standard output: that
invocation's count of every outcome, as metrics of the ``Othermail`` namespace (see
``forwarder.ops.metrics`` and docs/operator/one-box.md, "Observability").
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forwarder.adapters.aws.events import FeedbackJob, Job, Skipped, describe_event, outside_mail_bucket, parse_event
from forwarder.adapters.aws.secrets import SECRETS_ARN, SSM_PATH, environ_with_secrets
from forwarder.core import Outcome
from forwarder.core.envelope import recipients_from_headers, verdicts_from_headers
from forwarder.core.message import split_message
from forwarder.errors import InvalidEvent
from forwarder.hosts.retry import RetryPolicy
from forwarder.ops.metrics import RETRY, emf_line
from forwarder.ports import Unforwarded
from forwarder.runtime import Runtime
from forwarder.settings import Settings

if TYPE_CHECKING:
    # Imported when the first invocation builds the runtime, not with this module: the deployed
    # entry point's import stays free of SQLAlchemy, the models, boto3 and the database driver
    # (issue 15, tests/forwarder/hosts/test_lambda_imports.py; bench/coldstart.py measures it).
    from forwarder.adapters.aws.s3 import S3Store
    from forwarder.adapters.sql.feedback_store import FeedbackStore
    from forwarder.flows.forward import Forwarder
    from forwarder.flows.outcome_log import OutcomeLog

logger = logging.getLogger("othermail.lambda")

#: When the running invocation's retry budget ends (set by :meth:`LambdaRuntime.invoke`; unset,
#: :meth:`LambdaRuntime.handle` tries each job once, as the queue worker and the tests call it).
_deadline: ContextVar[float | None] = ContextVar("othermail_retry_deadline", default=None)


@dataclass
class LambdaRuntime:
    settings: Settings
    forwarder: Forwarder
    store: S3Store
    outcome_log: OutcomeLog
    engine: Any = None
    #: Applies SES bounces and complaints (forwarder/adapters/sql/feedback_store.py); built from
    #: :attr:`parts` by the first notification, so forwarding mail never imports it.
    feedback: FeedbackStore | None = None
    #: How :meth:`invoke` retries a job within the invocation's time (forwarder/hosts/retry.py).
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The composition root this runtime was built from (None when a test assembled it by hand).
    parts: Runtime | None = None

    @classmethod
    def from_settings(cls, settings: Settings, session: Any = None) -> LambdaRuntime:
        """The Lambda's runtime, from the composition root (forwarder/runtime.py): raw mail from the
        bucket SES writes to, SES to send (unless ``OTHERMAIL_SENDER`` says otherwise), SES SendBounce."""
        parts = Runtime.build(settings, ses_inbound=True, **({"aws_session": session} if session is not None else {}))
        runtime = cls(settings, parts.forwarder, parts.ses_bucket, parts.outcome_log, parts.engine)
        runtime.parts = parts
        return runtime

    def close(self) -> None:
        """Release database connections and the sender's (an SMTP relay's) connections (tests and
        tools; Lambda keeps them for warm starts)."""
        if self.parts is not None:
            self.parts.close()
            return
        closer = getattr(self.forwarder.sender, "close", None)
        if closer is not None:
            closer()
        if self.engine is not None:
            self.engine.dispose()

    def invoke(
        self,
        event: Any,
        dimensions: Mapping[str, str] | None = None,
        emit: Callable[[str], None] | None = None,
        context: Any = None,
    ) -> dict[str, Any]:
        """:meth:`handle`, then one EMF line with this invocation's counts (the Lambda's path).

        Each job (reading the raw message and forwarding it, one idempotent unit) is retried on a
        :class:`RetryableError` within the time ``context.get_remaining_time_in_millis()`` reports,
        or :data:`forwarder.hosts.retry.DEFAULT_BUDGET_SECONDS` without a context (``othermail replay``).

        The counts are what :class:`OutcomeLog` counted during this call, so an invocation that
        raises still reports the outcomes it recorded, plus ``retry``: Lambda will run it again.
        """
        before = Counter(self.outcome_log.counts)
        failed = True
        budget = _deadline.set(self.retry.deadline(context))
        try:
            summary = self.handle(event)
            failed = False
            return summary
        finally:
            _deadline.reset(budget)
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
        raised: it is logged under the named reason ``invalid-event``, without message content and
        cut short (:func:`forwarder.adapters.aws.events.describe_event`), which keeps the dead-letter queue
        for real failures. A job whose object is outside the configured bucket and prefix is
        skipped as ``object-outside-bucket``, unread.
        """
        bucket, prefix = self.settings.s3_bucket, self.settings.s3_prefix
        try:
            items = parse_event(event, bucket=bucket, prefix=prefix)
        except InvalidEvent as exc:
            self.outcome_log.skipped("invalid-event", f"{str(exc)[:200]}: {describe_event(event)}")
            return {"records": 0, "outcomes": {"skipped:invalid-event": 1}}
        items = [
            (outside_mail_bucket(item, bucket, prefix) or item) if isinstance(item, Job) else item for item in items
        ]
        outcomes: Counter[str] = Counter()
        repairs: Counter[str] = Counter()
        for item in items:
            if isinstance(item, Skipped):
                self.outcome_log.skipped(item.reason, item.detail)
                outcomes[f"skipped:{item.reason}"] += 1
                continue
            if isinstance(item, FeedbackJob):
                outcomes.update(self._apply_feedback(item))
                continue
            for report in self._run(item):
                outcomes["duplicate" if report.duplicate else report.outcome.value] += 1
                repairs.update(report.repairs)
        return {"records": len(items), "outcomes": dict(outcomes), "repairs": dict(repairs)}

    def _apply_feedback(self, job: FeedbackJob) -> Counter[str]:
        """Record each bounce or complaint once (pausing, switching off). Nothing goes to the
        bounced address or to any sender; a bounce of the owner's reply to a contact is a notice
        to the owner (forwarder/flows/notices.py), once."""
        if self.feedback is None and self.parts is not None:
            self.feedback = self.parts.feedback
        if self.feedback is None:
            raise RuntimeError("this runtime has no feedback store (build it with from_settings)")
        counts: Counter[str] = Counter()
        for item in job.feedback:
            applied = self.feedback.apply(item)
            self.outcome_log.feedback(applied)
            counts["feedback:duplicate" if applied.duplicate else f"feedback:{item.kind}"] += 1
            notifier = self.forwarder.notifier
            if applied.reply_of is not None and item.is_bounce and not applied.duplicate and notifier is not None:
                message_id, recipient, size = applied.reply_of
                notifier.after(
                    [
                        Unforwarded(
                            message_id, recipient, applied.alias_id, None, Outcome.DROPPED_REPLY_BOUNCE, "", "", size
                        )
                    ]
                )
        return counts

    def _run(self, job: Job) -> list:
        deadline = _deadline.get()
        if deadline is None:
            return self._run_once(job)
        return self.retry.call(lambda: self._run_once(job), deadline, what=job.message_id)

    def _run_once(self, job: Job) -> list:
        raw = job.content if job.content is not None else self.store.get(job.key or "", bucket=job.bucket)
        recipients, verdicts = job.recipients, job.verdicts
        if job.recipients_from_headers:
            split = split_message(raw)
            # the service's domains and users' verified ones (forwarder/adapters/sql/user_domains.py)
            domains = self.settings.domains + self.forwarder.directory.user_domain_names()
            recipients = recipients_from_headers(split, domains)
            verdicts = verdicts_from_headers(split)
            if not recipients:
                self.outcome_log.skipped(
                    "no-recipient", f"no address on {', '.join(self.settings.domains)} in {job.key}"
                )
                return []
        # kept in the mail bucket (not an SNS action's inline copy): downloadable and releasable
        kept = job.content is None
        from forwarder.flows.forward import Inbound  # loaded with the runtime (from_settings)

        inbound = Inbound(
            job.message_id, recipients, verdicts, job.mail_from, job.received_at, raw_key=job.key if kept else None
        )
        return self.forwarder.process(raw, inbound)


def _print_line(line: str) -> None:
    """The raw line on standard output: CloudWatch Logs reads EMF only from an unprefixed line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


_runtime: LambdaRuntime | None = None


def _cold_start(environ: Mapping[str, str]) -> LambdaRuntime:
    """The runtime, from the environment plus the secrets ``OTHERMAIL_SSM_PATH`` /
    ``OTHERMAIL_SECRETS_ARN`` point at (fetched once, here).

    Reading secrets makes a boto3 session; the runtime's clients come from the same one when the
    settings name the region it was made for (they do, unless a secret names another), so botocore
    loads its endpoint and retry data once per cold start, not twice (about 50 ms of CPU here).
    """
    session = None
    region = environ.get("OTHERMAIL_AWS_REGION") or environ.get("AWS_REGION")
    if region and ((environ.get(SSM_PATH) or "").strip() or (environ.get(SECRETS_ARN) or "").strip()):
        import boto3

        session = boto3.session.Session(region_name=region)
    settings = Settings.from_env(environ_with_secrets(environ, session=session))
    shared = session if session is not None and settings.aws_region == region else None
    return LambdaRuntime.from_settings(settings, session=shared)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a cold start builds the runtime and runs its first
    invocation, then every object alive moved out of its reach (``gc.freeze``).

    A cold start allocates hundreds of thousands of objects that live as long as the container
    (modules, botocore's service models and clients, SQLAlchemy's compiled statements), and each
    full collection walks them all: about 110 ms of CPU, a sixth of the cold start
    (bench/coldstart.py). Frozen, later collections only walk what warm invocations make. The
    first invocation's own cyclic garbage, if any, is frozen with them: at most one message's
    worth, once per container.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _invoke(runtime: LambdaRuntime, event: Any, context: Any) -> dict[str, Any]:
    function = getattr(context, "function_name", None)
    return runtime.invoke(event, dimensions={"FunctionName": function} if function else None, context=context)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    global _runtime
    if _runtime is None:
        with _collector_paused():
            logging.getLogger("othermail").setLevel(logging.INFO)
            _runtime = _cold_start(os.environ)
            return _invoke(_runtime, event, context)
    return _invoke(_runtime, event, context)
