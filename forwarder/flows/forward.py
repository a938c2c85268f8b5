"""The forwarding pipeline every ingress shares: resolve, decide, rewrite, claim, send, record.

The Lambda handler, the SQS worker, the SMTP listener and the CLI all hand raw bytes and an
:class:`Inbound` description to :meth:`Forwarder.process`. The core decides and rewrites; this
module does the I/O around it through ports (a directory, a sender) and logs every outcome as one
structured line. Each recipient costs the directory (forwarder/adapters/sql/directory/):

1. one ``Directory.begin`` (forwarder/ports.py): resolve the alias, run the core's pure decision,
   and either record a drop or claim every unpaused destination and count the message, in one transaction;
2. one send per claimed copy;
3. one ``Directory.settle``: record what the sends did, in one transaction (a copy whose send
   failed for now is freed there for the retry, then the error propagates).

All three on one pooled connection (``Directory.one_connection``), which holds no transaction
between them.

A dropped message is step 1 alone; a bounce for an expired reject-mode alias adds its own record.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forwarder.adapters.sql.directory import (
    Claim,
    ClaimState,
    DeliveryKey,
    Finished,
    MessageMeta,
    Opening,
    ResolvedAlias,
    Target,
)
from forwarder.core import Decision, Outcome, Policy, Prepared, Result, Verdicts, forward, prepare
from forwarder.core.twoway import TwoWay
from forwarder.core.validator import SESV2_MAX_BYTES
from forwarder.errors import DeliveryInProgress, PermanentSendError
from forwarder.flows.expired_reject import EXPIRED_OUTCOMES, decide_expired_reject
from forwarder.flows.notices import Notifier, Unforwarded
from forwarder.flows.outcome_log import OutcomeLog, Report, redact
from forwarder.flows.reply import Replier, ReplyInbound
from forwarder.flows.two_way import Prepared2Way, TwoWayForward
from forwarder.ports import Bouncer, Directory, Sender

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


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the core decided for one recipient, as :meth:`Directory.begin` acts on it."""

    #: FORWARDED: claim the destinations; anything else is recorded.
    decision: Decision
    result: Result
    #: An expired reject-mode alias: the core's decision, which ``decision`` (bounce or drop) replaces.
    expired: Decision | None = None
    #: Contacts the message's first claim counts one forwarded message for (two-way aliases).
    contacts: tuple[int, ...] = ()
    #: Contacts the message's record counts one blocked message for (a refused known sender).
    blocked_contacts: tuple[int, ...] = ()


class Forwarder:
    def __init__(
        self,
        directory: Directory,
        sender: Sender | None,
        policy: Policy,
        clock: Callable[[], datetime],
        max_bytes: int = SESV2_MAX_BYTES,
        outcome_log: OutcomeLog | None = None,
        notifier: Notifier | None = None,
        bouncer: Bouncer | None = None,
        replies: Replier | None = None,
        two_way: TwoWayForward | None = None,
    ) -> None:
        self.directory = directory
        #: Two-way aliases: mail to a contact's reverse address goes out from the alias
        #: (forwarder/flows/reply.py); without one, such an address is an unknown alias.
        self.replies = replies
        #: Two-way aliases: forwarded mail names outside people by reverse addresses, and the
        #: sender rules are applied first (forwarder/flows/two_way.py); None forwards one way.
        self.two_way = two_way
        self.notifier = notifier
        #: Sends the bounces of reject-mode expired aliases (the Lambda's SES SendBounce); without
        #: one, such mail is dropped (the one box refuses it at RCPT instead).
        self.bouncer = bouncer
        self.sender = sender
        self.policy = policy
        self.max_bytes = max_bytes
        self._now = clock
        self._log = outcome_log or OutcomeLog()

    def _result(
        self, message: Prepared, inbound: Inbound, resolved: ResolvedAlias | None, two_way: TwoWay | None = None
    ) -> Result:
        state = resolved.state if resolved is not None else None
        try:
            return forward(message, state, inbound.verdicts, self.policy, self._now(), self.max_bytes, two_way=two_way)
        except Exception as exc:  # a bug in the core must not lose the message silently
            logger.exception("core failed on message %s", inbound.message_id)
            return Result(
                Decision(Outcome.DROPPED_INVALID, f"internal error while rewriting: {exc.__class__.__name__}")
            )

    def evaluate(self, message: Prepared, inbound: Inbound, recipient: str) -> tuple[ResolvedAlias | None, Result]:
        """Resolve, decide and rewrite for one recipient: what the Lambda does before sending."""
        resolved = self.directory.resolve(recipient)
        return resolved, self._result(message, inbound, resolved)

    def preview(self, raw: bytes, inbound: Inbound) -> list[tuple[str, Result]]:
        """Everything :meth:`process` decides, without claiming, sending or recording."""
        message = prepare(raw, inbound.mail_from)
        return [(r, self.evaluate(message, inbound, r)[1]) for r in _unique(inbound.recipients)]

    def _plan(
        self,
        message: Prepared,
        inbound: Inbound,
        resolved: ResolvedAlias | None,
        two: Prepared2Way | None = None,
        reply_bounce: Decision | None = None,
    ) -> _Plan:
        """The decision :meth:`Directory.begin` runs inside its transaction (pure). ``reply_bounce``:
        what a bounce or an auto-reply that answers mail the alias sent becomes, once the alias's
        state, the sender rules and the core have found it a bounce or an auto-reply."""
        blocked = two.blocked if two is not None and resolved is not None else None
        if blocked is not None and two is not None:  # before anything is counted against the limits
            return _Plan(blocked, Result(blocked), blocked_contacts=two.contacts.blocked)
        two_way = None
        if two is not None and resolved is not None and self.two_way is not None:
            two_way = self.two_way.two_way(two, resolved.state.address, resolved.display_format)
        result = self._result(message, inbound, resolved, two_way)
        if reply_bounce is not None and result.outcome in (Outcome.DROPPED_BOUNCE, Outcome.DROPPED_AUTO_REPLY):
            return _Plan(reply_bounce, Result(reply_bounce))
        if result.outcome in EXPIRED_OUTCOMES and resolved is not None and resolved.expired_action == "reject":
            decision = decide_expired_reject(result.decision, inbound.verdicts, can_bounce=self.bouncer is not None)
            return _Plan(decision, result, expired=result.decision)
        if result.decision.forwards and self.sender is None:
            raise RuntimeError("this Forwarder has no sender; use preview()")
        return _Plan(result.decision, result, contacts=two.contacts.counted if two is not None else ())

    def process(self, raw: bytes, inbound: Inbound) -> list[Report]:
        """Forward ``raw`` to every recipient's destinations, exactly once each.

        Raises :class:`RetryableError` (after recording what it could) when a retry is needed.
        Every step of the message takes the one database connection (:meth:`Directory.one_connection`).
        """
        with self.directory.one_connection():
            return self._process(raw, inbound)

    def _process(self, raw: bytes, inbound: Inbound) -> list[Report]:
        started = time.perf_counter()
        reports: list[Report] = []
        try:
            message = prepare(raw, inbound.mail_from)
        except Exception as exc:  # a bug in the core: record it for every recipient, keep going
            logger.exception("core failed to read message %s", inbound.message_id)
            meta = MessageMeta("", "", len(raw), inbound.received_at, inbound.raw_key)
            failed = Decision(Outcome.DROPPED_INVALID, f"internal error while reading: {exc.__class__.__name__}")
            plan = _Plan(failed, Result(failed))
            for recipient in _unique(inbound.recipients):
                opening = self.directory.begin(inbound.message_id, recipient, meta, lambda _resolved: plan)
                reports.append(self._recorded(inbound, recipient, opening, meta))
            self._log_all(reports, started)
            return reports
        meta = MessageMeta(message.sender, message.subject, len(raw), inbound.received_at, inbound.raw_key)
        for recipient in _unique(inbound.recipients):
            contact = self.replies.contact(recipient) if self.replies is not None else None
            if contact is not None and self.replies is not None:
                sent = ReplyInbound(
                    inbound.message_id,
                    recipient,
                    inbound.verdicts,
                    inbound.mail_from,
                    inbound.received_at,
                    inbound.raw_key,
                    len(raw),
                )
                reports.append(self.replies.process(message, sent, contact))
                continue
            reply_bounce = self._answers_reply(message, recipient)
            two = None
            if self.two_way is not None:
                by_mail = self.two_way.unsubscribe_by_mail(recipient)
                if by_mail is not None:
                    handled = self.directory.begin(inbound.message_id, recipient, meta, _always(by_mail))
                    reports.append(self._recorded(inbound, recipient, handled, meta))
                    continue
                two = self.two_way.prepare(message, recipient)
            opening = self.directory.begin(
                inbound.message_id,
                recipient,
                meta,
                functools.partial(self._plan, message, inbound, two=two, reply_bounce=reply_bounce),
            )
            # Notices go out once each outcome is recorded: should a later send raise, the retry
            # would find these outcomes recorded (duplicates) and tell nobody.
            if opening.recorded is None:
                done = self._deliver(inbound, recipient, opening, meta, self._links(message, two))
            else:
                done = [self._recorded(inbound, recipient, opening, meta)]
                if opening.plan.expired is not None:
                    done = [self._bounce(inbound, opening.plan.expired, done[0], meta)]
                self._notify(done, meta)
            reports.extend(done)
        self._log_all(reports, started)
        return reports

    def _answers_reply(self, message: Prepared, recipient: str) -> Decision | None:
        """``dropped-reply-bounce`` for a bounce or an auto-reply to an alias that answers mail the
        alias sent (forwarder/flows/reply.py), applied by :meth:`_plan` only where the core drops it
        as a bounce or an auto-reply (not for a switched-off alias or a blocked sender); None for
        anything else. Ordinary mail costs no look-up here."""
        facts = message.facts
        if self.replies is None or self.two_way is None or not (facts.is_bounce or facts.is_auto_reply):
            return None
        resolved = self.directory.resolve(recipient)
        if resolved is None:
            return None
        decision = self.replies.automatic(message, resolved.alias_id)
        return decision if decision is not None and decision.outcome is Outcome.DROPPED_REPLY_BOUNCE else None

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

    @staticmethod
    def _recorded(inbound: Inbound, recipient: str, opening: Opening[_Plan], meta: MessageMeta) -> Report:
        """The report of a message-level outcome :meth:`Directory.begin` recorded."""
        decision = opening.recorded or opening.plan.decision
        return Report(
            inbound.message_id,
            recipient,
            opening.resolved.alias_id if opening.resolved is not None else None,
            None,
            decision.outcome,
            decision.reason,
            meta.bytes_in,
            duplicate=not opening.fresh,
        )

    def _bounce(self, inbound: Inbound, expired: Decision, report: Report, meta: MessageMeta) -> Report:
        """Bounce (at most once) mail to an expired reject-mode alias, once its outcome is recorded
        (forwarder/flows/expired_reject.py)."""
        if report.duplicate or report.outcome is not Outcome.BOUNCED_EXPIRED or self.bouncer is None:
            return report
        key = DeliveryKey(inbound.message_id, report.recipient, 0)
        try:
            bounce_id = self.bouncer.bounce(inbound.message_id, report.recipient)
        except Exception as exc:  # never retried: a second bounce is worse than none
            logger.error("the bounce for message %s could not be sent: %s", inbound.message_id, exc.__class__.__name__)
            failed = Decision(
                expired.outcome, f"{expired.reason}; reject: the bounce could not be sent ({exc.__class__.__name__})"
            )
            self.directory.finish(key, failed.outcome, failed.reason)
            return Report(
                report.message_id, report.recipient, report.alias_id, None, failed.outcome, failed.reason, meta.bytes_in
            )
        self.directory.finish(key, report.outcome, report.reason, provider_message_id=bounce_id or None)
        return Report(
            report.message_id,
            report.recipient,
            report.alias_id,
            None,
            report.outcome,
            report.reason,
            meta.bytes_in,
            provider_message_id=bounce_id or None,
        )

    @staticmethod
    def _paused(
        inbound: Inbound, recipient: str, alias_id: int, meta: MessageMeta, target: Target, fresh: bool
    ) -> Report:
        """The report of a paused destination (a bounce or complaint stopped it), recorded unsent."""
        return Report(
            inbound.message_id,
            recipient,
            alias_id,
            target.destination_id,
            Outcome.DROPPED_PAUSED,
            redact(target.pause_note, target.email, target.destination_id),
            meta.bytes_in,
            duplicate=not fresh,
        )

    def _deliver(
        self,
        inbound: Inbound,
        recipient: str,
        opening: Opening[_Plan],
        meta: MessageMeta,
        links: Callable[[list[str]], list[dict[str, Any]]] | None = None,
    ) -> list[Report]:
        """Send every copy :meth:`Directory.begin` claimed, then record them all at once."""
        assert opening.resolved is not None and self.sender is not None  # begin() claims for a forwarded plan only
        resolved, outgoing = opening.resolved, opening.plan.result.outgoing
        data = outgoing.as_bytes() if outgoing is not None else b""
        reports: list[Report] = []
        finished: list[Finished] = []
        retry: tuple[DeliveryKey, str] | None = None
        failure: Exception | None = None
        untried: tuple[tuple[Target, Claim], ...] = ()
        # the message's first claims: the directory records them without reading their rows again
        first: dict[str, Any] = {"alias_id": resolved.alias_id, "first": True} if opening.first else {}
        for index, (target, claim) in enumerate(opening.claims):
            key = DeliveryKey(inbound.message_id, recipient, target.destination_id)
            base: dict[str, Any] = dict(
                message_id=inbound.message_id,
                recipient=recipient,
                alias_id=resolved.alias_id,
                destination_id=target.destination_id,
                bytes_in=meta.bytes_in,
            )
            if claim.state is ClaimState.DONE:
                done = Outcome(claim.outcome)  # type: ignore[call-arg]  # lookup by value
                reports.append(Report(**base, outcome=done, reason="already delivered", duplicate=True))
                continue
            if claim.state is ClaimState.BUSY:
                failure = DeliveryInProgress(f"message {inbound.message_id} to destination {target.destination_id}")
                break
            try:
                provider_id = self.sender.send(data, sender=resolved.state.address, recipient=target.email)
            except PermanentSendError as exc:
                finished.append(Finished(key, Outcome.FAILED_REJECTED, str(exc), **first))
                # the delivery log may name the address (its owner reads it); the outcome line may not
                reason = redact(str(exc), target.email, target.destination_id)
                reports.append(Report(**base, outcome=Outcome.FAILED_REJECTED, reason=reason))
                continue
            except Exception as exc:  # retryable or unexpected: free the claim, let the caller retry
                retry = (key, f"{exc.__class__.__name__}: {exc}")
                untried = opening.claims[index + 1 :]
                # whoever logs the error (retry line, Lambda error) must not see the address either
                exc.args = tuple(
                    redact(a, target.email, target.destination_id) if isinstance(a, str) else a for a in exc.args
                )
                failure = exc
                break
            finished.append(Finished(key, Outcome.FORWARDED, "forwarded", len(data), provider_id, **first))
            reports.append(
                Report(
                    **base,
                    outcome=Outcome.FORWARDED,
                    reason="forwarded",
                    bytes_out=len(data),
                    resent=claim.state is ClaimState.RESUMED,
                    provider_message_id=provider_id,
                    repairs=opening.plan.result.repairs,
                )
            )
        # after a failed send, the copies not tried are given back: the retry claims them afresh
        unsent = [
            (DeliveryKey(inbound.message_id, recipient, target.destination_id), claim)
            for target, claim in untried
            if claim.state in (ClaimState.NEW, ClaimState.RESUMED)
        ]
        sent_ids = [f.provider_message_id for f in finished if f.outcome is Outcome.FORWARDED and f.provider_message_id]
        self.directory.settle(finished, retry, unsent, links(sent_ids) if links is not None and sent_ids else ())
        reports += [self._paused(inbound, recipient, resolved.alias_id, meta, t, fresh) for t, fresh in opening.paused]
        self._notify(reports, meta)
        if failure is not None:
            raise failure
        return reports

    def _links(self, message: Prepared, two: Prepared2Way | None) -> Callable[[list[str]], list[dict[str, Any]]] | None:
        """Two-way aliases: the thread links of the copies sent, written with their outcomes. Each
        copy's provider id (what the owner's reply will name), and the sender's own Message-ID,
        which the copy keeps where no provider replaces it (the outbox, a relay), stand for the
        sender's Message-ID."""
        original = message.split.first("message-id")
        if two is None or original is None or self.two_way is None:
            return None
        book, known = self.two_way.book, original.value.decode("ascii", "replace").strip()
        contacts = two.contacts
        return lambda sent: book.link_rows(contacts.alias_id, contacts.sender_contact_id, [*sent, known], known)


def _always(decision: Decision) -> Callable[[ResolvedAlias | None], _Plan]:
    """A plan that records ``decision`` whatever the recipient resolves to."""
    plan = _Plan(decision, Result(decision))
    return lambda _resolved: plan


def _unique(recipients: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for r in recipients:
        seen.setdefault(r.strip().lower(), None)
    return [r for r in seen if r]
