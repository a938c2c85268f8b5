"""Body lines: find the first line SES would refuse, and repair it in the smallest way.

SES (and RFC 5321) refuse a message with a line longer than 998 characters plus CRLF. The body is
otherwise never touched, so a repair changes only the MIME entities that hold such a line:

- a base64 entity is re-wrapped at 76 characters (its decoded content is identical);
- a quoted-printable entity gets soft line breaks (its decoded content is identical);
- a 7bit, 8bit or binary entity is re-encoded, as quoted-printable for text whose line endings
  survive it and base64 for the rest, and its Content-Transfer-Encoding says so (its decoded
  content is identical);
- a multipart entity is split at its boundaries and only the offending parts are repaired; long
  lines in its preamble or epilogue, which no client shows, are removed;
- an attached message (message/rfc822) is repaired inside, entity by entity.

Everything else keeps its bytes. When a message cannot be repaired this way (a multipart entity
without a boundary, say) :class:`Unrepairable` says why and the message is dropped with that reason.
"""

from __future__ import annotations

import binascii
import re
from itertools import compress

from forwarder.core.message import HeaderField, first_long_line, split_message

LINE_LIMIT = 998
MAX_DEPTH = 40
#: A boundary parameter, plain (``boundary="x"``) or an RFC 2231 piece (``boundary*0="x"``).
BOUNDARY_PARAM = re.compile(rb'(?i);[ \t\r\n]*boundary(?:\*([0-9]+))?(\*)?[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _unquote(raw: bytes) -> bytes:
    if len(raw) >= 2 and raw.startswith(b'"') and raw.endswith(b'"'):
        return _QUOTED_PAIR.sub(rb"\1", raw[1:-1])
    return raw


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary of a Content-Type value: its ``boundary`` parameter, or its RFC 2231 pieces
    (``boundary*0=...; boundary*1=...``) joined."""
    plain = None
    pieces: dict[int, bytes] = {}
    for match in BOUNDARY_PARAM.finditer(content_type):
        index, extended, value = match.group(1), match.group(2), _unquote(match.group(3))
        if extended:  # charset'language'percent-encoded: the first piece carries the prefix
            if index in (None, b"0"):
                value = value.split(b"'", 2)[-1]
            value = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), value)
        if index is None:
            if plain is None:
                plain = value
        elif len(index) < 6:
            pieces.setdefault(int(index), value)
    if plain is not None:
        return plain or None
    joined = []
    for i in range(len(pieces)):
        if i not in pieces:
            break
        joined.append(pieces[i])
    return b"".join(joined) or None


class Unrepairable(Exception):
    """A line over the limit that no MIME-preserving repair can shorten."""


def _content_type(fields: list[HeaderField]) -> tuple[bytes, bytes | None, bytes]:
    """The entity's media type, its boundary, and its Content-Transfer-Encoding."""
    ctype = b"text/plain"
    boundary = None
    cte = b"7bit"
    for f in fields:
        if f.key == "content-type":
            value = f.value
            ctype = value.split(b";", 1)[0].strip().lower() or ctype
            boundary = boundary_of(value)
            break
    for f in fields:
        if f.key == "content-transfer-encoding":
            cte = f.value.strip().lower()
            break
    return ctype, boundary, cte


def repair(
    fields: list[HeaderField], body: bytes, eol: bytes, depth: int = 0, ends_at_delimiter: bool = False
) -> tuple[list[HeaderField], bytes]:
    """Return the entity's fields and body with every line at most 998 bytes long.

    ``ends_at_delimiter``: the entity is a body part that an enclosing delimiter line follows (that
    delimiter took the line ending before it); otherwise it runs to the end of the message.
    """
    if depth > MAX_DEPTH:
        raise Unrepairable("MIME nesting too deep to repair a long line")
    if first_long_line(body) < 0:
        return fields, body
    ctype, boundary, cte = _content_type(fields)
    if ctype.startswith(b"multipart/"):
        if not boundary:
            raise Unrepairable("a multipart entity without a boundary has a line over 998 bytes")
        return fields, _repair_multipart(body, boundary, eol, depth, ends_at_delimiter)
    if ctype in (b"message/rfc822", b"message/global"):
        inner = split_message(body)
        inner_fields, inner_body = repair(inner.fields, bytes(inner.body), inner.eol, depth + 1, ends_at_delimiter)
        return fields, _entity(inner_fields, inner_body, inner.eol)
    if cte == b"base64":
        return fields, _rewrap_base64(body, eol)
    if cte == b"quoted-printable":
        return fields, _soft_wrap(body, eol)
    if ctype.startswith(b"text/") and not _qp_changes_line_endings(body):
        encoded = binascii.b2a_qp(body, quotetabs=False, istext=True, header=False)
        # Soft line breaks decode to nothing, so when binascii's own output does not give the body
        # back (mixed or bare line endings do not survive QP), no wrapping of it will: base64 at
        # once (issue 15: the wrapping, then thrown away, was most of a corpus message's repair).
        if binascii.a2b_qp(encoded) != body:
            return _set_cte(fields, b"base64"), _base64_lines(body, eol)
        if _BREAK_BEFORE_DASH.search(encoded):  # binascii's own wrap made a line start with "-"
            encoded = _soft_wrap(_SOFT_BREAK.sub(b"", encoded), eol)
        if _has_long_qp_line(encoded):
            encoded = _soft_wrap(encoded, eol)  # binascii can leave a 77-character "=20" line
        if binascii.a2b_qp(encoded) == body:  # mixed or bare line endings do not survive QP
            return _set_cte(fields, b"quoted-printable"), encoded
    return _set_cte(fields, b"base64"), _base64_lines(body, eol)


def _entity(fields: list[HeaderField], body: bytes, eol: bytes) -> bytes:
    head = b"".join(line + eol for f in fields for line in f.lines)
    return head + eol + body


def _set_cte(fields: list[HeaderField], cte: bytes) -> list[HeaderField]:
    out = [f for f in fields if f.key != "content-transfer-encoding"]
    out.append(HeaderField("Content-Transfer-Encoding", [b"Content-Transfer-Encoding: " + cte]))
    return out


def _qp_changes_line_endings(body: bytes) -> bool:
    """Whether ``binascii.b2a_qp(body, istext=True)`` surely does not give ``body`` back, known
    without encoding it (issue 15: the encoding and its check, then thrown away, cost 3 ms on a
    165 KB binary part). In text mode it writes every line ending as the one the body's first LF
    has (CRLF when a CR precedes it, else LF) and every other byte so that it decodes as it was,
    so a body with both a bare LF and a CRLF, or CRLFs after an LF-only first line, changes."""
    first = body.find(b"\n")
    if first < 0:
        return False
    if first > 0 and body[first - 1] == 0x0D:
        return body.count(b"\n") != body.count(b"\r\n")
    return b"\r\n" in body


#: Up to 76 characters of base64 (the engine finds each line in C; none is shorter but the last).
_BASE64_LINE = re.compile(rb".{1,76}", re.S)


def _base64_lines(data: bytes, eol: bytes) -> bytes:
    """``data`` in base64, 76 characters a line, each line ended by ``eol``: what
    ``_rewrap_base64(base64.b64encode(data), eol)`` gives. Encoded in one call and cut in C
    (issue 15: ``base64.encodebytes`` encodes 57 bytes at a time in a Python loop, which was most
    of a 165 KB binary part's repair; this takes about two thirds of its time)."""
    encoded = binascii.b2a_base64(data, newline=False)
    return eol.join(_BASE64_LINE.findall(encoded)) + eol


def _rewrap_base64(data: bytes, eol: bytes) -> bytes:
    compact = b"".join(data.split())  # bytes.split() cuts at the ASCII white space rb"\s" matches
    return eol.join(_BASE64_LINE.findall(compact)) + eol  # 76 characters a line, cut in C


def _has_long_qp_line(data: bytes) -> bool:
    """Whether a line of ``data`` is over 76 characters, CRs before its end not counted; the
    lengths are compared in C first (issue 15: a re-encoded part has tens of thousands of lines)."""
    lines = data.split(b"\n")
    if max(map(len, lines)) <= 76:
        return False
    return any(len(line.rstrip(b"\r")) > 76 for line in lines)


def _soft_wrap(data: bytes, eol: bytes) -> bytes:
    """``data`` with soft line breaks cutting every line over 76 characters (CRs before its end
    not counted); every other byte is kept. The long lines are picked out by C iterators, so only
    they are walked here (issue 15: a walk over every line was most of a re-encoded part's repair)."""
    lines = data.split(b"\n")
    long_at = list(compress(range(len(lines)), map((76).__lt__, map(len, lines))))
    if not long_at:
        return data
    for index in long_at:
        lines[index] = _wrap_line(lines[index], eol)
    return b"\n".join(lines)


def _wrap_line(line: bytes, eol: bytes) -> bytes:
    """``line`` (no LF; a CR at its end is kept there) cut by soft line breaks."""
    cr = line.endswith(b"\r")
    content = line[:-1] if cr else line
    size = len(content)
    if size <= 76:
        return line
    segments: list[bytes] = []  # joined by the soft line breaks
    rfind = content.rfind
    start = 0  # an offset, not a shrinking copy: a line of n bytes costs O(n), not O(n^2)
    while size - start > 76:
        cut = start + 75
        escape = rfind(b"=", cut - 2, cut)
        if escape >= 0:
            cut = escape
        # never leave a segment ending in "=" (a run of bare "=", invalid but seen): before
        # the soft break it would read as an escape of the next "=", and decode differently
        back = cut
        while back > start and content[back - 1] == 0x3D:
            back -= 1
        if back > start:
            cut = back
        if content[cut] == 0x2D:  # "-"
            cut = _not_before_a_dash(content, start, cut)
        segments.append(content[start:cut])
        start = cut
    segments.append(line[start:])
    return (b"=" + eol).join(segments)


#: A soft line break of quoted-printable (an "=" is otherwise always the start of an "=XX" escape).
_SOFT_BREAK = re.compile(rb"=\r?\n")
_BREAK_BEFORE_DASH = re.compile(rb"=\r?\n-")


def _not_before_a_dash(content: bytes, start: int, cut: int) -> int:
    """Move a soft break back so that the next line does not start with "-": in a body part, a
    line "--<boundary>" made by the wrap would read as a delimiter and end the part early (found by
    test_fuzz: a too-long junk line "--b...b----b...b--" wrapped into a closing delimiter)."""
    moved = cut
    while moved - 1 > start and content[moved : moved + 1] == b"-":
        moved -= 1
    if moved == cut:
        return cut
    escape = content.rfind(b"=", moved - 2, moved)  # never inside an "=XX" escape
    if escape > start:
        moved = escape
    while moved - 1 > start and content[moved - 1 : moved] == b"=":  # nor after a bare "="
        moved -= 1
    return moved if content[moved : moved + 1] != b"-" else cut


def delimiter_starts(body: bytes, boundary: bytes) -> list[int]:
    """Where the delimiter lines of ``boundary`` start in a multipart body.

    A delimiter line is ``--boundary``, then ``--`` for the last one, then only white space
    (RFC 2046 section 5.1.1): ``--b--epilogue`` or ``--bx`` is text of a part, as the standard
    library's parser and most readers take it.
    """
    delimiter = re.escape(b"--" + boundary) + rb"(?=(?:--)?[ \t]*(?:\r?\n|\Z))"
    if b"\n" in boundary:
        return [m.start() for m in re.finditer(rb"(?:^|(?<=\n))" + delimiter, body)]
    # The pattern starts with the literal, so the engine finds candidates at C speed (a leading
    # "start of line" assertion would make it try every position); line starts are checked here.
    # A candidate that is not at a line start holds no newline, so it hides no delimiter.
    return [s for s in (m.start() for m in re.finditer(delimiter, body)) if s == 0 or body[s - 1] == 0x0A]


def _repair_multipart(body: bytes, boundary: bytes, eol: bytes, depth: int, ends_at_delimiter: bool) -> bytes:
    delimiter = b"--" + boundary
    starts = delimiter_starts(body, boundary)
    if not starts:
        raise Unrepairable("a multipart entity has a line over 998 bytes and none of its boundaries")
    pieces: list[bytes] = [_drop_long_lines(body[: starts[0]])]
    for i, start in enumerate(starts):
        line_end = body.find(b"\n", start)
        line_end = len(body) if line_end < 0 else line_end + 1
        pieces.append(body[start:line_end])
        closing = body[start + len(delimiter) : start + len(delimiter) + 2] == b"--"
        end = starts[i + 1] if i + 1 < len(starts) else len(body)
        chunk = body[line_end:end]
        if closing:
            pieces.append(_drop_long_lines(chunk))
            continue
        # The line ending before a delimiter belongs to it. A last part never closed keeps its own
        # when an enclosing part's delimiter follows (that took the one before it); at the end of
        # the message readers drop it as if a delimiter followed (the standard library does).
        last = i + 1 == len(starts)
        pieces.append(
            _repair_part(
                chunk,
                eol,
                depth,
                strip=not (last and ends_at_delimiter),
                ends_at_delimiter=ends_at_delimiter or not last,
            )
        )
    return b"".join(pieces)


def _repair_part(chunk: bytes, eol: bytes, depth: int, strip: bool, ends_at_delimiter: bool) -> bytes:
    if first_long_line(chunk) < 0:
        return chunk
    tail = b""
    for ending in (b"\r\n", b"\n") if strip else ():
        if chunk.endswith(ending):
            chunk, tail = chunk[: -len(ending)], ending
            break
    part = split_message(chunk)
    # a line ending taken here, at the end of the message, is the one readers drop: a multipart
    # nested in this part must not drop another (as if a delimiter followed it too)
    fields, body = repair(part.fields, bytes(part.body), part.eol, depth + 1, ends_at_delimiter or bool(tail))
    return _entity(fields, body, part.eol) + tail


def _drop_long_lines(chunk: bytes) -> bytes:
    if first_long_line(chunk) < 0:
        return chunk
    return b"\n".join(line for line in chunk.split(b"\n") if len(line.rstrip(b"\r")) <= LINE_LIMIT)
