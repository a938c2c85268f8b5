"""Writing a field's content in valid 7-bit form: mailboxes, address lists, MIME parameters, ids.

These are the encoders rule 10 of ``headers`` uses; they decide nothing about which fields a
forwarded message carries. Each returns physical lines without line endings, or None when the
content has no valid form (the caller then renames the field and keeps its text).
"""

from __future__ import annotations

import re

from forwarder.core.addresses import format_mailbox, strict_address_list
from forwarder.core.text import decode_bytes, decode_header_text, encode_phrase, encode_words, fold

_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
MSG_ID = re.compile(rb"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ATTR_CHAR = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~")


def params(value: str) -> list[tuple[str, str]]:
    """The parameters of a MIME value such as ``text/plain; charset="utf-8"``, unquoted."""
    found = []
    for match in _PARAM.finditer(value):
        raw = match.group(2).strip()
        if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if "\\" in raw else raw[1:-1]
        found.append((match.group(1).lower(), raw))
    return found


def mailbox_lines(name: str, display: str, address: str) -> list[bytes]:
    """``Name: phrase <address>``; a display name too long to fold is written as encoded words."""
    phrase = encode_phrase(display)
    lines = fold(name, f"{phrase} <{address}>" if phrase else address)
    if lines is None:
        lines = fold(name, f"{encode_words(display)} <{address}>")
    return lines or fold(name, address) or [f"{name}: {address}".encode("ascii")]


def address_lines(name: str, raw: bytes, charset: str | None) -> list[bytes] | None:
    boxes = strict_address_list(decode_bytes(raw, charset))
    if not boxes:
        return None
    parts = []
    for box in boxes:
        display = decode_header_text(box.name.encode("utf-8", "surrogateescape"), charset)
        formatted = format_mailbox(display, box.address)
        if formatted is None:
            return None
        parts.append(formatted)
    return fold(name, ", ".join(parts))


def parameter_lines(name: str, raw: bytes, charset: str | None) -> list[bytes] | None:
    """A MIME value with 8-bit parameters rewritten in RFC 2231 form (``name*=utf-8''...``)."""
    text = decode_bytes(raw, charset)
    head = text.split(";", 1)[0].strip()
    if not head or not head.isascii():
        return None
    pieces = [head]
    for param, value in params(text):
        if not value.isascii():
            pieces.append(f"{param}*=utf-8''{_percent(value)}")
        elif value and _TOKEN.match(value):
            pieces.append(f"{param}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            pieces.append(f'{param}="{escaped}"')
    return fold(name, "; ".join(pieces))


def _percent(value: str) -> str:
    return "".join(chr(b) if b in _ATTR_CHAR else f"%{b:02X}" for b in value.encode("utf-8"))


def msg_id_lines(name: str, raw: bytes) -> list[bytes] | None:
    """Message-ID, In-Reply-To or References reduced to the well-formed ids they hold."""
    ids = MSG_ID.findall(raw)
    if not ids:
        return None
    return fold(name, " ".join(i.decode("ascii") for i in ids))
