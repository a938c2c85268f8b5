"""Two-way forwarding: what the forward flow asks of the contact book before it rewrites.

For each alias recipient of a message, :meth:`TwoWayForward.prepare` makes one transaction
(``ContactBook.prepare_forward``): the alias's and its owner's sender rules are applied to the
sender (a refused one is dropped as ``dropped-blocked`` before anything is counted against the
limits), every outside address that takes part (From, Reply-To, To and Cc, found by
forwarder/core/participants.py) gets its reverse address, made when new, and the ids the sender's
In-Reply-To and References name are mapped back to the owner's own (the Message-ID map). The core's rewrite
(forwarder/core/twoway.py) then names them only by those, and adds the one-click unsubscribe
fields (RFC 8058): an https link to ``/u/<token>`` on the public address and a mailto to
``unsubscribe+<token>@<alias domain>``, which :meth:`TwoWayForward.unsubscribe_by_mail` handles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from forwarder.core import Decision, Outcome, Prepared
from forwarder.core.fields import MSG_ID
from forwarder.core.participants import participants
from forwarder.core.twoway import TwoWay
from forwarder.flows import unsubscribe
from forwarder.ports import ContactBook, ForwardContacts

logger = logging.getLogger("othermail.two_way")

#: At most this many of a message's In-Reply-To and References ids are looked up (the last ones).
MAX_THREAD_IDS = 8
#: The local part of the mailto unsubscribe address, before its token.
UNSUBSCRIBE_PREFIX = "unsubscribe+"


@dataclass(frozen=True, slots=True)
class Prepared2Way:
    """What :meth:`TwoWayForward.prepare` found for one alias recipient."""

    contacts: ForwardContacts
    #: The ids the sender's In-Reply-To and References name that stand for the owner's own messages.
    ids: Mapping[str, str] = field(default_factory=dict)
    #: Whether an address is the service's own (kept as it is, given no contact).
    is_own: Callable[[str], bool] | None = None

    @property
    def blocked(self) -> Decision | None:
        verdict = self.contacts.verdict
        if verdict.allowed:
            return None
        return Decision(Outcome.DROPPED_BLOCKED, f"the sender is blocked ({verdict.reason})")


def thread_candidates(seen: str) -> tuple[str, ...]:
    """The ids that may stand for ``seen`` in the Message-ID map, the best first. SES shows the id
    it returned as ``<id@email.amazonses.com>`` (``<id@<region>.amazonses.com>`` outside us-east-1):
    the returned id is what was linked, so its domain is not matched."""
    local, _at, domain = seen.strip().strip("<>").rpartition("@")
    return (seen, local) if local and domain.lower().endswith("amazonses.com") else (seen,)


def original_of(book: ContactBook, alias_id: int, seen: str) -> str | None:
    """The Message-ID the other side knows for ``seen`` (:func:`thread_candidates`)."""
    for candidate in thread_candidates(seen):
        found = book.original_for(alias_id, candidate)
        if found is not None:
            return found
    return None


def thread_ids(message: Prepared) -> list[str]:
    """The sender's In-Reply-To and References ids, the last ``MAX_THREAD_IDS`` distinct ones."""
    seen: list[str] = []
    for name in ("in-reply-to", "references"):
        for f in message.split.get_all(name):
            seen += [i.decode("ascii", "replace") for i in MSG_ID.findall(f.value)]
    return list(dict.fromkeys(seen))[-MAX_THREAD_IDS:]


class TwoWayForward:
    def __init__(
        self,
        contacts: Callable[[], ContactBook],
        keys: Callable[[], Sequence[bytes]],
        own_domains: Callable[[], Iterable[str]],
        public_url: str = "",
    ) -> None:
        self._book = contacts
        self._keys = keys
        self._own_domains = own_domains
        #: Where /u/<token> is served: OTHERMAIL_PUBLIC_URL, or the one box's own web address.
        self.public_url = public_url.rstrip("/")

    @cached_property
    def book(self) -> ContactBook:
        return self._book()

    def _own(self) -> Callable[[str], bool]:
        """Whether an address is on one of the service's domains (the list read once per message)."""
        domains = frozenset(d.lower() for d in self._own_domains())
        return lambda address: address.rpartition("@")[2].lower() in domains

    def prepare(self, message: Prepared, recipient: str) -> Prepared2Way | None:
        """The sender rules' verdict, the participants' reverse addresses, and the owner's ids that
        the sender's In-Reply-To and References stand for, in one call; None: not an alias."""
        is_own = self._own()
        people = [(p.address, p.name) for p in participants(message, is_own)]
        seen = thread_ids(message)
        candidates = list(dict.fromkeys(c for seen_id in seen for c in thread_candidates(seen_id)))
        found = self.book.prepare_forward(recipient, people, message.sender or "", candidates)
        if found is None:
            return None
        ids: dict[str, str] = {}
        for seen_id in seen if found.verdict.allowed else ():
            original = next((found.originals[c] for c in thread_candidates(seen_id) if c in found.originals), None)
            if original:
                ids[seen_id] = original if original.startswith("<") else f"<{original}>"
        return Prepared2Way(found, ids, is_own)

    def two_way(self, prepared: Prepared2Way, alias_address: str, display_format: str) -> TwoWay:
        """The core's input for rewriting one copy (forwarder/core/twoway.py)."""
        found = prepared.contacts
        links = None
        if found.sender_contact_id is not None and self.public_url:
            token = unsubscribe.sign(self._keys()[0], found.alias_id, found.sender_contact_id)
            domain = alias_address.rpartition("@")[2]
            links = (f"{self.public_url}/u/{token}", f"mailto:{UNSUBSCRIBE_PREFIX}{token}@{domain}")
        return TwoWay(found.contacts, display_format, links, prepared.is_own, prepared.ids)

    def unsubscribe_by_mail(self, recipient: str) -> Decision | None:
        """Mail to ``unsubscribe+<token>@<alias domain>`` (the mailto of List-Unsubscribe): do the
        owner's unsubscribe action and say so; None when ``recipient`` is no such address."""
        local = recipient.strip().lower().rpartition("@")[0]
        if not local.startswith(UNSUBSCRIBE_PREFIX):
            return None
        named = unsubscribe.verify(self._keys(), local[len(UNSUBSCRIBE_PREFIX) :])
        if named is None:
            return Decision(Outcome.DROPPED_UNKNOWN_ALIAS, "an unsubscribe address with a token that does not verify")
        action = self.book.unsubscribe(*named)
        return Decision(Outcome.DROPPED_BLOCKED, f"one-click unsubscribe by mail: {action}")
