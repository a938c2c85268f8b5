"""Multipart boundaries too long for a line, replaced by short ones; every part keeps its bytes.

RFC 2046 section 5.1.1 allows a boundary of 70 characters, but senders write longer ones, and a
real test message of a well-known MIME parser has one of over 998 octets. Its delimiter lines
(``--`` + boundary, ``--`` after the last) are then longer than the 998 characters SES and RFC
5321 accept on a line, and so is its Content-Type parameter unless split in RFC 2231 pieces: SES
refuses the whole message, and no line-length repair of ``body`` can shorten a delimiter.

Such a boundary is replaced by a short one (``=_om_`` and 24 hexadecimal digits of a hash of the
old one, so the same message always gives the same bytes) that occurs nowhere in the body. Only
two things change: the ``boundary`` parameter of the Content-Type (its RFC 2231 pieces become one
parameter) and the boundary on each delimiter line. Preamble, parts and epilogue keep every byte.
Nested multiparts and attached messages are handled the same way, each with its own new boundary;
the header block of a part is rewritten only when its own boundary is replaced. The repair is
named ``long-boundary`` (:data:`REPAIR`) in the message's repairs.

A boundary is "too long" when ``--boundary--`` or a `` boundary="..."`` line of its own would not
fit in 998 characters: :data:`MAX_BOUNDARY`. Shorter ones are left alone, however far over 70.
"""

from __future__ import annotations

import hashlib
import re

from forwarder.core.body import BOUNDARY_PARAM as _BOUNDARY_PARAM
from forwarder.core.body import boundary_of, delimiter_starts
from forwarder.core.message import HeaderField, SplitMessage, first_long_line, split_message

#: The name of this repair in a message's repairs (the delivery log and the outcome line list it).
REPAIR = "long-boundary"
LINE_LIMIT = 998
#: The longest boundary whose parameter line `` boundary="..."`` still fits in a line.
MAX_BOUNDARY = LINE_LIMIT - len(' boundary=""')
MAX_DEPTH = 40
_JOIN = b"\n"  # HeaderField lines never hold one, so it can join and split them back


def _content_type(fields: list[HeaderField]) -> tuple[bytes, HeaderField | None]:
    for f in fields:
        if f.key == "content-type":
            return f.value.split(b";", 1)[0].strip().lower(), f
    return b"text/plain", None


def new_boundary(old: bytes, body: bytes, used: set[bytes]) -> bytes:
    """A short boundary derived from ``old``, not in ``used`` and nowhere in ``body``."""
    counter = 0
    while True:
        digest = hashlib.sha256(old + b"\x00" + str(counter).encode()).hexdigest()[:24]
        candidate = b"=_om_" + digest.encode("ascii")
        if candidate not in used and b"--" + candidate not in body:
            used.add(candidate)
            return candidate
        counter += 1


def _with_boundary(field: HeaderField, boundary: bytes) -> HeaderField:
    """``field`` with its boundary parameter(s) replaced by one, on a line of its own."""
    text = _JOIN.join(field.lines)
    done = False

    def swap(match: re.Match[bytes]) -> bytes:
        nonlocal done
        if done:
            return b""
        done = True
        return b";" + _JOIN + b' boundary="' + boundary + b'"'

    text = _BOUNDARY_PARAM.sub(swap, text)
    lines = [line for i, line in enumerate(text.split(_JOIN)) if i == 0 or line.strip()]
    if not done:
        lines[-1] = lines[-1].rstrip() + b";"
        lines.append(b' boundary="' + boundary + b'"')
    return HeaderField(field.name, lines)


class _Seen:
    """The whole message body (no new boundary may occur anywhere in it) and the ones chosen."""

    __slots__ = ("whole", "used")

    def __init__(self, whole: bytes) -> None:
        self.whole = whole
        self.used: set[bytes] = set()


def _entity(fields: list[HeaderField], body: bytes, depth: int, used: _Seen) -> tuple[list[HeaderField], bytes, bool]:
    """The entity's fields and body with every over-long boundary in it replaced; and whether any was."""
    if depth > MAX_DEPTH:
        return fields, body, False
    ctype, field = _content_type(fields)
    if ctype in (b"message/rfc822", b"message/global"):
        inner = split_message(body)
        inner_fields, inner_body, changed = _entity(inner.fields, bytes(inner.body), depth + 1, used)
        if not changed:
            return fields, body, False
        return fields, _join(inner_fields, inner_body, inner.eol), True
    if field is None or not ctype.startswith(b"multipart/"):
        return fields, body, False
    boundary = boundary_of(field.value)
    if boundary is None:
        return fields, body, False
    new = new_boundary(boundary, used.whole, used.used) if len(boundary) > MAX_BOUNDARY else None
    starts = delimiter_starts(body, boundary)
    changed = new is not None
    pieces = [body[: starts[0]] if starts else body]
    for i, start in enumerate(starts):
        after = start + 2 + len(boundary)
        pieces.append(b"--" + (new or boundary))
        line_end = body.find(b"\n", after)
        line_end = len(body) if line_end < 0 else line_end + 1
        pieces.append(body[after:line_end])
        end = starts[i + 1] if i + 1 < len(starts) else len(body)
        chunk = body[line_end:end]
        if body[after : after + 2] != b"--" and first_long_line(chunk) >= 0:
            chunk, part_changed = _part(chunk, depth + 1, used)
            changed = changed or part_changed
        pieces.append(chunk)
    if not changed:
        return fields, body, False
    if new is not None:
        fields = [_with_boundary(f, new) if f is field else f for f in fields]
    return fields, b"".join(pieces), True


def _part(chunk: bytes, depth: int, used: _Seen) -> tuple[bytes, bool]:
    """One body part (the line ending before the next delimiter belongs to the delimiter)."""
    tail = b""
    for ending in (b"\r\n", b"\n"):
        if chunk.endswith(ending):
            chunk, tail = chunk[: -len(ending)], ending
            break
    part = split_message(chunk)
    fields, body, changed = _entity(part.fields, bytes(part.body), depth, used)
    if not changed:
        return chunk + tail, False
    return _join(fields, body, part.eol) + tail, True


def _join(fields: list[HeaderField], body: bytes, eol: bytes) -> bytes:
    return b"".join(line + eol for f in fields for line in f.lines) + eol + body


def replace_long_boundaries(split: SplitMessage) -> SplitMessage:
    """``split`` itself when no boundary in it is too long; else a copy with them replaced.

    Only a multipart message whose own boundary is too long, or whose body has a line over 998
    octets (a nested delimiter may be one), is looked at beyond its Content-Type field.
    """
    value = split.first_value("content-type")  # the first, as _content_type finds it, without every field built
    if value is None:
        return split
    ctype = value.split(b";", 1)[0].strip().lower()
    if not (ctype.startswith(b"multipart/") or ctype.startswith(b"message/")):
        return split
    boundary = boundary_of(value) if ctype.startswith(b"multipart/") else None
    if (boundary is None or len(boundary) <= MAX_BOUNDARY) and split.long_body_line() < 0:
        return split
    whole = bytes(split.body)
    fields, body, changed = _entity(split.fields, whole, 0, _Seen(whole))
    if not changed:
        return split
    return SplitMessage(fields, memoryview(body), split.eol, split.had_separator, [*split.repairs, REPAIR], split.size)
