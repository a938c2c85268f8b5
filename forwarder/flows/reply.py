"""The reply flow: mail to a contact's reverse address leaves from the alias, to the contact.

A two-way alias gives every outside address it corresponds with a reverse address
(forwarder/adapters/sql/contacts/). When the alias's owner answers (Reply, Reply-All) or writes
first, their message reaches the reverse address, and this flow, for each reverse address among
the recipients:

1. finds the contact and its alias (forwarder/ports.py ``ContactBook.by_reverse``, then the
   directory's ``resolve``): an alias switched off or deleted sends nothing;
2. authorizes the sender (forwarder/core/reply_auth.py): From is a verified destination of the
   alias, and DMARC passed (or no DMARC and an aligned SPF pass); anything else is refused,
   recorded and counted as ``dropped-reply-refused``, never relayed;
3. rewrites it (forwarder/core/reply.py): From the alias, the reverse addresses of the alias's
   contacts in To and Cc mapped to their real addresses, In-Reply-To and References mapped to the
   ids the contacts know, the owner's real address scrubbed from the text;
4. claims the message like a forward (the alias's and its owner's limits count it once), sends one
   copy per contact from the alias, links each copy's provider id to the owner's Message-ID (so
   the contact's answer threads on the owner's side), and records ``replied``.

Addresses in To and Cc that are not reverse addresses got the message straight from the owner's
own mail server: they are not sent again, and the outcome's reason names how many there were.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from forwarder.adapters.sql.directory import (
    AddressStatus,
    ClaimState,
    DeliveryKey,
    MessageMeta,
    ResolvedAlias,
    SqlDirectory,
)
from forwarder.core import Decision, Outcome, Prepared, Verdicts, prepare
from forwarder.core.addresses import parse_address_list
from forwarder.core.answers import answered_ids
from forwarder.core.reply import ReplyResult, reply
from forwarder.core.reply_auth import authorize_reply
from forwarder.core.validator import SESV2_MAX_BYTES
from forwarder.errors import DeliveryInProgress, PermanentSendError
from forwarder.flows.outcome_log import Report, redact
from forwarder.flows.two_way import original_of
from forwarder.ports import ContactBook, ContactRef, Notifier, Sender, Unforwarded

logger = logging.getLogger("othermail.reply")

#: The shape of a reverse address's local part (16 characters of lowercase base32, 80 bits):
#: only such a recipient costs a look-up in the contact book.
REVERSE_LOCAL = re.compile(r"[a-z2-7]{16}")


def looks_reverse(address: str) -> bool:
    local, at, _domain = address.strip().lower().rpartition("@")
    return bool(at) and REVERSE_LOCAL.fullmatch(local) is not None


@dataclass(frozen=True, slots=True)
class ReplyInbound:
    """What the reply flow needs of the received message besides its parsed form."""

    message_id: str
    recipient: str
    verdicts: Verdicts
    mail_from: str | None
    received_at: datetime | None
    raw_key: str | None
    bytes_in: int


class Replier:
    """Sends the alias owner's mail to reverse addresses on to the contacts (module docstring)."""

    def __init__(
        self,
        contacts: Callable[[], ContactBook],
        directory: SqlDirectory,
        sender: Sender | None,
        clock: Callable[[], datetime],
        max_bytes: int = SESV2_MAX_BYTES,
        notifier: Notifier | None = None,
    ) -> None:
        # built on first use: a deployment without contact keys forwards one-way mail as before,
        # and fails only on mail to a reverse address (naming OTHERMAIL_CONTACT_KEYS)
        self._book = contacts
        self.directory = directory
        self.sender = sender
        self._now = clock
        self.max_bytes = max_bytes
        #: Tells the alias's owner (at most hourly) that mail to a reverse address was refused.
        self.notifier = notifier

    @cached_property
    def contacts(self) -> ContactBook:
        return self._book()

    def contact(self, recipient: str) -> ContactRef | None:
        """The contact whose reverse address ``recipient`` is, or None (an alias, or nobody)."""
        return self.contacts.by_reverse(recipient) if looks_reverse(recipient) else None

    def process(self, message: Prepared, inbound: ReplyInbound, contact: ContactRef) -> Report:
        """Send the message on to ``contact`` (and the alias's other contacts it names), once."""
        meta = MessageMeta(message.sender, message.subject, inbound.bytes_in, inbound.received_at, inbound.raw_key)
        key = DeliveryKey(inbound.message_id, inbound.recipient, 0)
        resolved = self.directory.resolve(contact.alias_address)
        if resolved is None or not resolved.state.enabled or resolved.state.deleted:
            return self._record(key, contact.alias_id, meta, _SWITCHED_OFF)
        automatic = self.automatic(message, contact.alias_id)
        if automatic is not None:  # never relayed, whoever it claims to be from
            return self._record(key, contact.alias_id, meta, automatic)
        refusal = _refusal(message, inbound.verdicts, inbound.mail_from, resolved)
        if refusal is not None:
            return self._record(key, contact.alias_id, meta, refusal)
        destinations = [t.email for t in resolved.targets]
        mapping = self._reverse_map(contact, message)
        owner_id = message.split.first("message-id")
        own_id = _own_id(contact.alias_address, owner_id.value if owner_id is not None else None)
        result = reply(
            message,
            alias_address=contact.alias_address,
            alias_display_name=resolved.display_name,
            destination_addresses=destinations,
            reverse_to_real=mapping,
            original_id=lambda seen: self._original(contact.alias_id, seen),
            message_id=own_id,
            now=self._now(),
            max_bytes=self.max_bytes,
            deliver_to=contact.address,
        )
        if not result.sends:
            return self._record(key, contact.alias_id, meta, result.decision)
        report = self._send(key, contact, meta, message, result, own_id)
        # addresses on the alias's own domain that look like reverse addresses reached this service
        # (another alias's contact, or nobody), not an outsider's mailbox
        domain = "@" + contact.alias_address.rpartition("@")[2].lower()
        seen = [a for a in result.bypassed if not (a.endswith(domain) and looks_reverse(a))]
        if seen and self.notifier is not None and not report.duplicate:
            named = owner_id.value.decode("ascii", "replace").strip() if owner_id is not None else inbound.message_id
            self.notifier.exposed(named, contact.alias_address, message.sender, seen)
        return report

    def automatic(self, message: Prepared, alias_id: int) -> Decision | None:
        """What becomes of a bounce or an auto-reply (None for any other message): one that answers
        a copy the alias sent (a reply, a first message) is ``dropped-reply-bounce``, and the
        owner gets a notice; any other is dropped as backscatter. Used for mail to the alias
        and to its reverse addresses alike."""
        facts = message.facts
        if not (facts.is_bounce or facts.is_auto_reply):
            return None
        what = "a bounce" if facts.is_bounce else "an auto-reply"
        ids = answered_ids(message.split, facts.is_bounce)
        if ids and self.contacts.answers_reply(alias_id, [*ids, *(_ses_local(i) for i in ids)]):
            return Decision(Outcome.DROPPED_REPLY_BOUNCE, f"{what} to mail sent from the alias; its owner was told")
        if facts.is_bounce:
            return Decision(Outcome.DROPPED_BOUNCE, f"{what} that answers no mail the alias sent")
        return Decision(Outcome.DROPPED_AUTO_REPLY, f"{what} that answers no mail the alias sent")

    def address_status(self, address: str) -> AddressStatus | None:
        """The SMTP listener's RCPT answer for a reverse address (ACCEPTS: who may use it is
        checked after DATA); None when ``address`` is no contact's reverse address."""
        return AddressStatus.ACCEPTS if self.contact(address) is not None else None

    def screen(self, raw: bytes, verdicts: Verdicts | None, mail_from: str, recipients: tuple[str, ...]) -> str | None:
        """The one box's check after DATA: the SMTP refusal for a message whose every recipient is a
        reverse address it may not use (recorded as ``dropped-reply-refused``, nothing spooled); None
        to accept it (a message that also names aliases is accepted, and its reverse recipients
        are refused by :meth:`process`, never relayed)."""
        if not recipients or verdicts is None or not all(looks_reverse(r) for r in recipients):
            return None
        message = prepare(raw, mail_from)
        refused: list[tuple[ContactRef, Decision]] = []
        for recipient in recipients:
            contact = self.contact(recipient)
            if contact is None:
                return None
            refusal = _refusal(message, verdicts, mail_from, self.directory.resolve(contact.alias_address))
            if refusal is None:
                return None
            refused.append((contact, refusal))
        message_id = "smtp-refused-" + hashlib.sha256(raw).hexdigest()[:32]
        meta = MessageMeta(message.sender, message.subject, len(raw), self._now(), None)
        for contact, refusal in refused:
            self._record(DeliveryKey(message_id, contact.reverse, 0), contact.alias_id, meta, refusal)
        return Outcome.DROPPED_REPLY_REFUSED.smtp_reply

    def _original(self, alias_id: int, seen: str) -> str | None:
        return original_of(self.contacts, alias_id, seen)

    def _reverse_map(self, contact: ContactRef, message: Prepared) -> dict[str, tuple[str, str]]:
        """Every reverse address of this alias's contacts among To and Cc: Reply-All reaches them all."""
        found = {contact.reverse.lower(): (contact.address, contact.name)}
        for address in _recipients(message):
            if address in found or not looks_reverse(address):
                continue
            other = self.contacts.by_reverse(address)
            if other is not None and other.alias_id == contact.alias_id:
                found[address] = (other.address, other.name)
        return found

    def _send(
        self,
        key: DeliveryKey,
        contact: ContactRef,
        meta: MessageMeta,
        message: Prepared,
        result: ReplyResult,
        own_id: str,
    ) -> Report:
        if self.sender is None:
            raise RuntimeError("this Replier has no sender")
        claim = self.directory.claim(key, contact.alias_id, meta)
        if claim.state is ClaimState.DONE:
            done = Decision(Outcome(claim.outcome), "already sent")  # type: ignore[call-arg]  # lookup by value
            return _report(key, contact.alias_id, done, meta, True)
        if claim.state is ClaimState.BUSY:
            raise DeliveryInProgress(f"reply {key.message_id} to {key.recipient}")
        if claim.state in (ClaimState.LIMIT, ClaimState.RATE_LIMITED):
            return self._record(key, contact.alias_id, meta, claim.dropped)
        (recipient,) = result.envelope_recipients  # the one contact whose reverse address this was
        owner_id = message.split.first("message-id")
        try:
            provider_id = self.sender.send(result.raw, sender=contact.alias_address, recipient=recipient)
        except PermanentSendError as exc:
            reason = str(exc)
            self.directory.finish(key, Outcome.FAILED_REJECTED, reason)
            # the delivery log may name the contact (its owner reads it); the outcome line may not
            refused = Decision(Outcome.FAILED_REJECTED, redact(reason, contact.address, contact.contact_id))
            self._tell(key, contact.alias_id, meta, refused, contact.alias_address)
            return _report(key, contact.alias_id, refused, meta)
        except Exception as exc:
            self.directory.release(key, f"{exc.__class__.__name__}: {exc}")
            raise
        reason = "sent from the alias to the contact"
        if result.bypassed:
            reason += f"; {len(result.bypassed)} other recipient(s) got it from your own mail server, with your address"
        # recorded first: once sent, nothing below may leave the claim open for a retry to send again
        self.directory.finish(key, Outcome.REPLIED, reason, len(result.raw), provider_id or None)
        # the contact answers (or bounces, or auto-replies to) the id SES gave the copy, or, where
        # nothing replaces Message-ID (a relay, the outbox), the one written here: both are linked
        original = owner_id.value.decode("ascii", "replace") if owner_id is not None else own_id
        try:
            self.contacts.link(
                contact.alias_id, contact.contact_id, [i for i in (provider_id, own_id) if i], original, "reply"
            )
            self.contacts.count(contact.contact_id, replied=1)
        except Exception:  # threading and counts are best effort once the reply has gone
            logger.exception("could not link or count reply %s", key.message_id)
        return _report(key, contact.alias_id, Decision(Outcome.REPLIED, reason), meta, bytes_out=len(result.raw))

    def _record(self, key: DeliveryKey, alias_id: int, meta: MessageMeta, decision: Decision) -> Report:
        fresh = self.directory.record(key, alias_id, meta, decision.outcome, decision.reason)
        if fresh:
            self._tell(key, alias_id, meta, decision)
        return _report(key, alias_id, decision, meta, duplicate=not fresh)

    def _tell(
        self, key: DeliveryKey, alias_id: int, meta: MessageMeta, decision: Decision, alias_address: str | None = None
    ) -> None:
        """A notice to the alias's owner for mail they wrote that did not go out (refused, too large,
        over a limit, refused by the provider) or for an answer to it that bounced; none for mail
        to an alias they switched off themselves, nor for backscatter."""
        if self.notifier is None or decision == _SWITCHED_OFF or decision.outcome in _QUIET:
            return
        self.notifier.after(
            [
                Unforwarded(
                    key.message_id, key.recipient, alias_id, None, decision.outcome, meta.mail_from, meta.subject,
                    meta.bytes_in, sent_through=True, alias_address=alias_address,
                )
            ]
        )  # fmt: skip


#: Reply-side outcomes nobody is told of: backscatter.
_QUIET = frozenset({Outcome.DROPPED_BOUNCE, Outcome.DROPPED_AUTO_REPLY})
_SWITCHED_OFF = Decision(Outcome.DROPPED_REPLY_REFUSED, "the alias is switched off or deleted")


def _refusal(
    message: Prepared, verdicts: Verdicts, mail_from: str | None, resolved: ResolvedAlias | None
) -> Decision | None:
    """Why mail to a reverse address of ``resolved`` may not leave from it; None when it may."""
    if resolved is None or not resolved.state.enabled or resolved.state.deleted:
        return _SWITCHED_OFF
    destinations = [t.email for t in resolved.targets]
    return authorize_reply(verdicts, from_address=message.sender, envelope_from=mail_from, destinations=destinations)


def _own_id(alias_address: str, owner_id: bytes | None) -> str:
    """The Message-ID of the copies of one message from the owner: derived from the owner's own id
    and the alias, so every contact of a Reply-All sees the same id (where nothing replaces it)
    and the owner's real id is not shown; a fresh one when the owner's message has none."""
    domain = alias_address.rpartition("@")[2]
    if owner_id is None or not owner_id.strip():
        return email.utils.make_msgid(domain=domain)
    digest = hashlib.sha256(owner_id.strip() + b"\n" + alias_address.lower().encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _ses_local(message_id: str) -> str:
    """The id SES returned for a send, from the Message-ID it wrote (``<id@...amazonses.com>``)."""
    local, _at, domain = message_id.strip("<>").rpartition("@")
    return local if domain.lower().endswith("amazonses.com") else message_id


def _recipients(message: Prepared) -> Iterable[str]:
    for name in ("to", "cc"):
        for f in message.split.get_all(name):
            for box in parse_address_list(f.value.decode("utf-8", "replace")):
                yield box.address.strip().lower()


def _report(
    key: DeliveryKey,
    alias_id: int,
    decision: Decision,
    meta: MessageMeta,
    duplicate: bool = False,
    bytes_out: int | None = None,
) -> Report:
    return Report(
        key.message_id,
        key.recipient,
        alias_id,
        None,
        decision.outcome,
        decision.reason,
        meta.bytes_in,
        bytes_out=bytes_out,
        duplicate=duplicate,
    )
