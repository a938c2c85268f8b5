"""Who takes part in a message: the external addresses a two-way forward needs contacts for.

The sender (the address the rewrite puts in From: the From field's, or Sender's, Return-Path's or
the envelope's when From has none), each address of the Reply-To the rewrite keeps (the first,
when valid), and every To/Cc address the caller does not call its own. Addresses are keyed as
``twoway.contact_key`` keys them (7-bit form, lowercase); an address without a 7-bit form cannot
be written to, so it is skipped. At most ``MAX_PARTICIPANTS``: SES takes no more header
recipients, and the rewrite keeps no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from forwarder.core.addresses import parse_address_list, strict_address_list
from forwarder.core.forward import Prepared
from forwarder.core.headers import MAX_HEADER_RECIPIENTS
from forwarder.core.text import clean_text, decode_bytes, decode_header_text
from forwarder.core.twoway import contact_key

MAX_PARTICIPANTS = MAX_HEADER_RECIPIENTS


@dataclass(frozen=True, slots=True)
class Participant:
    address: str  # contact_key form: 7-bit, lowercase
    name: str  # the display name, decoded; may be ""


def participants(message: Prepared, is_own: Callable[[str], bool]) -> tuple[Participant, ...]:
    """The external participants of ``message``, de-duplicated, in header order, at most 50.

    ``is_own`` is asked about each To/Cc address (in ``contact_key`` form); the service's own
    addresses (aliases, reverse addresses) get no contact.
    """
    found: dict[str, Participant] = {}
    for address, name, check in _candidates(message):
        key = contact_key(address)
        if key is None or key in found or (check and is_own(key)):
            continue
        found[key] = Participant(key, name)
        if len(found) >= MAX_PARTICIPANTS:
            break
    return tuple(found.values())


def _candidates(message: Prepared) -> Iterator[tuple[str, str, bool]]:
    """(address, display name, whether to ask is_own) in header order."""
    origin, split = message.origin, message.split
    if origin.sender is not None:
        yield origin.sender.address, origin.sender.name, False
    reply_to = split.first("reply-to")
    if reply_to is not None and origin.reply_to_valid:
        for box in strict_address_list(decode_bytes(reply_to.value, origin.charset)) or ():
            yield box.address, _name(box.name, origin.charset), False
    for key in ("to", "cc"):
        for f in split.get_all(key):
            for box in parse_address_list(decode_bytes(f.value, origin.charset)):
                yield box.address, _name(box.name, origin.charset), True


def _name(raw: str, charset: str | None) -> str:
    return " ".join(clean_text(decode_header_text(raw.encode("utf-8", "surrogateescape"), charset)).split())


__all__ = ["MAX_PARTICIPANTS", "Participant", "participants"]
