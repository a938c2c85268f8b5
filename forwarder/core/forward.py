"""The core's one entry point: raw bytes and plain values in, a decision and bytes out.

A message is prepared once (split, sender and facts read) and then forwarded to each alias it was
addressed to. Forwarding decides, rewrites the header block, and runs the SES pre-flight
validator; a body line that is too long is repaired (see ``body``) and validated again. A multipart
boundary too long for any line is replaced once, when the message is prepared (see
``boundaries``). No I/O happens here: the adapters fetch, resolve, send and record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from forwarder.core.body import Unrepairable, repair
from forwarder.core.boundaries import replace_long_boundaries
from forwarder.core.decide import AliasState, MessageFacts, Policy, Verdicts, decide, message_facts
from forwarder.core.fastpath import fast_assemble
from forwarder.core.frozen import slot_setters
from forwarder.core.headers import Origin, read_origin, rewrite_headers
from forwarder.core.message import SplitMessage, split_message
from forwarder.core.outcomes import Decision, Outcome
from forwarder.core.text import clean_text, decode_header_text
from forwarder.core.twoway import TwoWay
from forwarder.core.validator import SESV2_MAX_BYTES, validate


@dataclass(frozen=True, slots=True, init=False)
class Prepared:
    """A message read once, ready to be forwarded to any number of aliases."""

    split: SplitMessage
    origin: Origin
    facts: MessageFacts
    envelope_from: str | None

    def __init__(
        self, split: SplitMessage, origin: Origin, facts: MessageFacts, envelope_from: str | None = None
    ) -> None:  # see ``frozen``
        _PREPARED_SPLIT(self, split)
        _PREPARED_ORIGIN(self, origin)
        _PREPARED_FACTS(self, facts)
        _PREPARED_ENVELOPE_FROM(self, envelope_from)

    @property
    def size(self) -> int:
        return self.split.size

    @property
    def subject(self) -> str:
        """The decoded Subject, for the delivery log (decoded only when asked for)."""
        found = self.split.first("subject")
        if found is None:
            return ""
        return clean_text(decode_header_text(found.value, self.origin.charset))[:255]

    @property
    def sender(self) -> str:
        """The sender's address, for the delivery log."""
        address = self.origin.sender.address if self.origin.sender is not None else (self.envelope_from or "")
        return clean_text(address)[:254]


@dataclass(frozen=True, slots=True, init=False)
class Outgoing:
    """The message to send: a new header block and the body, still a view of the input."""

    head: bytes
    body: bytes | memoryview

    def __init__(self, head: bytes, body: bytes | memoryview) -> None:  # see ``frozen``
        _OUTGOING_HEAD(self, head)
        _OUTGOING_BODY(self, body)

    def __len__(self) -> int:
        return len(self.head) + len(self.body)

    def as_bytes(self) -> bytes:
        return b"".join((self.head, self.body))


@dataclass(frozen=True, slots=True, init=False)
class Result:
    decision: Decision
    outgoing: Outgoing | None
    repairs: tuple[str, ...]

    def __init__(self, decision: Decision, outgoing: Outgoing | None = None, repairs: tuple[str, ...] = ()) -> None:
        _RESULT_DECISION(self, decision)  # see ``frozen``
        _RESULT_OUTGOING(self, outgoing)
        _RESULT_REPAIRS(self, repairs)

    @property
    def outcome(self) -> Outcome:
        return self.decision.outcome

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def bytes_out(self) -> int | None:
        return None if self.outgoing is None else len(self.outgoing)


_PREPARED_SPLIT, _PREPARED_ORIGIN, _PREPARED_FACTS, _PREPARED_ENVELOPE_FROM = slot_setters(
    Prepared, "split", "origin", "facts", "envelope_from"
)
_OUTGOING_HEAD, _OUTGOING_BODY = slot_setters(Outgoing, "head", "body")
_RESULT_DECISION, _RESULT_OUTGOING, _RESULT_REPAIRS = slot_setters(Result, "decision", "outgoing", "repairs")
_FORWARDED = Decision(Outcome.FORWARDED, "forwarded")  # immutable: one for every forwarded message


def prepare(raw: bytes, envelope_from: str | None = None) -> Prepared:
    """Split and read a message once. A multipart boundary too long for a line is replaced here
    (``boundaries``: only the parameter and the delimiter lines change), for every alias."""
    split = replace_long_boundaries(split_message(raw))
    return Prepared(
        split=split,
        origin=read_origin(split, envelope_from),
        facts=message_facts(split, envelope_from),
        envelope_from=envelope_from,
    )


def forward(
    message: Prepared,
    alias: AliasState | None,
    verdicts: Verdicts,
    policy: Policy,
    now: datetime,
    max_bytes: int = SESV2_MAX_BYTES,
    two_way: TwoWay | None = None,
) -> Result:
    """Decide for one alias and, when the message goes on, build and check what to send.

    ``two_way`` (the contacts resolved for :func:`forwarder.core.participants.participants`)
    makes it a two-way forward (see ``twoway``); without it the rewrite is one-way.
    """
    decision = decide(alias, message.facts, verdicts, policy, now)
    if not decision.forwards or alias is None:
        return Result(decision)
    return rewrite(message, alias.address, max_bytes, now=now, two_way=two_way)


def assemble(
    message: Prepared, alias_address: str, now: datetime | None = None, two_way: TwoWay | None = None
) -> tuple[Outgoing, list[str]]:
    """The rewritten message for one alias, before validation: a new header block and the body
    as a view of the input (nothing is copied), and the names of the repairs made.

    ``now`` (the time of forwarding) dates a message that has no Date (rule 11 of ``headers``).
    """
    split = message.split
    headers = rewrite_headers(split, message.origin, alias_address, now, two_way)
    eol = split.eol
    outgoing = Outgoing(eol.join(headers.lines) + eol + eol, split.body)
    return outgoing, list(dict.fromkeys([*split.repairs, *headers.repairs]))


def rewrite(
    message: Prepared,
    alias_address: str,
    max_bytes: int = SESV2_MAX_BYTES,
    now: datetime | None = None,
    two_way: TwoWay | None = None,
) -> Result:
    """Rewrite for one alias and run the pre-flight validator, repairing long body lines once.

    :func:`forward` always passes ``now``; without it a message without a Date is sent without one.
    A clean header block of a one-way forward takes ``fastpath`` (the same bytes, checked without
    re-reading what was copied); anything else takes the general path below.
    """
    split = message.split
    if two_way is None and split.long_body_line() < 0:
        fast = fast_assemble(split, message.origin, alias_address, now)
        if fast is not None:
            head, header_repairs = fast
            size = len(head) + len(split.body)  # len(outgoing), without a call through Outgoing.__len__
            if size > max_bytes:
                return Result(Decision(Outcome.DROPPED_TOO_LARGE, f"{size} bytes, the limit is {max_bytes}"))
            outgoing = Outgoing(head, split.body)
            repairs = tuple(dict.fromkeys([*split.repairs, *header_repairs])) if split.repairs or header_repairs else ()
            return Result(_FORWARDED, outgoing, repairs)
    return rewrite_general(message, alias_address, max_bytes, now, two_way)


def rewrite_general(
    message: Prepared,
    alias_address: str,
    max_bytes: int = SESV2_MAX_BYTES,
    now: datetime | None = None,
    two_way: TwoWay | None = None,
) -> Result:
    """:func:`rewrite` without the fast path: every field through ``headers``, then ``validate``."""
    outgoing, repairs = assemble(message, alias_address, now, two_way)
    eol = message.split.eol

    if len(outgoing) > max_bytes:
        return Result(Decision(Outcome.DROPPED_TOO_LARGE, f"{len(outgoing)} bytes, the limit is {max_bytes}"))
    split = message.split
    known = split.long_body_line() if outgoing.body is split.body else None
    problems = validate(outgoing.head, outgoing.body, max_bytes, long_body_line=known)
    if any(p.code == "body-line-too-long" for p in problems):
        try:
            outgoing = _repair_body(outgoing, eol)
        except Unrepairable as exc:
            return Result(Decision(Outcome.DROPPED_INVALID, str(exc)), repairs=tuple(repairs))
        repairs.append("body-line-too-long")
        problems = validate(outgoing.head, outgoing.body, max_bytes)
    if problems:
        if any(p.code == "too-large" for p in problems):
            outcome = Outcome.DROPPED_TOO_LARGE
        else:
            outcome = Outcome.DROPPED_INVALID
        reason = "; ".join(str(p) for p in problems)
        return Result(Decision(outcome, reason), repairs=tuple(repairs))
    return Result(Decision(Outcome.FORWARDED, "forwarded"), outgoing, tuple(repairs))


def _repair_body(outgoing: Outgoing, eol: bytes) -> Outgoing:
    head = split_message(outgoing.head)
    fields, body = repair(head.fields, bytes(outgoing.body), eol)
    lines = [line for f in fields for line in f.lines]
    return Outgoing(eol.join(lines) + eol + eol, body)
