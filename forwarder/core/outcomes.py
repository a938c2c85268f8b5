"""Every way a message can end, as named values.

Each (message, alias, destination) ends in exactly one :class:`Outcome`, recorded in the delivery
log with a human-readable reason, logged as one structured line and counted per alias. Members
carry what the ingress adapters need: whether the outcome counts as blocked for the alias, and the
SMTP reply an SMTP listener gives when it must answer at RCPT or DATA time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    """Outcome value, whether it counts as blocked, and an SMTP reply for listeners."""

    FORWARDED = ("forwarded", False, "250 2.0.0 Forwarded")
    DROPPED_UNKNOWN_ALIAS = ("dropped-unknown-alias", True, "550 5.1.1 No such user")
    DROPPED_DISABLED = ("dropped-disabled", True, "550 5.1.1 No such user")
    DROPPED_EXPIRED_TIME = ("dropped-expired-time", True, "550 5.1.1 No such user")
    DROPPED_EXPIRED_IDLE = ("dropped-expired-idle", True, "550 5.1.1 No such user")
    DROPPED_EXPIRED_COUNT = ("dropped-expired-count", True, "550 5.1.1 No such user")
    DROPPED_VIRUS = ("dropped-virus", True, "554 5.7.1 Message rejected: virus")
    DROPPED_SPAM = ("dropped-spam", True, "554 5.7.1 Message rejected as spam")
    DROPPED_DMARC = ("dropped-dmarc", True, "550 5.7.1 DMARC policy rejects this message")
    DROPPED_BOUNCE = ("dropped-bounce", True, "250 2.0.0 Accepted")
    DROPPED_AUTO_REPLY = ("dropped-auto-reply", True, "250 2.0.0 Accepted")
    DROPPED_LOOP = ("dropped-loop", True, "554 5.4.6 Mail loop detected")
    DROPPED_NO_DESTINATION = ("dropped-no-destination", True, "550 5.1.1 No such user")
    DROPPED_TOO_LARGE = ("dropped-too-large", True, "552 5.3.4 Message too large")
    DROPPED_INVALID = ("dropped-invalid", True, "554 5.6.0 Message cannot be forwarded")
    FAILED_REJECTED = ("failed-rejected", True, "554 5.6.0 Message rejected by the mail service")
    #: the destination is paused after SES reported it bouncing (forwarder/flows/feedback.py)
    DROPPED_PAUSED = ("dropped-paused", True, "250 2.0.0 Accepted")
    #: over the alias's or its owner's hourly or daily limit; the message is kept (quarantine)
    DROPPED_RATE_LIMITED = ("dropped-rate-limited", True, "250 2.0.0 Accepted")
    #: an expired alias whose owner chose reject: a bounce was sent (forwarder/flows/expired_reject.py)
    BOUNCED_EXPIRED = ("bounced-expired", True, "550 5.1.1 No such user")
    #: two-way aliases (forwarder/flows/reply.py): a reply or a first message from the alias's owner
    #: went out from the alias to a contact
    REPLIED = ("replied", False, "250 2.0.0 Sent from the alias")
    #: mail to a reverse address that is not from a verified destination of the alias, or whose
    #: sender could not be authenticated: refused, never relayed
    DROPPED_REPLY_REFUSED = ("dropped-reply-refused", True, "550 5.7.1 Not authorized to send through this address")
    #: a blocked contact, or a sender the alias's or account's sender rules refuse
    DROPPED_BLOCKED = ("dropped-blocked", True, "550 5.7.1 Sender blocked by the recipient")
    #: a bounce or an auto-reply to mail sent from the alias: the owner gets a notice, nobody else
    DROPPED_REPLY_BOUNCE = ("dropped-reply-bounce", True, "250 2.0.0 Accepted")

    blocked: bool
    smtp_reply: str

    def __new__(cls, value: str, blocked: bool, smtp_reply: str) -> Outcome:
        member = object.__new__(cls)
        member._value_ = value
        member.blocked = blocked
        member.smtp_reply = smtp_reply
        return member

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Decision:
    """An outcome and why, in words a user or an operator can act on."""

    outcome: Outcome
    reason: str

    @property
    def forwards(self) -> bool:
        return self.outcome is Outcome.FORWARDED
