"""Notices instead of silence: tell the owner when a message could not be forwarded.

The outcomes in :data:`WHY` get a notice, a short plain-text message from the service's
no-reply address:

- ``dropped-too-large`` (too big for SES): to each destination of the alias;
- ``failed-rejected`` (SES refused the forwarded copy as invalid): to that destination;
- ``dropped-paused`` (the destination is paused after bouncing): to the alias's other
  destinations that are not paused. The paused one is not written to: that would bounce again.
  With no other destination the web app's warning is the notice;
- two-way aliases: ``dropped-reply-refused`` (mail to a reverse address not shown to come from the
  owner) and ``dropped-reply-bounce`` (a bounce or an auto-reply to mail the alias sent): to each
  destination of the alias. :meth:`Notifier.exposed` tells the mailbox that wrote to reverse
  addresses who else got its message straight from its own server (see :func:`compose_exposed`).

A notice names the alias and the message's size, says why, and links to the message's page in the
web app, which shows its sender and subject and where the raw message can be downloaded while the
store keeps it (``OTHERMAIL_KEEP_DAYS``). The notice itself carries no text the sender chose (not
their name, address or subject): otherwise anyone could have the service mail their words, a
phishing line or a link, from its own address. It is never sent to the original sender (no backscatter), and at most
one goes to a destination per outcome per hour: a flood of oversized spam gives one notice, and the
rest are in the activity list. Sending a notice can fail without failing the message: it is logged.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from typing import TYPE_CHECKING

from sqlalchemy import Engine, and_, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from forwarder.core import Outcome
from forwarder.ports import Sender, Unforwarded
from models.columns import normalize_email
from models.tables import alias_destinations as _links
from models.tables import aliases, rate_limit_hits
from models.tables import deliveries as _deliveries
from models.tables import destinations as _dest

if TYPE_CHECKING:
    from forwarder.settings import Settings

logger = logging.getLogger("othermail.notices")

#: The outcomes a notice is sent for, and what the notice says of each.
WHY = {
    Outcome.DROPPED_TOO_LARGE: "it is larger than the mail service can forward",
    Outcome.FAILED_REJECTED: "the mail service refused to send it on",
    Outcome.DROPPED_PAUSED: "forwarding to {paused} is paused because mail to it bounced",
}
#: What the owner is told of mail they wrote through the alias (two-way aliases: a reply, a first
#: message) that did not go out, and of answers to it.
SENT_WHY = {
    Outcome.DROPPED_REPLY_REFUSED: "it was written to a reverse address of the alias, but could not be shown to "
    "come from one of the alias's mailboxes (DMARC, or SPF for a domain without DMARC), so it was not sent on "
    "from the alias",
    Outcome.DROPPED_REPLY_BOUNCE: "it is a bounce or an automatic answer (out of office, say) to mail you sent "
    "from the alias; it was passed on to nobody",
    Outcome.DROPPED_TOO_LARGE: "it is larger than the mail service can send",
    Outcome.DROPPED_INVALID: "it could not be made into a message the mail service accepts",
    Outcome.FAILED_REJECTED: "the mail service refused to send it",
    Outcome.DROPPED_RATE_LIMITED: "the alias or your account is over its sending limit for now",
}
#: Outcomes that are about mail sent through the alias whoever reports them.
ALWAYS_SENT_THROUGH = frozenset({Outcome.DROPPED_REPLY_REFUSED, Outcome.DROPPED_REPLY_BOUNCE})
SUBJECTS = {Outcome.DROPPED_REPLY_BOUNCE: "Bounce or automatic answer to mail from {alias}"}
SENT_SUBJECT = "Not sent: a message through {alias}"
#: One notice per destination and outcome in this many seconds.
THROTTLE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Notice:
    """What a notice says (plain values; :func:`compose` makes the message)."""

    alias: str
    mail_from: str  # never mailed (see the module's docstring); the message's page shows it
    subject: str  # never mailed either
    size: int
    why: str
    link: str | None
    keep_days: int
    subject_line: str = ""
    #: Mail written through the alias rather than to it (see :data:`SENT_WHY`).
    sent_through: bool = False


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def compose(notice: Notice, to: str, from_address: str, now: float | None = None) -> bytes:
    """The notice as an RFC 5322 message (``Auto-Submitted``, so that nobody answers it)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr(("othermail", from_address))
    message["To"] = to
    message["Subject"] = notice.subject_line or f"Not forwarded: a message to {notice.alias}"
    message["Date"] = email.utils.formatdate(now, localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message["X-Othermail-Notice"] = "not-forwarded"
    headline = (
        f"A message you wrote through your alias {notice.alias} did not go out, or came back:"
        if notice.sent_through
        else f"A message to your alias {notice.alias} was not forwarded to you:"
    )
    lines = [
        headline,
        f"{notice.why}.",
        "",
        f"Size:    {human_size(notice.size)}",
        "",
    ]
    if notice.link:
        lines.append(
            f"Its page shows its sender and subject; the original message can be downloaded for "
            f"{notice.keep_days} days from it:"
        )
        lines.append(notice.link)
    else:
        lines.append(
            f"Sign in to othermail to see its sender and subject in your activity list, and to "
            f"download the original message (kept {notice.keep_days} days)."
        )
    lines += [
        "",
        "This notice was not sent to the sender. At most one such notice an hour is sent per",
        "mailbox and reason; the others are in your activity list.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message.as_bytes()


# ---------------------------------------------------------------- who to tell, and how often

_ALIAS_DESTINATIONS = (
    select(_dest.c.id, _dest.c.email, _dest.c.paused_at)
    .select_from(_dest.join(_links, _links.c.destination_id == _dest.c.id))
    .where(_links.c.alias_id == bindparam("p_alias_id"), _dest.c.verified_at.is_not(None))
    .order_by(_dest.c.id)
)
_DESTINATION = select(_dest.c.email).where(_dest.c.id == bindparam("p_id"))
_ALIAS_ADDRESS = select(aliases.c.address).where(aliases.c.id == bindparam("p_id"))
_DELIVERY_ID = select(_deliveries.c.id).where(
    and_(
        _deliveries.c.inbound_message_id == bindparam("p_message_id"),
        _deliveries.c.recipient == bindparam("p_recipient"),
        _deliveries.c.destination_key == bindparam("p_key"),
    )
)
_THROTTLE = insert(rate_limit_hits)


@dataclass(frozen=True, slots=True)
class Recipient:
    destination_id: int
    email: str


class NoticeBook:
    """The SQL side: where a notice goes, the delivery row it links to, and the hourly throttle."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def recipients(
        self, outcome: Outcome, alias_id: int, destination_id: int | None, sent_through: bool = False
    ) -> list[Recipient]:
        with self._engine.connect() as connection:
            rows = connection.execute(_ALIAS_DESTINATIONS, {"p_alias_id": alias_id}).all()
        live = [Recipient(r.id, r.email) for r in rows if r.paused_at is None]
        if sent_through:
            return live
        if outcome is Outcome.DROPPED_PAUSED:
            return [r for r in live if r.destination_id != destination_id]
        if outcome is Outcome.FAILED_REJECTED:
            return [r for r in live if r.destination_id == destination_id]
        return live

    def alias_address(self, alias_id: int) -> str:
        with self._engine.connect() as connection:
            return str(connection.execute(_ALIAS_ADDRESS, {"p_id": alias_id}).scalar() or "")

    def destination_email(self, destination_id: int) -> str:
        with self._engine.connect() as connection:
            return str(connection.execute(_DESTINATION, {"p_id": destination_id}).scalar() or "")

    def delivery_id(self, message_id: str, recipient: str, destination_key: int) -> int | None:
        with self._engine.connect() as connection:
            found = connection.execute(
                _DELIVERY_ID,
                {
                    "p_message_id": message_id,
                    "p_key": destination_key,
                    "p_recipient": normalize_email(recipient),
                },
            ).scalar()
        return int(found) if found is not None else None

    def first_this_hour(self, destination_id: int, outcome: Outcome) -> bool:
        """True for the first notice of this hour to the destination for this outcome (atomic:
        the first INSERT of the window's row wins)."""
        window = int(self._clock()) // THROTTLE_SECONDS * THROTTLE_SECONDS
        return self._first(f"notice:{destination_id}:{outcome.value}", window)

    def first_today(self, key: str) -> bool:
        """True the first time ``key`` is asked for this (UTC) day: a redelivery or a second receipt
        of the same message hours later finds the row (rate-limit rows are pruned a day after
        their window, web/ratelimit.py)."""
        return self._first(key, int(self._clock()) // 86400 * 86400)

    def _first(self, key: str, window: int) -> bool:
        with self._engine.connect() as connection:
            try:
                connection.execute(_THROTTLE, {"key": key, "window_start": window, "count": 1})
                connection.commit()
            except IntegrityError:
                connection.rollback()
                return False
        return True


# ---------------------------------------------------------------- the notifier


class Notifier:
    def __init__(
        self, book: NoticeBook, sender: Sender, from_address: str, public_url: str = "", keep_days: int = 14
    ) -> None:
        self.book = book
        self.sender = sender
        self.from_address = from_address
        self.public_url = public_url.rstrip("/")
        self.keep_days = keep_days
        self.sent = 0

    def after(self, outcomes: Iterable[Unforwarded]) -> None:
        """Send the notices ``outcomes`` call for; never raises (a failed notice is logged)."""
        for item in outcomes:
            sent_through = item.sent_through or item.outcome in ALWAYS_SENT_THROUGH
            if item.duplicate or item.alias_id is None or item.outcome not in (SENT_WHY if sent_through else WHY):
                continue
            try:
                self._notify(item)
            except Exception as exc:  # a notice must never cost the message its outcome
                logger.warning(
                    json.dumps(
                        {
                            "event": "notice-failed",
                            "message_id": item.message_id,
                            "outcome": item.outcome.value,
                            "error": f"{exc.__class__.__name__}",
                        }
                    )
                )

    def exposed(self, message_id: str, alias: str, mailbox: str, addresses: Sequence[str]) -> None:
        """Tell ``mailbox`` (the owner's, which wrote ``message_id``) that ``addresses`` got that
        message from their own mail server; once per message, however many reverse addresses it
        went to. Never raises (a failed notice is logged)."""
        try:
            key = hashlib.sha256(f"{message_id}\n{mailbox}".encode()).hexdigest()[:40]
            if not self.book.first_today(f"notice:exposed:{key}"):
                return
            raw = compose_exposed(alias, addresses, mailbox, self.from_address)
            self.sender.send(raw, sender=self.from_address, recipient=mailbox)
            self.sent += 1
            logger.info(json.dumps({"event": "notice", "message_id": message_id, "notice": "address-exposed"}))
        except Exception as exc:  # a notice must never cost the message its outcome
            logger.warning(
                json.dumps({"event": "notice-failed", "message_id": message_id, "error": exc.__class__.__name__})
            )

    def _notify(self, item: Unforwarded) -> None:
        assert item.alias_id is not None
        sent_through = item.sent_through or item.outcome in ALWAYS_SENT_THROUGH
        why = (SENT_WHY if sent_through else WHY)[item.outcome]
        if item.outcome is Outcome.DROPPED_PAUSED:
            why = why.format(paused=self.book.destination_email(item.destination_id or 0) or "a mailbox")
        delivery_id = self.book.delivery_id(item.message_id, item.recipient, item.destination_id or 0)
        link = f"{self.public_url}/messages/{delivery_id}" if self.public_url and delivery_id else None
        alias = item.alias_address or (self.book.alias_address(item.alias_id) if sent_through else item.recipient)
        subject = SUBJECTS.get(item.outcome, SENT_SUBJECT if sent_through else "Not forwarded: a message to {alias}")
        notice = Notice(
            alias, item.mail_from, item.subject, item.size, why, link, self.keep_days, subject.format(alias=alias),
            sent_through,
        )  # fmt: skip
        for recipient in self.book.recipients(item.outcome, item.alias_id, item.destination_id, sent_through):
            if not self.book.first_this_hour(recipient.destination_id, item.outcome):
                logger.info(
                    json.dumps(
                        {
                            "event": "notice-throttled",
                            "message_id": item.message_id,
                            "destination_id": recipient.destination_id,
                            "outcome": item.outcome.value,
                        }
                    )
                )
                continue
            self.sender.send(
                compose(notice, recipient.email, self.from_address), sender=self.from_address, recipient=recipient.email
            )
            self.sent += 1
            logger.info(
                json.dumps(
                    {
                        "event": "notice",
                        "message_id": item.message_id,
                        "destination_id": recipient.destination_id,
                        "outcome": item.outcome.value,
                    }
                )
            )


def compose_exposed(
    alias: str, addresses: Sequence[str], to: str, from_address: str, now: float | None = None
) -> bytes:
    """The notice that a message sent through the alias also went to ``addresses`` directly, from
    the owner's own mail server, with the owner's real address (their own words: the owner wrote
    those addresses, so naming them carries nothing a stranger chose)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr(("othermail", from_address))
    message["To"] = to
    message["Subject"] = f"Your real address was seen: a message sent through {alias}"
    message["Date"] = email.utils.formatdate(now, localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message["X-Othermail-Notice"] = "address-exposed"
    lines = [
        f"You sent a message to a reverse address of your alias {alias}. It went on from the alias,",
        "but it also named these addresses, which are not reverse addresses, so your own mail",
        "server delivered it to them directly, from your real address:",
        "",
        *(f"  {address}" for address in addresses),
        "",
        "They have seen your real address. To write to someone from the alias, add them as a",
        "contact of the alias (its contacts page, or: othermail contact create ALIAS ADDRESS) and",
        "write to the reverse address it gives; Reply and Reply-All to forwarded mail do this for you.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message.as_bytes()


def build_notifier(settings: Settings, engine: Engine, sender: Sender, public_url: str = "") -> Notifier | None:
    """The notifier ``settings`` ask for (None with ``OTHERMAIL_NOTICES=false``); ``public_url``
    stands in for an unset ``OTHERMAIL_PUBLIC_URL`` (one box knows its own web address)."""
    if not settings.notices:
        return None
    return Notifier(
        NoticeBook(engine),
        sender,
        f"noreply@{settings.domains[0]}",
        settings.public_url or public_url,
        settings.keep_days,
    )
