"""Addresses in headers: reading them from anything senders write, writing them 7-bit clean."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from forwarder.core.address_parser import AddressPairs, read_address_pairs
from forwarder.core.text import clean_text, encode_phrase

MAX_NAME = 64
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(
    rf'(?:{_ATOM}(?:\.{_ATOM})*|"(?:[^"\\\r\n]|\\.)*")'
    r"@(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?|\[[^\]\s]*\])"
)


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


_BAD_LOCAL = re.compile(r'[\x00-\x20\x7f<>,;\\"]')
_BAD_DOMAIN = re.compile(r'[\x00-\x20\x7f<>,;\\"()]')
_EMPTY_GROUP = re.compile(r"^\s*[^:<>@]*:\s*;\s*$")  # "undisclosed-recipients:;"

# The common shapes of an address list, read without the stdlib's general parser (which costs
# about 20 microseconds an address): ``addr``, ``phrase <addr>``, ``"quoted phrase" <addr>``,
# separated by commas. Anything else (comments, groups, routes, odd quoting) takes the slow path.
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_WORD = r"[^\x00-\x20\x7f()<>\[\]:;@\\,\"]+"
# The leading [ \t]* is possessive: one that could give back would retry the whole
# phrase from each of its positions (minutes for a long run of spaces before many words).
_ITEM = re.compile(
    rf"[ \t]*+(?:(?P<bare>{_ADDRESS.pattern})"
    rf"|(?P<phrase>(?:{_QUOTED}|{_WORD}|[ \t]+)*+)[ \t]*<(?P<angle>{_ADDRESS.pattern})>)"
    r"[ \t]*(?:,|$)"
)
_QUOTED_RE = re.compile(_QUOTED)
_PAIR = re.compile(r"\\(.)")


def _fast_list(text: str) -> tuple[Mailbox, ...] | None:
    """The mailboxes of a list in one of the common shapes; None means: use the full parser."""
    boxes: list[Mailbox] = []
    pos, end = 0, len(text)
    while pos < end:
        match = _ITEM.match(text, pos)
        if match is None or match.end() == pos:
            return None
        if match.group("bare"):
            boxes.append(Mailbox("", match.group("bare")))
        else:
            phrase = match.group("phrase")
            if '"' in phrase:
                phrase = _QUOTED_RE.sub(lambda q: _PAIR.sub(r"\1", q.group()[1:-1]), phrase)
            boxes.append(Mailbox(clean_text(" ".join(phrase.split())), match.group("angle")))
        pos = match.end()
    return tuple(boxes) or None


def is_valid_address(address: str) -> bool:
    """An RFC 5322 addr-spec in 7-bit form (dot-atom or quoted local part; a domain or literal)."""
    return _ADDRESS.fullmatch(address) is not None


@functools.lru_cache(maxsize=256)
def _pairs(text: str) -> AddressPairs:
    return read_address_pairs(text)


@functools.lru_cache(maxsize=2048)
def parse_address_list(text: str) -> tuple[Mailbox, ...]:
    """Every usable mailbox in an address list; groups are flattened, garbage is skipped.

    Results are cached: the rewrite and the validator read the same To and Cc fields.

    Lists not in one of the common shapes are read by ``address_parser``, which reads them as
    the standard library's lenient ``email.utils.getaddresses`` does, but with loops only: a list
    of any depth or length is read in linear time and never reaches a recursion limit, and the
    result does not depend on the interpreter's patch level. Non-ASCII addresses are kept (the
    caller decides). This is the reader to use on any address header a sender wrote.
    """
    fast = _fast_list(text)
    if fast is not None:
        return fast
    out = []
    for name, addr in _pairs(text).pairs:
        addr = addr.strip()
        local, at, domain = addr.rpartition("@")
        if at and local and domain and not any(ch.isspace() for ch in addr):
            out.append(Mailbox(clean_text(name), addr))
    return tuple(out)


@functools.lru_cache(maxsize=2048)
def strict_address_list(text: str) -> tuple[Mailbox, ...] | None:
    """The mailboxes of an address list, or None when any part of it is not a valid address.

    A list nested deeper or longer than ``address_parser`` reads in full is not valid either.
    """
    fast = _fast_list(text)
    if fast is not None:
        return fast
    found = _pairs(text)
    if not found.complete:
        return None
    boxes: list[Mailbox] = []
    for name, addr in found.pairs:
        addr = addr.strip()
        if not addr:
            continue
        if ascii_address(addr) is None or not is_valid_address(ascii_address(addr) or ""):
            return None
        boxes.append(Mailbox(clean_text(name), addr))
    if not boxes and text.strip() and not _EMPTY_GROUP.match(text):
        return None
    return tuple(boxes)


def parse_mailbox(text: str) -> Mailbox | None:
    """The first mailbox of a header such as From; None when there is no usable address."""
    found = parse_address_list(text)
    if found:
        return found[0]
    pairs = _pairs(text).pairs
    name, addr = pairs[0] if pairs else ("", "")
    if addr and "@" in addr:
        return Mailbox(clean_text(name), addr.strip())
    return None


def ascii_address(address: str) -> str | None:
    """The address in 7-bit form (SES accepts only 7-bit addresses), or None when impossible.

    A non-ASCII domain becomes its IDNA (punycode) form; a non-ASCII local part has no 7-bit form.
    """
    if address.isascii() and _ADDRESS.fullmatch(address):
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or not local.isascii():
        return None
    if _BAD_LOCAL.search(local) and not local.startswith('"'):
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if _BAD_DOMAIN.search(domain):
        return None
    return f"{local}@{domain}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


#: ``@`` and the characters that Unicode compatibility folding (NFKC) turns into one, FULLWIDTH and
#: SMALL COMMERCIAL AT: a client may show either as ``@``. With the white space around them.
_AT_SIGNS = re.compile(r"\s*[@\uff20\ufe6b]\s*")


def spell_at(text: str) -> str:
    """``text`` with every ``@`` (or look-alike) written " at ", as the sender address is spelled.

    ``security@paypal.com`` becomes ``security at paypal.com``: still readable, never an address.
    """
    return _AT_SIGNS.sub(" at ", text).strip()


def sender_display_name(sender: Mailbox | None) -> str:
    """The display name of a rewritten From: who really sent the message, with no ``@`` in it.

    ``Jane Doe (jane at example.com)``; just ``jane at example.com`` without a name. Writing the
    address with " at " keeps clients from reading the display name as an address (some show a
    warning for a display name that looks like one), and the real address stays readable. Every
    address-like token of the sender's own name is spelled the same way (:func:`spell_at`), so a
    name such as ``security@paypal.com`` (plain, quoted, in a comment or an encoded word, with a
    fullwidth ``＠``) cannot pass for the sender's address.
    """
    if sender is None:
        return "unknown sender"
    spelled = spell_at(sender.address)
    name = _shorten(spell_at(sender.name), MAX_NAME)
    if not name or sender.name.lower() == sender.address.lower():
        return _shorten(spelled, 2 * MAX_NAME)
    return f"{name} ({_shorten(spelled, MAX_NAME)})"


def format_mailbox(name: str, address: str) -> str | None:
    """``phrase <address>`` in 7-bit form, or None when the address has no 7-bit form."""
    ascii_addr = ascii_address(address)
    if ascii_addr is None:
        return None
    phrase = encode_phrase(name)
    return f"{phrase} <{ascii_addr}>" if phrase else ascii_addr
