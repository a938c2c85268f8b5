"""Two-way aliases (issue 14): contacts with reverse addresses, the Message-ID map, sender rules.

A contact's real address, its display name and the Message-IDs are stored sealed
(forwarder/adapters/sealing.py) and found by keyed digests; nothing here holds them in clear.
Every row goes with its alias or user (ON DELETE CASCADE); aliases are soft-deleted, so the
services that delete one delete these rows explicitly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models import tables
from models.base import Base
from models.tables import DIGEST_LENGTH as DIGEST_LENGTH
from models.tables import REVERSE_LOCAL_MAX_LENGTH as REVERSE_LOCAL_MAX_LENGTH
from models.tables import RULE_ACTIONS as RULE_ACTIONS
from models.tables import RULE_KINDS as RULE_KINDS
from models.tables import SEALED_MAX_LENGTH as SEALED_MAX_LENGTH

#: How a contact came to be: mail through the alias, or created by its owner to write first.
CONTACT_ORIGINS = ("forward", "user")
#: Who may write to an alias (a column of aliases and of users): anyone not blocked, or only the
#: allow-listed and known, unblocked contacts.
SENDER_MODES = ("any", "allow-only")
#: How a forwarded message's From names the sender (users.display_format).
DISPLAY_FORMATS = ("name-and-address", "name", "address")
#: What a one-click unsubscribe does (users.unsubscribe_action).
UNSUBSCRIBE_ACTIONS = ("disable-alias", "block-contact", "pass-through")


class Contact(Base):
    """An external address that took part in mail to an alias (or that its owner wrote to first),
    reached through ``reverse_local@<alias domain>``."""

    __table__ = tables.contacts

    id: Mapped[int]
    alias_id: Mapped[int]
    #: Random, lowercase, never derived from the address; unique over every domain.
    reverse_local: Mapped[str]
    address_digest: Mapped[str]
    address_sealed: Mapped[str]
    name_sealed: Mapped[str]
    origin: Mapped[str]
    blocked: Mapped[bool]
    forwarded_count: Mapped[int]
    replied_count: Mapped[int]
    blocked_count: Mapped[int]
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<Contact id={self.id} alias_id={self.alias_id} reverse_local={self.reverse_local!r}>"


class MessageLink(Base):
    """One side's Message-ID (digest) -> the id the other side knows (sealed), for threading."""

    __table__ = tables.message_links

    id: Mapped[int]
    alias_id: Mapped[int]
    contact_id: Mapped[int | None]
    seen_digest: Mapped[str]
    #: The seen id itself, sealed: what ``othermail keys rotate`` re-digests under a new key.
    seen_sealed: Mapped[str]
    original_sealed: Mapped[str]
    #: ``forward``: the id of a forwarded copy (the owner's side); ``reply``: of a copy sent from the
    #: alias to a contact, so a bounce or an auto-reply naming it is known to answer the alias's mail.
    #: No Python-side default: an INSERT that names no kind works at revision 0007 too.
    kind: Mapped[str]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SenderRule(Base):
    """Block or allow an address, a domain (with its subdomains) or the empty sender, for one alias
    or (``alias_id`` NULL) every alias of the account."""

    __table__ = tables.sender_rules

    id: Mapped[int]
    user_id: Mapped[int]
    alias_id: Mapped[int | None]
    action: Mapped[str]
    kind: Mapped[str]
    #: Lowercase address or domain; "" for the empty sender.
    value: Mapped[str]
    created_at: Mapped[datetime]
