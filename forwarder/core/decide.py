"""Decide, from plain values only, whether a message goes to an alias's destinations.

The checks run in a fixed order and the first that applies names the outcome:

1. unknown or deleted alias; 2. virus FAIL (always dropped, whatever the policy); 3. disabled;
4. expired by time, then by idleness, then by message count; 5. loop (see the header rules);
6. bounce, then auto-reply (rule below); 7. spam FAIL; 8. DMARC FAIL under a ``reject`` policy;
9. no verified destination. Anything else is forwarded, if the rewritten message passes the
pre-flight validator.

Bounces and auto-replies. An alias only receives mail; it never sends any. A bounce (a null
envelope sender ``<>`` or a ``multipart/report`` delivery or feedback report) or an auto-reply
(``Auto-Submitted: auto-replied``, RFC 3834, and the older ``X-Autoreply`` / ``X-Autorespond`` /
``Precedence: auto_reply`` markers) addressed to an alias can therefore only answer mail that
somebody else sent in the alias's name: forwarding it would hand the user backscatter from forged
mail and can start loops between auto-responders, so it is dropped. ``Auto-Submitted:
auto-generated`` (receipts, notifications, newsletters) is ordinary mail and is forwarded.

Verdicts other than PASS and FAIL (GRAY, PROCESSING_FAILED, DISABLED, or a status this code does
not know) never block a message: the scanners failing must not lose mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from forwarder.core.headers import LOOP, MAX_HOPS, loop_token, loop_tokens
from forwarder.core.message import SplitMessage
from forwarder.core.outcomes import Decision, Outcome


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The receiving side's verdicts, as SES reports them (``PASS``, ``FAIL``, ``GRAY``...)."""

    spam: str = "PASS"
    virus: str = "PASS"
    spf: str = "PASS"
    dkim: str = "PASS"
    dmarc: str = "PASS"
    dmarc_policy: str | None = None


@dataclass(frozen=True, slots=True)
class AliasState:
    """What the decision needs to know of an alias, read from the database by an adapter."""

    address: str
    enabled: bool = True
    deleted: bool = False
    expires_at: datetime | None = None
    idle_days: int | None = None
    max_messages: int | None = None
    message_count: int = 0
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    destination_count: int = 1


@dataclass(frozen=True, slots=True)
class Policy:
    """Operator choices; the defaults are the safe ones."""

    drop_spam: bool = True
    drop_dmarc_reject: bool = True
    drop_bounces: bool = True
    drop_auto_replies: bool = True


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the decision needs to know of a message, read once from its header block."""

    is_bounce: bool = False
    is_auto_reply: bool = False
    loop_tokens: tuple[str, ...] = field(default_factory=tuple)


_AUTO_REPLY_MARKERS = (
    ("x-autoreply", None),
    ("x-autorespond", None),
    ("precedence", b"auto_reply"),
)
#: The fields only auto-replies and forwarded copies carry: most mail has none of them.
_RARE_KEYS = frozenset({"auto-submitted", LOOP.lower(), *(key for key, _ in _AUTO_REPLY_MARKERS)})
_NO_FACTS = MessageFacts()  # immutable: one for every message with none of these facts


def message_facts(msg: SplitMessage, envelope_from: str | None) -> MessageFacts:
    null_sender = envelope_from is not None and envelope_from.strip() in ("", "<>")
    return_path = msg.first_value("return-path")
    if return_path is not None and return_path.replace(b" ", b"") == b"<>":
        null_sender = True
    ctype = (msg.first_value("content-type") or b"").lower()
    is_report = ctype.startswith(b"multipart/report") and (b"delivery-status" in ctype or b"feedback-report" in ctype)
    if not msg.has_any(_RARE_KEYS):
        return MessageFacts(is_bounce=True) if null_sender or is_report else _NO_FACTS
    auto_submitted = msg.first_value("auto-submitted")
    auto_reply = auto_submitted is not None and auto_submitted.lower().startswith(b"auto-replied")
    for key, expected in _AUTO_REPLY_MARKERS:
        found = msg.first_value(key)
        if found is not None and (expected is None or found.lower() == expected):
            auto_reply = True
    return MessageFacts(
        is_bounce=null_sender or is_report,
        is_auto_reply=auto_reply,
        loop_tokens=tuple(loop_tokens(msg)),
    )


def decide(
    alias: AliasState | None,
    facts: MessageFacts,
    verdicts: Verdicts,
    policy: Policy,
    now: datetime,
) -> Decision:
    """The outcome for one alias, before rewriting; FORWARDED means 'go on and rewrite'."""
    if alias is None:
        return Decision(Outcome.DROPPED_UNKNOWN_ALIAS, "no such alias")
    if alias.deleted:
        return Decision(Outcome.DROPPED_UNKNOWN_ALIAS, "the alias was deleted")
    if verdicts.virus.upper() == "FAIL":
        return Decision(Outcome.DROPPED_VIRUS, "the virus scan failed")
    if not alias.enabled:
        return Decision(Outcome.DROPPED_DISABLED, "the alias is switched off")
    expired = expiry(alias, now)
    if expired is not None:
        return expired
    if loop_token(alias.address) in facts.loop_tokens:
        return Decision(Outcome.DROPPED_LOOP, "this message was already forwarded by this alias")
    if len(facts.loop_tokens) >= MAX_HOPS:
        return Decision(Outcome.DROPPED_LOOP, f"forwarded {len(facts.loop_tokens)} times already")
    if facts.is_bounce and policy.drop_bounces:
        return Decision(Outcome.DROPPED_BOUNCE, "a bounce to an alias, which never sends mail")
    if facts.is_auto_reply and policy.drop_auto_replies:
        return Decision(Outcome.DROPPED_AUTO_REPLY, "an auto-reply to an alias, which never sends mail")
    if verdicts.spam.upper() == "FAIL" and policy.drop_spam:
        return Decision(Outcome.DROPPED_SPAM, "the spam scan failed")
    if (
        verdicts.dmarc.upper() == "FAIL"
        and (verdicts.dmarc_policy or "").lower() == "reject"
        and policy.drop_dmarc_reject
    ):
        return Decision(Outcome.DROPPED_DMARC, "DMARC failed and the sender's policy is reject")
    if alias.destination_count <= 0:
        return Decision(Outcome.DROPPED_NO_DESTINATION, "the alias has no verified destination")
    return Decision(Outcome.FORWARDED, "")


def expiry(alias: AliasState, now: datetime) -> Decision | None:
    """Why the alias has expired at ``now`` (by time, idleness, then count), or None."""
    if alias.expires_at is not None and now >= alias.expires_at:
        return Decision(Outcome.DROPPED_EXPIRED_TIME, f"the alias expired at {alias.expires_at.isoformat()}")
    if alias.idle_days is not None:
        last = alias.last_used_at or alias.created_at
        if last is not None and now >= last + timedelta(days=alias.idle_days):
            return Decision(Outcome.DROPPED_EXPIRED_IDLE, f"no mail for {alias.idle_days} days, so the alias expired")
    if alias.max_messages is not None and alias.message_count >= alias.max_messages:
        return Decision(Outcome.DROPPED_EXPIRED_COUNT, f"the alias expired after {alias.max_messages} messages")
    return None
