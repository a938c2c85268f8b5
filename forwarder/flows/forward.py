"""The forwarding pipeline every ingress shares: resolve, decide, rewrite, claim, send, record.

The Lambda handler, the SQS worker, the SMTP listener and the CLI all hand raw bytes and an
:class:`Inbound` description to :meth:`Forwarder.process`. The core decides and rewrites; this
module does the I/O around it through ports (a directory, a sender) and logs every outcome as one
structured line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forwarder.adapters.senders import Sender
from forwarder.adapters.sql.directory import ClaimState, DeliveryKey, MessageMeta, ResolvedAlias, SqlDirectory, Target
from forwarder.core import Decision, Outcome, Policy, Prepared, Result, Verdicts, forward, prepare
from forwarder.core.validator import SESV2_MAX_BYTES
from forwarder.errors import DeliveryInProgress, PermanentSendError
from forwarder.flows.expired_reject import EXPIRED_OUTCOMES, decide_expired_reject
from forwarder.flows.notices import Notifier, Unforwarded
from forwarder.flows.outcome_log import OutcomeLog, Report, redact
from forwarder.ports import Bouncer

logger = logging.getLogger("othermail.pipeline")


@dataclass(frozen=True, slots=True)
class Inbound:
    """What an ingress knows about a message besides its bytes."""

    message_id: str
    recipients: tuple[str, ...]
    verdicts: Verdicts = field(default_factory=Verdicts)
    mail_from: str | None = None
    received_at: datetime | None = None
    #: Where the raw message is kept in the mail store (S3 key, or the one box's spool key), when
    #: it is kept: recorded with the outcomes so that the owner can download or release it.
    raw_key: str | None = None


class Forwarder:
    def __init__(
        self,
        directory: SqlDirectory,
        sender: Sender | None,
        policy: Policy,
        clock: Callable[[], datetime],
        max_bytes: int = SESV2_MAX_BYTES,
        outcome_log: OutcomeLog | None = None,
        notifier: Notifier | None = None,
        bouncer: Bouncer | None = None,
    ) -> None:
        self.directory = directory
        self.notifier = notifier
        #: Sends the bounces of reject-mode expired aliases (the Lambda's SES SendBounce); without
        #: one, such mail is dropped (the one box refuses it at RCPT instead).
        self.bouncer = bouncer
        self.sender = sender
        self.policy = policy
        self.max_bytes = max_bytes
        self._now = clock
        self._log = outcome_log or OutcomeLog()

    def evaluate(self, message: Prepared, inbound: Inbound, recipient: str) -> tuple[ResolvedAlias | None, Result]:
        """Resolve, decide and rewrite for one recipient: what the Lambda does before sending."""
        resolved = self.directory.resolve(recipient)
        state = resolved.state if resolved is not None else None
        try:
            result = forward(message, state, inbound.verdicts, self.policy, self._now(), self.max_bytes)
        except Exception as exc:  # a bug in the core must not lose the message silently
            logger.exception("core failed on message %s", inbound.message_id)
            result = Result(
                Decision(Outcome.DROPPED_INVALID, f"internal error while rewriting: {exc.__class__.__name__}")
            )
        return resolved, result

    def preview(self, raw: bytes, inbound: Inbound) -> list[tuple[str, Result]]:
        """Everything :meth:`process` decides, without claiming, sending or recording."""
        message = prepare(raw, inbound.mail_from)
        return [(r, self.evaluate(message, inbound, r)[1]) for r in _unique(inbound.recipients)]

    def process(self, raw: bytes, inbound: Inbound) -> list[Report]:
        """Forward ``raw`` to every recipient's destinations, exactly once each.

        Raises :class:`RetryableError` (after recording what it could) when a retry is needed.
        """
        started = time.perf_counter()
        reports: list[Report] = []
        try:
            message = prepare(raw, inbound.mail_from)
        except Exception as exc:  # a bug in the core: record it for every recipient, keep going
            logger.exception("core failed to read message %s", inbound.message_id)
            meta = MessageMeta("", "", len(raw), inbound.received_at, inbound.raw_key)
            failed = Decision(Outcome.DROPPED_INVALID, f"internal error while reading: {exc.__class__.__name__}")
            for recipient in _unique(inbound.recipients):
                reports.append(self._record(inbound, recipient, self.directory.resolve(recipient), meta, failed))
            self._log_all(reports, started)
            return reports
        meta = MessageMeta(message.sender, message.subject, len(raw), inbound.received_at, inbound.raw_key)
        for recipient in _unique(inbound.recipients):
            resolved, result = self.evaluate(message, inbound, recipient)
            # Notices go out as each outcome is recorded, not at the end: should a later send raise,
            # the retry would find these outcomes recorded (duplicates) and tell nobody.
            if result.outcome in EXPIRED_OUTCOMES and resolved is not None and resolved.expired_action == "reject":
                done = [self._reject_expired(inbound, recipient, resolved, meta, result.decision)]
                self._notify(done, meta)
            elif result.outcome is not Outcome.FORWARDED or resolved is None or result.outgoing is None:
                done = [self._record(inbound, recipient, resolved, meta, result.decision)]
                self._notify(done, meta)
            else:
                done = self._deliver(inbound, recipient, resolved, meta, result.outgoing.as_bytes(), result.repairs)
            reports.extend(done)
        self._log_all(reports, started)
        return reports

    def _notify(self, reports: list[Report], meta: MessageMeta) -> None:
        if self.notifier is not None:
            self.notifier.after(
                Unforwarded(
                    r.message_id,
                    r.recipient,
                    r.alias_id,
                    r.destination_id,
                    r.outcome,
                    meta.mail_from,
                    meta.subject,
                    meta.bytes_in,
                    r.duplicate,
                )
                for r in reports
            )

    def _log_all(self, reports: list[Report], started: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        for report in reports:
            self._log.outcome(report, elapsed_ms)

    def _record(
        self, inbound: Inbound, recipient: str, resolved: ResolvedAlias | None, meta: MessageMeta, decision: Decision
    ) -> Report:
        alias_id = resolved.alias_id if resolved is not None else None
        key = DeliveryKey(inbound.message_id, recipient, 0)
        fresh = self.directory.record(key, alias_id, meta, decision.outcome, decision.reason)
        return Report(
            inbound.message_id,
            recipient,
            alias_id,
            None,
            decision.outcome,
            decision.reason,
            meta.bytes_in,
            duplicate=not fresh,
        )

    def _reject_expired(
        self, inbound: Inbound, recipient: str, resolved: ResolvedAlias, meta: MessageMeta, expired: Decision
    ) -> Report:
        """Bounce (at most once) or drop mail to an expired reject-mode alias (forwarder/flows/expired_reject.py)."""
        decision = decide_expired_reject(expired, inbound.verdicts, can_bounce=self.bouncer is not None)
        report = self._record(inbound, recipient, resolved, meta, decision)
        if report.duplicate or decision.outcome is not Outcome.BOUNCED_EXPIRED or self.bouncer is None:
            return report
        key = DeliveryKey(inbound.message_id, recipient, 0)
        try:
            bounce_id = self.bouncer.bounce(inbound.message_id, recipient)
        except Exception as exc:  # never retried: a second bounce is worse than none
            logger.error("the bounce for message %s could not be sent: %s", inbound.message_id, exc.__class__.__name__)
            failed = Decision(
                expired.outcome, f"{expired.reason}; reject: the bounce could not be sent ({exc.__class__.__name__})"
            )
            self.directory.finish(key, failed.outcome, failed.reason)
            return Report(
                report.message_id, recipient, report.alias_id, None, failed.outcome, failed.reason, meta.bytes_in
            )
        self.directory.finish(key, decision.outcome, decision.reason, provider_message_id=bounce_id or None)
        return Report(
            report.message_id,
            recipient,
            report.alias_id,
            None,
            decision.outcome,
            decision.reason,
            meta.bytes_in,
            provider_message_id=bounce_id or None,
        )

    def _paused(
        self,
        inbound: Inbound,
        recipient: str,
        resolved: ResolvedAlias,
        meta: MessageMeta,
        key: DeliveryKey,
        target: Target,
    ) -> Report:
        """Record, without sending, that ``target`` is paused (a bounce or complaint stopped it)."""
        when = target.paused_at.strftime("%Y-%m-%d %H:%M UTC") if target.paused_at else "earlier"
        why = f": {target.pause_reason}" if target.pause_reason else ""
        reason = f"destination paused on {when}{why}"
        fresh = self.directory.record(key, resolved.alias_id, meta, Outcome.DROPPED_PAUSED, reason)
        return Report(
            inbound.message_id,
            recipient,
            resolved.alias_id,
            target.destination_id,
            Outcome.DROPPED_PAUSED,
            redact(reason, target.email, target.destination_id),
            meta.bytes_in,
            duplicate=not fresh,
        )

    def _deliver(
        self,
        inbound: Inbound,
        recipient: str,
        resolved: ResolvedAlias,
        meta: MessageMeta,
        data: bytes,
        repairs: tuple[str, ...],
    ) -> list[Report]:
        if self.sender is None:
            raise RuntimeError("this Forwarder has no sender; use preview()")
        reports: list[Report] = []

        def add(report: Report) -> None:
            reports.append(report)
            self._notify([report], meta)

        # paused ones last: the first claim of a message is the one that counts it for the alias
        for target in sorted(resolved.targets, key=lambda t: t.paused):
            key = DeliveryKey(inbound.message_id, recipient, target.destination_id)
            if target.paused:
                add(self._paused(inbound, recipient, resolved, meta, key, target))
                continue
            claim = self.directory.claim(key, resolved.alias_id, meta)
            base: dict[str, Any] = dict(
                message_id=inbound.message_id,
                recipient=recipient,
                alias_id=resolved.alias_id,
                destination_id=target.destination_id,
                bytes_in=meta.bytes_in,
            )
            if claim.state is ClaimState.LIMIT:
                limit = Decision(Outcome.DROPPED_EXPIRED_COUNT, "the alias reached its message limit")
                add(self._record(inbound, recipient, resolved, meta, limit))
                break
            if claim.state is ClaimState.RATE_LIMITED:
                reason = claim.window.reason() if claim.window else "an hourly or daily message limit was reached"
                limited = Decision(Outcome.DROPPED_RATE_LIMITED, reason)
                add(self._record(inbound, recipient, resolved, meta, limited))
                break
            if claim.state is ClaimState.DONE:
                add(Report(**base, outcome=Outcome(claim.outcome), reason="already delivered", duplicate=True))  # type: ignore[call-arg]  # lookup by value
                continue
            if claim.state is ClaimState.BUSY:
                raise DeliveryInProgress(f"message {inbound.message_id} to destination {target.destination_id}")
            try:
                provider_id = self.sender.send(data, sender=resolved.state.address, recipient=target.email)
            except PermanentSendError as exc:
                self.directory.finish(key, Outcome.FAILED_REJECTED, str(exc))
                # the delivery log may name the address (its owner reads it); the outcome line may not
                reason = redact(str(exc), target.email, target.destination_id)
                add(Report(**base, outcome=Outcome.FAILED_REJECTED, reason=reason))
                continue
            except Exception as exc:  # retryable or unexpected: free the claim, let the caller retry
                self.directory.release(key, f"{exc.__class__.__name__}: {exc}")
                # whoever logs the error (retry line, Lambda error) must not see the address either
                exc.args = tuple(
                    redact(a, target.email, target.destination_id) if isinstance(a, str) else a for a in exc.args
                )
                raise
            self.directory.finish(key, Outcome.FORWARDED, "forwarded", len(data), provider_id)
            add(
                Report(
                    **base,
                    outcome=Outcome.FORWARDED,
                    reason="forwarded",
                    bytes_out=len(data),
                    resent=claim.state is ClaimState.RESUMED,
                    provider_message_id=provider_id,
                    repairs=repairs,
                )
            )
        return reports


def _unique(recipients: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for r in recipients:
        seen.setdefault(r.strip().lower(), None)
    return [r for r in seen if r]
