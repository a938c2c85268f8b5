"""The ContactBook of two-way aliases (issue 14) in SQL: contacts, the Message-ID map, sender rules.

Real addresses, display names and Message-IDs are stored sealed and found by their keyed digests
(forwarder/adapters/sealing.py); during a key rotation a lookup tries each key's digest.

The package, by role: :mod:`.addresses` (normalizing addresses and Message-IDs, reverse local
parts), :mod:`.statements` (the Core statements of the hot path, built once), :mod:`.store`
(:class:`~.store.ContactStore`: the engine, the sealer, connections, finding and inserting a
contact), the roles built on it, :mod:`.sender_rules` (:func:`~.sender_rules.judge` and the
rules' management), :mod:`.links` (the Message-ID map and its pruning), :mod:`.managing` (the
web's contact management, one-click unsubscribe) and :mod:`.resealing` (re-sealing under a new
key), and :mod:`.book` (:class:`SqlContactBook`, made of those roles: the forward and reply
paths' contacts). Each imports only those before it; import from the package.
"""

from __future__ import annotations

from forwarder.adapters.sql.contacts.addresses import (
    REVERSE_BYTES,
    new_reverse_local,
    normalize_address,
    normalize_message_id,
    plausible,
)
from forwarder.adapters.sql.contacts.book import SqlContactBook
from forwarder.adapters.sql.contacts.sender_rules import judge

__all__ = [
    "REVERSE_BYTES",
    "SqlContactBook",
    "judge",
    "new_reverse_local",
    "normalize_address",
    "normalize_message_id",
    "plausible",
]
