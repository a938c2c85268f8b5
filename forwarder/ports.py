"""The ports: what the flows (forwarder/flows) need from the world, each declared once.

A flow depends on these Protocols, never on an adapter class; forwarder/runtime.py is the one
place that picks the adapter behind each port from the settings, and tests hand their own in
(``Runtime.build(settings, sender=MemorySender())``).

    Sender        send one finished message to one recipient      adapters: senders, smtp.sender, aws.ses
    MailStore     read a raw inbound message by key              adapters: stores (S3, a folder, memory)
    WritableStore a MailStore the SMTP listener also writes to   adapters: stores, local.spool
    Directory     resolve, decide, claim and count in one go;    adapters: sql.directory
                  then record what the sends did, in one go
    AddressBook   what the SMTP listener asks at RCPT time       adapters: sql.directory
    OutcomeSink   where every message outcome is reported        flows: outcome_log
    Notifier      tells owners about mail that was not forwarded flows: notices
    Bouncer       bounces mail to an expired reject-mode alias   flows: expired_reject (SES SendBounce)
    FeedbackSink  applies an SES bounce or complaint             adapters: sql.feedback_store
    ContactBook   contacts' reverse addresses, the Message-ID    adapters: sql.contacts
                  map and sender rules of two-way aliases
    Clock         the current time, naive UTC (as the database stores it)

The mail limits are counted by the Directory, in the transaction that claims a message
(forwarder/flows/mail_limits.py holds the rules, forwarder/adapters/sql/limit_windows.py the SQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from forwarder.core import Outcome

if TYPE_CHECKING:
    from forwarder.adapters.sql.directory import (
        AddressStatus,
        DeliveryKey,
        Finished,
        MessageMeta,
        Opening,
        Planned,
        ResolvedAlias,
    )
    from forwarder.adapters.sql.feedback_store import Applied
    from forwarder.flows.feedback import Feedback
    from forwarder.flows.outcome_log import Report

P = TypeVar("P", bound="Planned")

#: The current time, naive UTC (``models.utcnow``); tests pass a fixed one.
Clock = Callable[[], datetime]


class Sender(Protocol):
    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        """Send ``raw`` from ``sender`` (the envelope sender) to one ``recipient``; the provider's
        message id. Raises SendRetryable (a retry can succeed) or PermanentSendError."""
        ...


class MailStore(Protocol):
    def get(self, key: str) -> bytes:
        """The raw message stored under ``key``; MessageNotFound or StoreUnavailable."""
        ...


class WritableStore(MailStore, Protocol):
    def put(self, key: str, raw: bytes) -> None: ...


class Directory(Protocol):
    """The forward flow's database: one transaction before the sends, one after."""

    def resolve(self, address: str) -> ResolvedAlias | None: ...

    def begin(
        self, message_id: str, recipient: str, meta: MessageMeta, decide: Callable[[ResolvedAlias | None], P]
    ) -> Opening[P]:
        """Resolve ``recipient``, run the pure ``decide`` on it, and record its drop or claim and
        count its copies, in one transaction."""
        ...

    def settle(
        self,
        finished: Sequence[Finished],
        retry: tuple[DeliveryKey, str] | None = None,
        unsent: Sequence[tuple[DeliveryKey, Any]] = (),
        links: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record what the sends did, in one transaction; free a copy to retry; write the thread
        links of two-way aliases (ContactBook.link_rows) not written before."""
        ...

    def finish(
        self,
        key: DeliveryKey,
        outcome: Outcome,
        reason: str,
        bytes_out: int | None = None,
        provider_message_id: str | None = None,
    ) -> None: ...

    def user_domain_names(self) -> tuple[str, ...]:
        """The users' own domains mail is taken for, besides ``OTHERMAIL_DOMAINS``."""
        ...

    def one_connection(self) -> AbstractContextManager[None]:
        """Within it, one message's steps on this thread share one database connection (no
        transaction is held between them, nor across the sends)."""
        ...


class AddressBook(Protocol):
    def address_status(self, address: str) -> AddressStatus: ...

    def accepts_domain(self, domain: str) -> bool: ...


class OutcomeSink(Protocol):
    def outcome(self, report: Report, duration_ms: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Unforwarded:
    """One outcome that may need a notice (what the pipeline knows of it)."""

    message_id: str
    recipient: str
    alias_id: int | None
    destination_id: int | None
    outcome: Outcome
    mail_from: str
    subject: str
    size: int
    duplicate: bool = False
    #: Mail the owner wrote through the alias (two-way aliases: a reply, a first message), not mail
    #: to it; the notice says so. ``dropped-reply-refused`` and ``dropped-reply-bounce`` always are.
    sent_through: bool = False
    #: The alias the notice names (``recipient`` may be a contact's reverse address); None: looked up.
    alias_address: str | None = None


class Notifier(Protocol):
    def after(self, outcomes: Iterable[Unforwarded]) -> None:
        """Send the notices ``outcomes`` call for; never raises."""
        ...

    def exposed(self, message_id: str, alias: str, mailbox: str, addresses: Sequence[str]) -> None:
        """Tell ``mailbox`` that its message ``message_id`` to a reverse address of ``alias`` also
        went to ``addresses`` straight from its own mail server; once per message; never raises."""
        ...


class Bouncer(Protocol):
    def bounce(self, message_id: str, recipient: str) -> str:
        """Bounce the received message ``message_id`` for ``recipient``; the bounce's id."""
        ...


class FeedbackSink(Protocol):
    def apply(self, feedback: Feedback) -> Applied: ...


@dataclass(frozen=True)
class ContactRef:
    """A contact of an alias, its real address and name opened (issue 14)."""

    contact_id: int
    alias_id: int
    #: The alias the contact belongs to (a reply leaves from it).
    alias_address: str
    #: The contact's real address, lowercase.
    address: str
    name: str
    blocked: bool
    #: ``<reverse local>@<alias domain>``: the only address of the contact mail ever shows.
    reverse: str


@dataclass(frozen=True)
class ContactSummary:
    """A contact as its alias's contacts page and API list it."""

    contact_id: int
    address: str
    name: str
    reverse: str
    origin: str
    blocked: bool
    forwarded_count: int
    replied_count: int
    blocked_count: int
    last_seen_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class SenderRuleRow:
    """A block or allow rule; ``alias_id`` None: every alias of the account."""

    id: int
    alias_id: int | None
    action: str
    kind: str
    value: str


@dataclass(frozen=True)
class SenderVerdict:
    """Whether a sender may write to an alias, and why: ``no-rule``, ``known-contact``,
    ``allowed-by-alias-rule``, ``allowed-by-account-rule``, ``blocked-contact``,
    ``blocked-by-alias-rule``, ``blocked-by-account-rule`` or ``not-allow-listed`` (allow-only mode)."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class ForwardContacts:
    """What forwarding one message to an alias learned of its contacts (ContactBook.prepare_forward)."""

    alias_id: int
    #: Whether the alias's and its owner's sender rules let the message's sender through.
    verdict: SenderVerdict
    #: ``{address lowercase: reverse address}`` of everyone taking part (empty when refused).
    contacts: Mapping[str, str]
    #: The sender's contact (what a one-click unsubscribe of this message names).
    sender_contact_id: int | None = None
    #: ``{seen id: original id}`` of the ``thread_ids`` asked about that the Message-ID map holds
    #: for the alias (as ``original_for`` finds them; empty when refused).
    originals: Mapping[str, str] = field(default_factory=dict)
    #: The participants' contacts (ids), counted one forwarded message each by the message's first
    #: claim (``Directory.begin``, in its transaction), so a redelivery counts nothing.
    counted: tuple[int, ...] = ()
    #: A refused message's known sender (its contact id), counted one blocked message by the
    #: message's record (``Directory.begin``, in its transaction), so a redelivery counts nothing.
    blocked: tuple[int, ...] = ()


@runtime_checkable
class ContactBook(Protocol):
    def contacts_for(self, alias_id: int, alias_domain: str, people: Sequence[tuple[str, str]]) -> dict[str, str]:
        """``{address lowercase: reverse address}`` for each ``(address, display name)``, made when
        new; counts one forwarded message for each and sets its last-seen time."""
        ...

    def prepare_forward(
        self, alias_address: str, people: Sequence[tuple[str, str]], sender: str, thread_ids: Sequence[str] = ()
    ) -> ForwardContacts | None:
        """The sender rules' verdict, the contacts of one forwarded message and the originals of
        its ``thread_ids``, in one transaction; counts no forward (``ForwardContacts.counted``)."""
        ...

    def by_reverse(self, address: str) -> ContactRef | None: ...

    def unsubscribe(self, alias_id: int, contact_id: int) -> str:
        """Do the owner's one-click unsubscribe action; which one (or ``unknown``)."""
        ...

    def create(
        self, alias_id: int, alias_domain: str, address: str, name: str = "", origin: str = "user"
    ) -> ContactRef: ...

    def link(
        self, alias_id: int, contact_id: int | None, seen_ids: Sequence[str], original_id: str, kind: str = "forward"
    ) -> None:
        """Remember that each Message-ID of ``seen_ids`` one side sees stands for ``original_id``;
        ``kind`` is ``forward`` (a forwarded copy's id) or ``reply`` (a copy sent from the alias)."""
        ...

    def link_rows(
        self,
        alias_id: int,
        contact_id: int | None,
        seen_ids: Sequence[str],
        original_id: str,
        kind: str = "forward",
    ) -> list[dict[str, Any]]:
        """The rows :meth:`link` would write, sealed, for the Directory to write with the outcomes."""
        ...

    def answers_reply(self, alias_id: int, seen_ids: Sequence[str]) -> bool:
        """Whether one of ``seen_ids`` names a copy the alias sent to a contact (kind ``reply``)."""
        ...

    def original_for(self, alias_id: int, seen_id: str) -> str | None: ...

    def sender_allowed(self, user_id: int, alias_id: int, sender_address: str) -> SenderVerdict: ...

    def count(self, contact_id: int, *, replied: int = 0, blocked: int = 0) -> None:
        """Add to a contact's replied and blocked counts."""
        ...

    def prune(self, now: datetime) -> int:
        """Delete the links expired at ``now``; how many."""
        ...
