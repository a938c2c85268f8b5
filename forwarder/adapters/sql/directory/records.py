"""What the directory hands its callers and keeps between its steps: resolved aliases, claims,
openings, finished sends (forwarder/adapters/sql/directory/__init__.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from forwarder.core import AliasState, Decision, Outcome
from forwarder.flows.mail_limits import Window

PENDING = "pending"
RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Target:
    """A verified destination of an alias; a paused one (SES feedback, forwarder/adapters/sql/feedback_store.py)
    gets nothing until its owner resumes it."""

    destination_id: int
    email: str
    paused_at: datetime | None = None
    pause_reason: str = ""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def pause_note(self) -> str:
        """The reason a ``dropped-paused`` row gives (it may name the address: its owner reads it)."""
        when = self.paused_at.strftime("%Y-%m-%d %H:%M UTC") if self.paused_at else "earlier"
        why = f": {self.pause_reason}" if self.pause_reason else ""
        return f"destination paused on {when}{why}"


@dataclass(frozen=True, slots=True)
class ResolvedAlias:
    alias_id: int
    state: AliasState
    targets: tuple[Target, ...]
    #: What mail gets once the alias has expired: "drop" or "reject" (forwarder/flows/expired_reject.py).
    expired_action: str = "drop"
    #: The alias's name on mail it sends (replies of a two-way alias); "" for none.
    display_name: str = ""
    user_id: int | None = None
    #: How forwarded mail names its sender (the owner's choice; forwarder/core/twoway.py).
    display_format: str = "name-and-address"


class AddressStatus(Enum):
    """What the SMTP listener's RCPT check learns of an address (:meth:`SqlDirectory.address_status`)."""

    UNKNOWN = "unknown"
    ACCEPTS = "accepts"
    #: accepts now, but may expire (a count, a date, idleness) with expired_action reject: the RCPT
    #: check must not remember it, or it would answer 250 for mail the alias no longer takes
    ACCEPTS_UNCACHED = "accepts-uncached"
    #: expired, and its owner chose reject: refused at RCPT
    REJECTS_EXPIRED = "rejects-expired"


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    message_id: str
    recipient: str
    destination_id: int = 0


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What the delivery log keeps of a message besides its outcome."""

    mail_from: str = ""
    subject: str = ""
    bytes_in: int = 0
    received_at: datetime | None = None
    #: The raw message's key in the mail store, when it is kept there (see Inbound.raw_key).
    raw_key: str | None = None


class ClaimState(Enum):
    NEW = "new"
    RESUMED = "resumed"
    DONE = "done"
    BUSY = "busy"
    LIMIT = "limit"
    #: over an hourly or daily limit (forwarder/flows/mail_limits.py); nothing was claimed
    RATE_LIMITED = "rate-limited"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    outcome: str = ""
    attempts: int = 1
    #: RATE_LIMITED: the limit reached (None: a redelivery of a message dropped for it before)
    window: Window | None = None

    @property
    def dropped(self) -> Decision:
        """LIMIT or RATE_LIMITED: the message-level outcome recorded in place of the claims."""
        if self.state is ClaimState.LIMIT:
            return Decision(Outcome.DROPPED_EXPIRED_COUNT, "the alias reached its message limit")
        reason = self.window.reason() if self.window else "an hourly or daily message limit was reached"
        return Decision(Outcome.DROPPED_RATE_LIMITED, reason)


class Planned(Protocol):
    """What the caller of :meth:`SqlDirectory.begin` decided for a recipient: FORWARDED claims the
    alias's destinations, anything else is recorded as the message's outcome."""

    @property
    def decision(self) -> Decision: ...


P = TypeVar("P", bound=Planned)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Opening(Generic[P]):
    """What :meth:`SqlDirectory.begin` did for one recipient."""

    resolved: ResolvedAlias | None
    #: The caller's decision, made on ``resolved``.
    plan: P
    #: The message-level outcome recorded: the plan's, or a limit reached in place of the claims.
    #: None: the destinations were claimed.
    recorded: Decision | None = None
    #: Whether ``recorded`` is new (False: this message was recorded before).
    fresh: bool = True
    #: The unpaused destinations in order, each with its claim (NEW, RESUMED or DONE); a BUSY one
    #: ends the list, the destinations after it are not claimed.
    claims: tuple[tuple[Target, Claim], ...] = ()
    #: The paused destinations, recorded as ``dropped-paused``, each with whether its row is new.
    paused: tuple[tuple[Target, bool], ...] = ()
    #: The claims are this message's first (no row of it existed): none of its copies was forwarded
    #: before (:attr:`Finished.first`).
    first: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """What the send of a claimed copy did (:meth:`SqlDirectory.settle`)."""

    key: DeliveryKey
    outcome: Outcome
    reason: str
    bytes_out: int | None = None
    provider_message_id: str | None = None
    #: The claim's alias, given with ``first`` (:attr:`Opening.first`): nothing of this message was
    #: forwarded before, so :meth:`SqlDirectory.settle` counts a forward without reading the row.
    alias_id: int | None = None
    first: bool = False


@dataclass(frozen=True, slots=True)
class _Claimed:
    claims: tuple[tuple[Target, Claim], ...]
    paused: tuple[tuple[Target, bool], ...]
    first: bool


@dataclass(frozen=True, slots=True)
class _Again:
    """A claim rolled back, to start over: a race for a row was lost (the next attempt finds the
    other worker's row), or the database chose this transaction as a deadlock's victim. ``why``
    is named if the attempts run out."""

    why: str = "a race for the message's rows"


@dataclass(frozen=True, slots=True)
class _Existing:
    """A delivery row of the message being claimed (what :meth:`SqlDirectory._take_over` needs)."""

    id: int
    outcome: str
    attempts: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class _Seen:
    """The rows of one (message, alias) found before its claim: by destination key (0: the
    message-level outcome), and whether there was any at all (a row of a destination the alias no
    longer has counts: the message was counted when it was claimed)."""

    rows: Mapping[int, _Existing]
    any: bool


#: Attempts of a claim: a race for a row is lost, a deadlock is broken, a catch-all alias is made.
_ATTEMPTS = 5


def alias_state(alias: Any, destination_count: int | None = None) -> AliasState:
    """The plain values the core decides on, read from an alias.

    ``alias`` is an ORM :class:`~models.Alias` or any row with the same column names (what
    :meth:`SqlDirectory.resolve` selects); a row needs ``destination_count``.
    """
    if destination_count is None:
        destination_count = sum(1 for d in alias.destinations if d.verified_at)
    return AliasState(
        address=alias.address,
        enabled=alias.enabled,
        deleted=alias.deleted_at is not None,
        expires_at=alias.expires_at,
        idle_days=alias.idle_days,
        max_messages=alias.max_messages,
        message_count=alias.message_count,
        created_at=alias.created_at,
        last_used_at=alias.last_used_at,
        destination_count=destination_count,
    )
