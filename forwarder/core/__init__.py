"""The forwarding core: standard library only, no I/O.

Bytes and plain values go in; a :class:`Decision` and the bytes to send come out. AWS, SMTP, SQL
and Flask live in adapters around it (``forwarder.flows``, ``forwarder.adapters``,
``forwarder.hosts``...). A test proves that importing this package imports none of them.
"""

from forwarder.core.decide import AliasState, MessageFacts, Policy, Verdicts, decide
from forwarder.core.forward import Outgoing, Prepared, Result, forward, prepare, rewrite
from forwarder.core.outcomes import Decision, Outcome
from forwarder.core.participants import Participant, participants
from forwarder.core.twoway import TwoWay
from forwarder.core.validator import SESV1_MAX_BYTES, SESV2_MAX_BYTES, Violation, validate, validate_bytes

__all__ = [
    "SESV1_MAX_BYTES",
    "SESV2_MAX_BYTES",
    "AliasState",
    "Decision",
    "MessageFacts",
    "Outcome",
    "Outgoing",
    "Participant",
    "Policy",
    "Prepared",
    "Result",
    "TwoWay",
    "Verdicts",
    "Violation",
    "decide",
    "forward",
    "participants",
    "prepare",
    "rewrite",
    "validate",
    "validate_bytes",
]
