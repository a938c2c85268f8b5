"""Two-way forwarding: the rules ``headers`` applies when the caller passes a :class:`TwoWay`.

A two-way alias names every external participant of a message (the sender, each Reply-To
address, every external To/Cc address) only by its contact's reverse address, so Reply and
Reply-All in any mail client reach the service, never a real address. The caller resolves the
contacts (``participants`` lists whom to ask for); this module only maps addresses.

- From is ``<display per format> <reverse of the sender>``; ``X-Othermail-Original-From`` is
  not added. Reply-To addresses become their reverses; none is added when the sender set none.
- To/Cc: every external address becomes its reverse (its display name kept, an ``@`` in it spelled
  " at ", as rule 1 does for the sender; an empty one shows the spelled address unless the format
  is "name"); the service's own addresses stay; the alias is added to To when it came by Bcc.
- At most 50 header recipients: the alias first, then the mapped (and own) addresses, then the
  others, in header order; the rest are left out and only their number is shown in
  ``X-Othermail-Omitted-Recipients`` (``X-Original-To``/``-Cc`` would name real addresses). An
  address without a 7-bit form (no contact can have it) is left out too.
- Fields that name participants and would lead a client to reply to them (``TWO_WAY_REMOVED``)
  are removed; an invalid Reply-To is dropped rather than kept as ``X-Original-Reply-To``.
- Any other field that names a contact's real address (trace fields, a Subject) gets it spelled
  " at " (``spell_known_addresses``); ids are left alone.
- An address missing from ``contacts`` keeps today's one-way treatment (its real address, and
  for the sender the alias as From with ``X-Othermail-Original-From`` and a Reply-To), and the
  repair ``contact-missing`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from forwarder.core.addresses import (
    MAX_NAME,
    Mailbox,
    ascii_address,
    format_mailbox,
    is_valid_address,
    parse_address_list,
    sender_display_name,
    spell_at,
    strict_address_list,
)
from forwarder.core.fields import MSG_ID
from forwarder.core.message import HeaderField
from forwarder.core.text import decode_bytes, decode_header_text, fold

DISPLAY_FORMATS = ("name-and-address", "name", "address")
OMITTED = "X-Othermail-Omitted-Recipients"
ONE_CLICK = "List-Unsubscribe=One-Click"
#: Fields removed in two-way mode, and why.
TWO_WAY_REMOVED: dict[str, str] = {
    "mail-followup-to": "a client's Reply-All (mutt and others) would write to the real addresses",
    "mail-reply-to": "a client's Reply would write to the real address",
    "resent-from": "names a participant's real address",
    "resent-to": "names a participant's real address",
    "resent-cc": "names a participant's real address",
    "resent-sender": "names a participant's real address",
    "x-original-from": "names real addresses; only one-way mode writes X-Original-* recipients",
    "x-original-to": "names real addresses; only one-way mode writes X-Original-* recipients",
    "x-original-cc": "names real addresses; only one-way mode writes X-Original-* recipients",
    "x-original-sender": "names a participant's real address",
    "x-original-reply-to": "names a participant's real address",
}
#: The sender's own unsubscribe fields, kept under these names when the service sets its own.
UNSUBSCRIBE_RENAMED: dict[str, str] = {
    "list-unsubscribe": "X-Original-List-Unsubscribe",
    "list-unsubscribe-post": "X-Original-List-Unsubscribe-Post",
}


def contact_key(address: str) -> str | None:
    """The key of an address in ``contacts``: its 7-bit form, lowercase; None when it has none."""
    found = ascii_address(address.strip())
    if found is None or not is_valid_address(found):
        return None
    return found.lower()


@dataclass(frozen=True, slots=True)
class TwoWay:
    """What the caller resolved for a two-way forward.

    ``contacts`` maps :func:`contact_key` of an external address to its reverse address.
    ``display_format`` is "name-and-address" (``Name (a at b.example)``), "name" or "address"
    (anything else reads as the first). ``unsubscribe`` is ``(https_url, mailto_uri)`` for
    ``List-Unsubscribe``. ``is_own`` tells the service's own addresses (kept as they are, not
    reported missing); without it only the alias is.
    """

    contacts: Mapping[str, str]
    display_format: str = "name-and-address"
    unsubscribe: tuple[str, str] | None = None
    is_own: Callable[[str], bool] | None = None
    #: Threading: ``<id>`` the sender's In-Reply-To or References names (the id a reply sent from
    #: the alias got from the provider) -> the ``<id>`` the alias's owner knows (their own message).
    ids: Mapping[str, str] = field(default_factory=dict)

    def reverse_of(self, address: str) -> str | None:
        key = contact_key(address)
        return None if key is None else self.contacts.get(key)

    def own(self, key: str, alias_address: str) -> bool:
        return key == alias_address.lower() or (self.is_own is not None and self.is_own(key))


def sender_display(sender: Mailbox, display_format: str) -> str:
    """The display name of the two-way From, per the user's format; never holds an ``@``."""
    if display_format == "address" or (display_format == "name" and not spell_at(sender.name)):
        return spell_at(sender.address)[: 2 * MAX_NAME]
    if display_format == "name":
        return spell_at(sender.name)[:MAX_NAME]
    return sender_display_name(sender)


def unsubscribe_lines(unsubscribe: tuple[str, str]) -> tuple[list[bytes], list[bytes]] | None:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058) as lines; None if unwritable."""
    url, mailto = unsubscribe
    if not mailto.lower().startswith("mailto:"):
        mailto = f"mailto:{mailto}"
    value = f"<{url.strip()}>, <{mailto.strip()}>"
    lines = fold("List-Unsubscribe", value) if value.isascii() else None
    if lines is None:
        return None
    return lines, [f"List-Unsubscribe-Post: {ONE_CLICK}".encode("ascii")]


@dataclass(frozen=True, slots=True)
class _Entry:
    field: str  # "to" or "cc"
    box: Mailbox
    key: str
    priority: int  # 0 the alias, 1 mapped or own, 2 the rest


def _boxes(f: HeaderField, charset: str | None) -> list[Mailbox]:
    boxes = []
    for box in parse_address_list(decode_bytes(f.value, charset)):
        name = decode_header_text(box.name.encode("utf-8", "surrogateescape"), charset)
        boxes.append(Mailbox(" ".join(name.split()), box.address))
    return boxes


def _shown(entry_box: Mailbox, key: str, two_way: TwoWay, alias_address: str, repairs: list[str]) -> str | None:
    """One mailbox of To, Cc or Reply-To as written in two-way mode; None when unwritable."""
    if two_way.own(key, alias_address):
        return format_mailbox(entry_box.name, entry_box.address)
    reverse = two_way.contacts.get(key)
    if reverse is None:
        repairs.append("contact-missing")
        return format_mailbox(entry_box.name, entry_box.address)
    name = spell_at(entry_box.name)
    if not name and two_way.display_format != "name":
        name = spell_at(entry_box.address)
    return format_mailbox(name, reverse)


def _list_lines(name: str, items: list[str]) -> list[bytes]:
    folded = fold(name, ", ".join(items))
    if folded is not None:
        return folded
    last = len(items) - 1
    return [
        (f"{name}: " if i == 0 else " ").encode("ascii") + item.encode("ascii") + (b"," if i < last else b"")
        for i, item in enumerate(items)
    ]


def map_reply_to(
    out: list[HeaderField], two_way: TwoWay, alias_address: str, charset: str | None, repairs: list[str]
) -> None:
    """Each address of the (valid, single) Reply-To becomes its reverse."""
    for i, f in enumerate(out):
        if f.key != "reply-to":
            continue
        items = []
        for box in _boxes(f, charset):
            key = contact_key(box.address)
            shown = None if key is None else _shown(box, key, two_way, alias_address, repairs)
            if shown is not None:
                items.append(shown)
        out[i] = HeaderField(f.name, _list_lines(f.name, items)) if items else f


def map_recipients(
    out: list[HeaderField],
    two_way: TwoWay,
    alias_address: str,
    charset: str | None,
    limit: int,
    repairs: list[str],
) -> None:
    """To and Cc (each one field by now) rewritten with reverses, the alias in, within ``limit``."""
    alias_key = alias_address.lower()
    entries: list[_Entry] = []
    originals: dict[str, HeaderField] = {}
    for f in out:
        if f.key not in ("to", "cc") or f.key in originals:
            continue
        originals[f.key] = f
        for box in _boxes(f, charset):
            key = contact_key(box.address)
            if key is None:
                repairs.append("dropped-unsendable-recipient")
                continue
            mapped = key in two_way.contacts or two_way.own(key, alias_address)
            entries.append(_Entry(f.key, box, key, 0 if key == alias_key else 1 if mapped else 2))
    if not any(e.priority == 0 for e in entries):
        entries.append(_Entry("to", Mailbox("", alias_address), alias_key, 0))

    kept = set(sorted(range(len(entries)), key=lambda i: (entries[i].priority, i))[:limit])
    omitted = len(entries) - len(kept)
    items: dict[str, list[str]] = {"to": [], "cc": []}
    for i, entry in enumerate(entries):
        if i in kept:
            shown = _shown(entry.box, entry.key, two_way, alias_address, repairs)
            if shown is not None:
                items[entry.field].append(shown)

    for key, name in (("to", "To"), ("cc", "Cc")):
        original = originals.get(key)
        new: HeaderField | None
        if items[key]:
            written = original.name if original else name
            new = HeaderField(written, _list_lines(written, items[key]))
        elif original is not None and strict_address_list(decode_bytes(original.value, charset)) == ():
            new = original  # an empty group such as "undisclosed-recipients:;" stays
        else:
            new = None
        _replace(out, key, new)
    if omitted:
        repairs.append("too-many-recipients")
        out.append(HeaderField(OMITTED, [f"{OMITTED}: {omitted}".encode("ascii")]))


#: Ids, not addresses: an id that happens to read as an address is left alone.
_ID_FIELDS = frozenset({"message-id", "in-reply-to", "references", "content-id"})


def spell_known_addresses(out: list[HeaderField], two_way: TwoWay) -> None:
    """Every other field that names a contact's real address (a Received's envelope-from,
    Authentication-Results' smtp.mailfrom, a Subject) gets it spelled " at ", as in From.

    Only the field's own bytes are searched: an address inside an RFC 2047 word stays.
    """
    if not two_way.contacts:
        return
    known = b"|".join(re.escape(k.encode("ascii")) for k in sorted(two_way.contacts, key=len, reverse=True))
    # Not inside a longer address: no word character, dot, plus, apostrophe or hyphen either side
    # ("smtp.mailfrom=a@b" names a@b; "=" is rarely part of a local part, so it is not excluded).
    pattern = re.compile(rb"(?i)(?<![\w.+'-])(?:" + known + rb")(?![\w.-])")
    for i, f in enumerate(out):
        if f.key in _ID_FIELDS or not any(b"@" in line for line in f.lines):
            continue
        lines = [pattern.sub(lambda m: m.group().replace(b"@", b" at "), line) for line in f.lines]
        if lines != f.lines:
            out[i] = HeaderField(f.name, lines)


def _replace(out: list[HeaderField], key: str, new: HeaderField | None) -> None:
    for i, f in enumerate(out):
        if f.key == key:
            if new is None:
                del out[i]
            else:
                out[i] = new
            return
    if new is not None:
        out.append(new)


__all__ = [
    "DISPLAY_FORMATS",
    "OMITTED",
    "TWO_WAY_REMOVED",
    "UNSUBSCRIBE_RENAMED",
    "TwoWay",
    "contact_key",
    "map_recipients",
    "map_reply_to",
    "sender_display",
    "spell_known_addresses",
    "unsubscribe_lines",
]


def map_message_ids(out: list[HeaderField], two_way: TwoWay) -> None:
    """In-Reply-To and References name, for each id in ``two_way.ids``, the id the owner knows:
    their mail client then shows the sender's answer in the thread of their own reply."""
    if not two_way.ids:
        return
    for index, f in enumerate(out):
        if f.key not in ("in-reply-to", "references"):
            continue
        mapped = MSG_ID.sub(lambda m: _mapped_id(two_way, m.group(0)), f.value)
        if mapped != f.value:
            ids = [i.decode("ascii") for i in MSG_ID.findall(mapped)]
            lines = fold(f.name, " ".join(dict.fromkeys(ids))) if ids else None
            if lines:
                out[index] = HeaderField(f.name, lines)


def _mapped_id(two_way: TwoWay, seen: bytes) -> bytes:
    known = two_way.ids.get(seen.decode("ascii", "replace"))
    return known.encode("ascii", "replace") if known else seen
