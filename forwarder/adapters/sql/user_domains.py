"""Users' own domains: their statuses, and what the forwarder asks about them.

A user adds a domain in the web app and publishes an ownership TXT record
``_othermail.<domain>`` = ``othermail-verification=<token>`` and, when the service sends through
SES, the MX, SPF, Easy DKIM and DMARC records; :mod:`forwarder.ops.domain_checks` checks them and
:func:`next_status` turns a check's result into the domain's new status:

==========  ======================================================================================
pending     added; nothing accepted until a check passes
verified    a check passed: mail is accepted and forwarded, aliases can be created
failing     a later check failed, less than the grace period ago: mail is still forwarded, the
            owner is warned
suspended   checks have failed for longer than the grace period: mail to the domain's aliases is
            dropped (``dropped-disabled``) and new aliases are refused, until a check passes again
==========  ======================================================================================

A check that could not be made (a name server timed out or failed, SES did not answer) changes
nothing: the absence of an answer is not proof that the records are gone.

The forwarder side is :class:`UserDomains`: which user domains receive mail (the SMTP listener's
RCPT check, the Lambda's recipients), whether an alias's domain is suspended, and the catch-all
(the first message to an unknown address on a catch-all domain creates that alias for the domain's
owner, forwarding to all the owner's verified destinations).

The Lambda imports this module (through :mod:`forwarder.adapters.sql.directory`), so it imports neither
dnspython nor anything that checks: those live in :mod:`forwarder.ops.domain_checks`.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from forwarder.adapters.sql.connections import again_if_dead
from forwarder.errors import AccountError
from forwarder.local_parts import check_local_part
from models.tables import alias_destinations
from models.tables import aliases as _aliases
from models.tables import destinations as _destinations
from models.tables import user_domains as _domains

OWNERSHIP_LABEL = "_othermail"
OWNERSHIP_PREFIX = "othermail-verification="
#: Statuses under which mail is forwarded and aliases may be created.
SERVING = frozenset({"verified", "failing"})
#: Statuses under which mail for the domain is accepted (a suspended domain's mail is dropped
#: with a recorded outcome rather than refused, like a switched-off alias's).
RECEIVING = frozenset({"verified", "failing", "suspended"})
#: Statuses the periodic re-check looks at.
RECHECKED = ("verified", "failing", "suspended")
DEFAULT_GRACE = timedelta(hours=72)
#: Label of the aliases the catch-all creates, so the owner can tell them apart.
CATCH_ALL_LABEL = "created by the catch-all"
#: The catch-all stops creating aliases when the owner holds this many live ones (the web app's
#: default account limit, OTHERMAIL_WEB_MAX_LIVE_ALIASES).
CATCH_ALL_MAX_LIVE_ALIASES = 200


def new_token() -> str:
    return secrets.token_hex(16)


def ownership_name(domain: str) -> str:
    return f"{OWNERSHIP_LABEL}.{domain}"


def ownership_value(token: str) -> str:
    return f"{OWNERSHIP_PREFIX}{token}"


# ------------------------------------------------------------------------------- state transitions


class CheckResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"  # DNS or SES could not answer: no conclusion either way


@dataclass(frozen=True)
class Transition:
    status: str
    failing_since: datetime | None

    @property
    def forwards(self) -> bool:
        return self.status in SERVING


def next_status(
    status: str, failing_since: datetime | None, result: CheckResult, now: datetime, grace: timedelta = DEFAULT_GRACE
) -> Transition:
    """The domain's status after a check with ``result`` at ``now``.

    - a pass makes any domain ``verified``;
    - a failure leaves a ``pending`` domain pending, and otherwise starts (or continues) the grace
      period: ``failing`` until ``grace`` has passed since the first failure, ``suspended`` after;
    - an unknown result changes nothing.
    """
    if result is CheckResult.UNKNOWN:
        return Transition(status, failing_since)
    if result is CheckResult.PASS:
        return Transition("verified", None)
    if status == "pending":
        return Transition("pending", None)
    since = failing_since or now
    return Transition("suspended" if now - since >= grace else "failing", since)


# ------------------------------------------------------------------------------- the forwarder side


_RECEIVING_DOMAINS = select(_domains.c.name, _domains.c.status, _domains.c.catch_all).where(
    _domains.c.status.in_(sorted(RECEIVING))
)


@dataclass(frozen=True)
class DomainEntry:
    status: str
    catch_all: bool


def create_catch_all_alias(
    connection: Connection, address: str, now: datetime, max_live_aliases: int = CATCH_ALL_MAX_LIVE_ALIASES
) -> bool:
    """Create ``address`` for the owner of its catch-all domain; True when the alias exists after.

    The domain row is read again here (not from a cache), so switching the catch-all off or
    deleting the domain takes effect at once. Nothing is created for a local part an alias could
    not have (reserved names such as ``postmaster`` included), when the owner has no verified
    destination, or when the owner already holds ``max_live_aliases`` live aliases. Two messages
    racing for the same new address both end up with the one alias: the unique address lets only
    one insert win, and the loser finds the winner's row.
    """
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return False
    try:
        local = check_local_part(local)
    except AccountError:
        return False
    address = f"{local}@{domain}"
    row = connection.execute(  # the claim that serves the name (other accounts' claims never do)
        select(_domains.c.user_id, _domains.c.status, _domains.c.catch_all).where(
            _domains.c.name == domain, _domains.c.status.in_(sorted(SERVING))
        )
    ).first()
    if row is None or not row.catch_all or row.status not in SERVING:
        return False
    targets = (
        connection.execute(
            select(_destinations.c.id)
            .where(_destinations.c.user_id == row.user_id, _destinations.c.verified_at.is_not(None))
            .order_by(_destinations.c.id)
        )
        .scalars()
        .all()
    )
    if not targets:
        return False
    live = connection.execute(
        select(func.count())
        .select_from(_aliases)
        .where(_aliases.c.user_id == row.user_id, _aliases.c.deleted_at.is_(None))
    ).scalar_one()
    if live >= max_live_aliases:
        return False
    try:
        created = connection.execute(
            insert(_aliases).values(
                address=address,
                user_id=row.user_id,
                enabled=True,
                created_at=now,
                label=CATCH_ALL_LABEL,
                expired_action="drop",
                message_count=0,
                forwarded_count=0,
                blocked_count=0,
            )
        )
        alias_id = created.inserted_primary_key[0]  # type: ignore[index]  # an executed INSERT has its key
        connection.execute(
            insert(alias_destinations), [{"alias_id": alias_id, "destination_id": target} for target in targets]
        )
        connection.commit()
    except IntegrityError:
        connection.rollback()  # another message created it first (or a destination just went)
        return connection.execute(select(_aliases.c.id).where(_aliases.c.address == address)).first() is not None
    return True


class UserDomains:
    """What the forwarder asks about users' domains, for :class:`forwarder.adapters.sql.directory.SqlDirectory`.

    The receiving domains (verified, failing, suspended) are read in one query and kept for
    ``ttl`` seconds, so the hot path (every RCPT, every resolve) costs a dictionary lookup; a
    domain verified, suspended or deleted in the web app is seen by a running forwarder within
    ``ttl``. Creating a catch-all alias reads the domain again, fresh.

    ``connect`` opens a connection (the directory's, which maps database errors to
    :class:`~forwarder.errors.DatabaseUnavailable`).
    """

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[Connection]],
        ttl: float = 30.0,
        max_live_aliases: int = CATCH_ALL_MAX_LIVE_ALIASES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._ttl = ttl
        self._max_live_aliases = max_live_aliases
        self._monotonic = monotonic
        self._snapshot: tuple[float, dict[str, DomainEntry]] | None = None

    def invalidate(self) -> None:
        self._snapshot = None

    def _entries(self) -> dict[str, DomainEntry]:
        snapshot = self._snapshot
        now = self._monotonic()
        if snapshot is not None and now - snapshot[0] < self._ttl:
            return snapshot[1]
        with self._connect() as connection:
            rows = again_if_dead(connection, lambda again: again.execute(_RECEIVING_DOMAINS).all())
        entries = {row.name: DomainEntry(row.status, bool(row.catch_all)) for row in rows}
        self._snapshot = (now, entries)  # one assignment: threads see the old or the new table
        return entries

    def entry(self, domain: str) -> DomainEntry | None:
        return self._entries().get(domain.strip().rstrip(".").lower())

    def accepts(self, domain: str) -> bool:
        """Whether mail for ``domain`` is accepted (a verified, failing or suspended user domain)."""
        return self.entry(domain) is not None

    def names(self) -> tuple[str, ...]:
        """Every user domain that receives mail."""
        return tuple(sorted(self._entries()))

    def suspended(self, address: str) -> bool:
        """Whether ``address`` is on a suspended user domain (its mail is dropped)."""
        entry = self.entry(address.rpartition("@")[2])
        return entry is not None and entry.status == "suspended"

    def catch_all_accepts(self, address: str) -> bool:
        """Whether an unknown ``address`` would get an alias from its domain's catch-all."""
        local, _, domain = address.strip().lower().rpartition("@")
        entry = self.entry(domain)
        if entry is None or not entry.catch_all or entry.status not in SERVING:
            return False
        try:
            check_local_part(local)
        except AccountError:
            return False
        return True

    def hold(self, resolved: Any) -> Any:
        """``resolved`` (a :class:`~forwarder.adapters.sql.directory.ResolvedAlias` or None), switched off when
        its address is on a suspended domain, so the core drops its mail as ``dropped-disabled``."""
        if resolved is None or not self.suspended(resolved.state.address):
            return resolved
        return dataclasses.replace(resolved, state=dataclasses.replace(resolved.state, enabled=False))

    def catch_all(self, address: str, now: datetime) -> bool:
        """Create ``address`` from its domain's catch-all; True when the alias exists now."""
        if not self.catch_all_accepts(address):
            return False
        with self._connect() as connection:
            return create_catch_all_alias(connection, address, now, self._max_live_aliases)
