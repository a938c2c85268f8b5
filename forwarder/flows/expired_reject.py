"""``expired_action = "reject"``: what mail to an expired alias gets when its owner chose reject.

- The one box refuses it at RCPT, ``550 5.1.1`` (:mod:`forwarder.adapters.smtp.ingress`, asking
  :meth:`forwarder.adapters.sql.directory.SqlDirectory.address_status`): the sending server writes the bounce,
  nobody is backscattered.
- On AWS, SES has accepted the message before the forwarder sees it, so a refusal can only be a
  bounce sent afterwards (SES ``SendBounce``, :class:`SesBouncer`). A bounce goes to the envelope
  sender, which anybody can forge; so it is sent only when SES found the sender's SPF passing
  (:func:`decide_expired_reject`), and the message is dropped otherwise. A DMARC pass is not
  enough: it can come from a DKIM signature aligned with From while MAIL FROM is forged. At most one
  bounce per (message, alias): the delivery row is written first, and a redelivery finds it.

Aliases whose ``expired_action`` is ``drop`` (the default) keep accepting and dropping silently.
"""

from __future__ import annotations

import logging
from typing import Any

from forwarder.core import Decision, Outcome, Verdicts

logger = logging.getLogger("othermail.expired")

#: The outcomes of an expired alias (by time, idleness, message count).
EXPIRED_OUTCOMES = frozenset(
    {Outcome.DROPPED_EXPIRED_TIME, Outcome.DROPPED_EXPIRED_IDLE, Outcome.DROPPED_EXPIRED_COUNT}
)
#: What the bounce says; SES adds the recipient and a DSN.
EXPLANATION = "This address has expired and no longer accepts mail."


def sender_authenticated(verdicts: Verdicts) -> bool:
    """Whether a bounce to the envelope sender reaches the real sender: SPF, which authenticates
    the MAIL FROM domain the bounce goes to, passed."""
    return verdicts.spf.upper() == "PASS"


def decide_expired_reject(expired: Decision, verdicts: Verdicts, can_bounce: bool) -> Decision:
    """The decision for mail to an expired alias whose owner chose reject, after the core said
    ``expired`` (one of :data:`EXPIRED_OUTCOMES`)."""
    if not can_bounce:
        return Decision(
            expired.outcome,
            f"{expired.reason}; reject: no bounce from here (the SMTP listener refuses such mail at RCPT)",
        )
    if not sender_authenticated(verdicts):
        return Decision(
            expired.outcome,
            f"{expired.reason}; reject: no bounce, because the sender's SPF did "
            "not pass (a bounce could hit a forged address)",
        )
    return Decision(Outcome.BOUNCED_EXPIRED, f"{expired.reason}; rejected: a bounce is sent to the sender")


class SesBouncer:
    """SES ``SendBounce`` (SES v1 API only; IAM ``ses:SendBounce`` on the alias domain's identity).

    ``message_id`` is the id SES gave the received message (the receipt event's
    ``mail.messageId``); the bounce comes from ``MAILER-DAEMON@`` the alias's domain, a verified
    identity since SES receives mail for it.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def bounce(self, message_id: str, recipient: str) -> str:
        domain = recipient.rpartition("@")[2].lower()
        response = self._client.send_bounce(
            OriginalMessageId=message_id,
            BounceSender=f"MAILER-DAEMON@{domain}",
            Explanation=EXPLANATION,
            BouncedRecipientInfoList=[{"Recipient": recipient, "BounceType": "DoesNotExist"}],
        )
        return str(response.get("MessageId", ""))


class MemoryBouncer:
    """Remembers what it bounced (tests)."""

    def __init__(self) -> None:
        self.bounced: list[tuple[str, str]] = []

    def bounce(self, message_id: str, recipient: str) -> str:
        self.bounced.append((message_id, recipient))
        return f"bounce-{len(self.bounced)}"
