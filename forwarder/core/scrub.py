"""Scrubbing the user's real address out of the text parts of a reply.

A reply written in the user's own mail client quotes the forwarded message and names the user's
real mailbox ("On Mon, Jane <me@real.example> wrote:", an Outlook From:/To: block, a signature).
Every occurrence of such an address in a text/plain or text/html part becomes the alias:

- in any letter case, and with any character written as a percent escape (``mailto:me%40real``)
  or an HTML character reference (``me&#64;real``, ``&#x40;``, ``&commat;``);
- after undoing the part's transfer encoding (quoted-printable, base64) and its charset; a part
  that changes is encoded again with its own transfer encoding, or quoted-printable when a 7bit or
  8bit part no longer satisfies it;
- only parts that contain an address change: every other byte of the message is kept, multipart
  structure included. Other parts (attachments, message/rfc822) are never opened.

The preamble and epilogue of a multipart body, which no client shows, are scrubbed as bytes.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from forwarder.core.body import MAX_DEPTH, boundary_of, delimiter_starts
from forwarder.core.fields import params
from forwarder.core.message import HeaderField, first_long_line, split_message
from forwarder.core.text import _codec

_TEXT_TYPES = (b"text/plain", b"text/html")
_NAMED = {"@": ("&commat;",), ".": ("&period;",), "-": ("&hyphen;", "&dash;"), "_": ("&lowbar;",)}
#: Replacing can in theory join an alias with its neighbours into a new occurrence; a few passes
#: settle it (the caller makes sure the alias itself contains no destination address).
_PASSES = 3


def _alternatives(ch: str) -> list[str]:
    code = ord(ch)
    return [re.escape(ch), f"%{code:02x}", f"&#0*{code};", f"&#x0*{code:x};", *map(re.escape, _NAMED.get(ch, ()))]


def _pattern(addresses: Iterable[str]) -> str:
    words = sorted({a.strip().lower() for a in addresses if a.strip()}, key=len, reverse=True)
    spelled = ["".join("(?:" + "|".join(_alternatives(ch)) + ")" for ch in word) for word in words]
    return "|".join(spelled)


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Replaces the destination addresses with the alias, in text and in raw bytes."""

    alias: str
    text_pattern: re.Pattern[str]
    bytes_pattern: re.Pattern[bytes]

    @classmethod
    def build(cls, addresses: Iterable[str], alias: str) -> Scrubber | None:
        """None when there is no address to scrub."""
        pattern = _pattern(addresses)
        if not pattern:
            return None
        return cls(
            alias,
            re.compile(pattern, re.IGNORECASE),
            # the addresses are 7-bit: a byte pattern matches them in any ASCII-compatible charset
            re.compile(pattern.encode("ascii", "backslashreplace"), re.IGNORECASE),
        )

    def text(self, text: str, is_html: bool = False) -> str:
        alias = html.escape(self.alias) if is_html else self.alias
        for _ in range(_PASSES):
            text, count = self.text_pattern.subn(lambda _m: alias, text)
            if not count:
                break
        return text

    def raw(self, data: bytes, is_html: bool = False) -> bytes:
        alias = (html.escape(self.alias) if is_html else self.alias).encode("ascii", "backslashreplace")
        for _ in range(_PASSES):
            data, count = self.bytes_pattern.subn(lambda _m: alias, data)
            if not count:
                break
        return data

    def found_in(self, text: str) -> bool:
        return self.text_pattern.search(text) is not None

    def payload(self, data: bytes, charset: str | None, is_html: bool) -> bytes | None:
        """The decoded content of a part, scrubbed in its charset; None when nothing changed.

        Content that its charset cannot decode (or that has none) is scrubbed as bytes, which is
        exact for every ASCII-compatible charset.
        """
        codec = _codec(charset)
        if codec is not None:
            try:
                text = data.decode(codec)
            except (UnicodeError, ValueError, LookupError):
                pass
            else:
                scrubbed = self.text(text, is_html)
                if scrubbed == text:
                    return None
                try:
                    return scrubbed.encode(codec)
                except (UnicodeError, ValueError, LookupError):
                    pass
        scrubbed_bytes = self.raw(data, is_html)
        return None if scrubbed_bytes == data else scrubbed_bytes


def _content(fields: list[HeaderField]) -> tuple[bytes, bytes | None, bytes, str | None]:
    """The entity's media type, boundary, transfer encoding and charset."""
    ctype, boundary, cte, charset = b"text/plain", None, b"7bit", None
    for f in fields:
        if f.key == "content-type":
            value = f.value
            ctype = value.split(b";", 1)[0].strip().lower() or ctype
            boundary = boundary_of(value)
            charset = dict(params(value.decode("ascii", "replace"))).get("charset")
            break
    for f in fields:
        if f.key == "content-transfer-encoding":
            cte = f.value.strip().lower()
            break
    return ctype, boundary, cte, charset


def _decode_transfer(body: bytes, cte: bytes) -> bytes | None:
    if cte in (b"7bit", b"8bit", b"binary", b""):
        return body
    if cte == b"quoted-printable":
        return binascii.a2b_qp(body)
    if cte == b"base64":
        compact = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        try:
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
        except binascii.Error:
            return None
    return None  # x-uuencode and the like: not text a client shows


def _base64(data: bytes, eol: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return eol.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _quoted_printable(data: bytes) -> bytes | None:
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    if binascii.a2b_qp(encoded) != data or first_long_line(encoded) >= 0:
        return None  # mixed or bare line endings do not survive quoted-printable
    return encoded


def _encode_transfer(data: bytes, cte: bytes, eol: bytes) -> tuple[bytes, bytes]:
    """The new body and its transfer encoding: the part's own when it still holds the content."""
    if cte == b"base64":
        return _base64(data, eol), cte
    if cte in (b"7bit", b"") and data.isascii() and first_long_line(data) < 0 and b"\x00" not in data:
        return data, cte
    if cte in (b"8bit", b"binary") and first_long_line(data) < 0 and b"\x00" not in data:
        return data, cte
    encoded = _quoted_printable(data)
    if encoded is not None:
        return encoded, b"quoted-printable"
    return _base64(data, eol) + eol, b"base64"


def with_cte(fields: list[HeaderField], cte: bytes) -> list[HeaderField]:
    """``fields`` with Content-Transfer-Encoding set to ``cte`` (in place of the old one)."""
    new = HeaderField("Content-Transfer-Encoding", [b"Content-Transfer-Encoding: " + cte])
    out = [new if f.key == "content-transfer-encoding" else f for f in fields]
    return out if any(f.key == "content-transfer-encoding" for f in fields) else [*out, new]


def scrub_entity(
    scrubber: Scrubber, fields: list[HeaderField], body: bytes, eol: bytes, depth: int = 0
) -> tuple[list[HeaderField], bytes] | None:
    """The entity's fields and body with the addresses replaced, or None when nothing changed."""
    ctype, boundary, cte, charset = _content(fields)
    if ctype.startswith(b"multipart/"):
        if not boundary or depth > MAX_DEPTH:
            return None
        new_body = _multipart(scrubber, body, boundary, depth)
        return None if new_body is None else (fields, new_body)
    if ctype not in _TEXT_TYPES:
        return None
    data = _decode_transfer(body, cte)
    if data is None:
        return None
    scrubbed = scrubber.payload(data, charset, ctype == b"text/html")
    if scrubbed is None:
        return None
    encoded, new_cte = _encode_transfer(scrubbed, cte, eol)
    return (fields if new_cte == cte else with_cte(fields, new_cte)), encoded


def _multipart(scrubber: Scrubber, body: bytes, boundary: bytes, depth: int) -> bytes | None:
    starts = delimiter_starts(body, boundary)
    if not starts:
        return None
    preamble = body[: starts[0]]
    pieces = [scrubber.raw(preamble)]
    changed = pieces[0] != preamble
    delimiter_length = len(boundary) + 2
    for i, start in enumerate(starts):
        line_end = body.find(b"\n", start)
        line_end = len(body) if line_end < 0 else line_end + 1
        pieces.append(body[start:line_end])
        end = starts[i + 1] if i + 1 < len(starts) else len(body)
        chunk = body[line_end:end]
        closing = body[start + delimiter_length : start + delimiter_length + 2] == b"--"
        new = scrubber.raw(chunk) if closing else _part(scrubber, chunk, depth)
        changed = changed or new != chunk
        pieces.append(new)
    return b"".join(pieces) if changed else None


def _part(scrubber: Scrubber, chunk: bytes, depth: int) -> bytes:
    """One body part; the line ending before the next delimiter belongs to that delimiter."""
    tail = b""
    for ending in (b"\r\n", b"\n"):
        if chunk.endswith(ending):
            chunk, tail = chunk[: -len(ending)], ending
            break
    part = split_message(chunk)
    if "mbox-from-line" in part.repairs:
        return chunk + tail  # a part without a header block whose text starts with "From "
    result = scrub_entity(scrubber, part.fields, bytes(part.body), part.eol, depth + 1)
    if result is None:
        return chunk + tail
    fields, body = result
    head = b"".join(line + part.eol for f in fields for line in f.lines)
    return head + part.eol + body + tail
