"""Split raw message bytes into a header block and a body, in one linear pass.

Only the header block is parsed. The body is kept as the exact bytes that followed the blank
line, so a forwarded message carries its body byte for byte (CRLF, LF, 8-bit, NUL and all).

The header scan walks line by line with ``bytes.find`` and never re-scans what it has seen, so
its cost is linear in the size of the header block: a message with 100,000 header lines and no
blank line is split in a fraction of a second. A clean block with one line ending throughout is
read a field at a time instead (``_whole_fields``, split in C at each field start; the same fields,
checked by tests/forwarder/core/test_core_fastpath.py). The body is never scanned here.

Malformed input is split as well as it can be, and each repair is named in ``repairs`` so the
adapters can log it:

- ``mbox-from-line``: a leading ``From `` envelope line (mbox format) is not a header; dropped.
- ``leading-continuation``: indented lines before the first field belong to nothing; dropped.
- ``empty-field-name``: a line such as ``: value`` inside the header block; dropped.
- ``missing-separator``: the header block ended at a line that is not a field, without the
  blank line; the body starts at that line and the writer inserts the blank line.
"""

from __future__ import annotations

import gc
import re

_MBOX_LOOKALIKE = re.compile(rb"From[ \t]*:")  # "From : x" is a header field, not an mbox line
#: A field name is printable US-ASCII without a colon (RFC 5322 section 2.2); white space before
#: the colon is obsolete syntax (RFC 5322 section 4.5) that is accepted and dropped.
_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_BLANK_CONTINUATION = re.compile(rb"\n[ \t]+\r?(?:\n|\Z)")  # also a last line at the very end
#: The longest line SES and RFC 5321 accept, line ending excluded.
MAX_LINE_BYTES = 998
# Complete lines of at most MAX_LINE_BYTES bytes, many per step: the greedy run of any byte jumps
# MAX_LINE_BYTES ahead at once and backs off to the last newline within reach, both in C, so a
# step crosses every short line up to that newline and each byte is looked at about once (the
# regular expression engine does this for ``(?s:.){0,n}`` followed by a literal: no per-byte
# test going forward, a plain byte loop going back).
_SHORT_LINES = re.compile(rb"(?:(?s:.){0,%d}\n)*" % MAX_LINE_BYTES)
# One match call reads at most this much, which bounds the engine's own stack (it keeps a small
# record per step of the repeat) whatever the message size.
_CHUNK = 1 << 20


def first_long_line(data: bytes | memoryview) -> int:
    """Offset of the first line longer than 998 bytes (line ending excluded), or -1.

    A line ends at LF; a CR just before that LF belongs to the line ending, any other CR is part
    of the line (and so is a CR at the very end of the data). The scan does not test every byte
    against a pattern: from a line start it jumps to the last newline within the next 999 bytes
    (every line in between is short) and goes on from there; see ``_SHORT_LINES``. Where that
    stops, the line is exactly at the limit (998 bytes and CRLF, checked here) or too long.
    """
    size = len(data)
    if size <= MAX_LINE_BYTES:
        return -1
    short_lines = _SHORT_LINES.match
    pos = 0
    while True:
        endpos = min(size, pos + _CHUNK)
        pos = short_lines(data, pos, endpos).end()  # type: ignore[union-attr]  # "*" always matches
        if endpos < size and endpos - pos <= MAX_LINE_BYTES + 1:
            continue  # the chunk ended within reach of this line: go on in the next chunk
        rest = size - pos
        if rest <= MAX_LINE_BYTES:
            return -1
        if rest == MAX_LINE_BYTES + 1:  # the last line, no newline: long unless it ends in CR
            return -1 if data[size - 1] == 0x0D else pos
        # No newline within the next 999 bytes: 998 bytes and CRLF is a line at the limit.
        if data[pos + MAX_LINE_BYTES + 1] == 0x0A and data[pos + MAX_LINE_BYTES] == 0x0D:
            pos += MAX_LINE_BYTES + 2
            continue
        return pos


class HeaderField:
    """One header field as it came: its name and its physical lines, without line endings."""

    __slots__ = ("name", "key", "lines", "checked", "_value")

    def __init__(self, name: str, lines: list[bytes], checked: bool = False) -> None:
        self.name = name
        self.key = name.lower()
        self.lines = lines
        #: True when every line is known to be 7-bit, at most 998 bytes, without NUL, bare CR or
        #: white-space-only continuations (checked once for a whole header block by split_message).
        self.checked = checked
        self._value: bytes | None = None  # the unfolded value, once asked for (lines do not change)

    def __repr__(self) -> str:
        return f"HeaderField({self.name!r}, {self.lines!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeaderField) and (self.name, self.lines) == (other.name, other.lines)

    @property
    def value(self) -> bytes:
        """The unfolded value (RFC 5322 unfolding: the line breaks are removed, nothing else)."""
        value = self._value
        if value is None:
            first = self.lines[0]
            head = first[first.index(b":") + 1 :]
            value = self._value = head.strip() if len(self.lines) == 1 else (head + b"".join(self.lines[1:])).strip()
        return value

    def text(self) -> str:
        """The unfolded value as text; bytes that are not UTF-8 are kept as surrogates."""
        return self.value.decode("utf-8", "surrogateescape")


class SplitMessage:
    """The result of :func:`split_message`.

    ``body`` is every byte after the blank line that ended the header block (or after the last
    header line when there was none), as a view into the input: it is never copied. ``eol`` is the
    line ending the header block used, which the writer reuses so that a message keeps one
    convention throughout.

    A clean block (see ``_lazy_pieces``) is kept as one byte string per field (``pieces``, lines
    joined by ``eol``) with its lower-case name (``keys``); :class:`HeaderField` objects are built
    only for the fields asked for (``first``, ``get_all``) or all at once when ``fields`` is read
    (issue 15: building one object per field was most of a 2 KB message's split). Either way a
    field is one object, whichever way it was reached first.
    """

    __slots__ = (
        "body",
        "eol",
        "had_separator",
        "repairs",
        "size",
        "pieces",
        "names",
        "keys",
        "_fields",
        "_built",
        "_index",
        "_positions",
        "_first_at",
        "_long_body_line",
    )

    def __init__(
        self,
        fields: list[HeaderField] | None,
        body: memoryview,
        eol: bytes,
        had_separator: bool,
        repairs: list[str] | None = None,
        size: int = 0,
        *,
        pieces: list[bytes] | None = None,
        names: list[bytes] | None = None,
        keys: list[str] | None = None,
        _index: dict[str, list[HeaderField]] | None = None,
    ) -> None:
        self.body = body
        self.eol = eol
        self.had_separator = had_separator
        self.repairs = [] if repairs is None else repairs
        self.size = size
        #: the lazy form (a clean block): one piece, raw name and key per field; None otherwise
        self.pieces = pieces
        self.names = names
        self.keys = keys
        self._fields = fields
        self._built: dict[int, HeaderField] = {}
        self._index = _index
        self._positions: dict[str, list[int]] | None = None
        self._first_at: dict[str, int] | None = None
        self._long_body_line: int | None = None

    def __repr__(self) -> str:
        return f"SplitMessage(fields={self.fields!r}, eol={self.eol!r}, repairs={self.repairs!r}, size={self.size})"

    def _field_at(self, i: int) -> HeaderField:
        found = self._built.get(i)
        if found is None:
            assert self.pieces is not None and self.names is not None
            found = HeaderField(self.names[i].decode("ascii"), self.pieces[i].split(self.eol), True)
            self._built[i] = found
        return found

    @property
    def fields(self) -> list[HeaderField]:
        if self._fields is None:
            assert self.pieces is not None
            field_at = self._field_at
            with paused_gc():
                self._fields = [field_at(i) for i in range(len(self.pieces))]
        return self._fields

    def long_body_line(self) -> int:
        """:func:`first_long_line` of the body, scanned once per message and then remembered (the
        boundary check of ``prepare`` and the pre-flight validator of every alias both need it)."""
        if self._long_body_line is None:
            self._long_body_line = first_long_line(self.body)
        return self._long_body_line

    def get_all(self, key: str) -> list[HeaderField]:
        if self.keys is not None and self.first(key) is None:
            return []  # absent (the loop guard of most messages): no index built
        index = self._index
        if index is None:
            index = self._index = {}
            if self.keys is None:
                for f in self.fields:
                    index.setdefault(f.key, []).append(f)
        found = index.get(key)
        if found is None and self.keys is not None and key in self.keys:
            positions = self._positions
            if positions is None:
                positions = self._positions = {}
                for i, k in enumerate(self.keys):
                    positions.setdefault(k, []).append(i)
            at = positions.get(key)
            if at is not None:
                field_at = self._field_at
                found = index[key] = [field_at(i) for i in at]
        return found or []

    def _first_positions(self, keys: list[str]) -> dict[str, int]:
        # Each key's first position, built in C (reversed, so the first one is written last):
        # prepare asks for about a dozen keys, most of them absent.
        first_at = self._first_at
        if first_at is None:
            first_at = self._first_at = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))
        return first_at

    def first(self, key: str) -> HeaderField | None:
        keys = self.keys
        if keys is not None:
            at = self._first_positions(keys).get(key)
            if at is None:
                return None
            return self._built.get(at) or self._field_at(at)
        found = self.get_all(key)
        return found[0] if found else None

    def first_value(self, key: str) -> bytes | None:
        """``first(key).value``, or None when there is no such field; in the lazy form read from
        the field's piece without building the field (issue 15: prepare reads about five)."""
        keys = self.keys
        if keys is None:
            found = self.first(key)
            return None if found is None else found.value
        at = self._first_positions(keys).get(key)
        if at is None:
            return None
        assert self.pieces is not None and self.names is not None
        value = self.pieces[at][len(self.names[at]) + 1 :]  # the name is followed by its colon at once
        return value.replace(self.eol, b"").strip()

    def has_any(self, keys: frozenset[str]) -> bool:
        """Whether a field has one of ``keys`` (one set operation in the lazy form)."""
        if self.keys is not None:
            return not keys.isdisjoint(self._first_positions(self.keys))
        return any(self.first(key) is not None for key in keys)


def _blank_line(raw: bytes, pos: int, crlf: bool) -> int:
    """Where the first blank line at or after ``pos`` starts, or -1; found by C-speed search.

    The message's own line ending is searched first; the other one only before that point, so a
    CRLF message is not scanned to its end for a bare-LF blank line it does not have.
    """
    if raw.startswith(b"\n", pos) or raw.startswith(b"\r\n", pos):
        return pos
    mine, other = (b"\n\r\n", b"\n\n") if crlf else (b"\n\n", b"\n\r\n")
    found = raw.find(mine, pos)
    earlier = raw.find(other, pos, len(raw) if found < 0 else found + len(other))
    candidates = [x + 1 for x in (found, earlier) if x >= 0]
    return min(candidates) if candidates else -1


class paused_gc:  # noqa: N801 (used like a function: ``with paused_gc():``)
    """Pause the cyclic garbage collector while building many small acyclic objects.

    A header block of 100,000 fields allocates as many objects, and each allocation batch would
    otherwise start a collection that walks all of them again: about a third of the time here.
    Nothing built meanwhile forms a reference cycle, so pausing frees nothing late. (A class, not
    a ``contextlib`` generator: entering and leaving costs a fraction of a microsecond, which
    matters on a 2 KB message.)
    """

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()


def _fields_line_by_line(
    pos: int,
    block: bytes,
    only_crlf: bool,
    clean: bool,
    fields: list[HeaderField],
    index: dict[str, list[HeaderField]],
    repairs: list[str],
) -> int:
    """Read the block one line at a time into ``fields`` and ``index``; returns where the body
    starts when a line that is not a field ended the block, else -1.

    (Reading every field with one ``findall`` over the block instead was tried for issue 15: on
    the 2 KB message and the corpus it measured no faster, the objects built per field cost the
    same either way, so the simpler loop stays.)"""
    # Split on the block's own line ending in C; only mixed endings need a per-line strip.
    separator = b"\r\n" if only_crlf else b"\n"
    lines = block.split(separator)
    strip_cr = not only_crlf and b"\r" in block
    current: HeaderField | None = None
    field_name = _FIELD_NAME.match
    for number, line in enumerate(lines):
        if strip_cr and line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue  # only the empty piece after the block's last line break
        if line[0] in (0x20, 0x09):
            if current is not None:
                current.lines.append(line)
            elif "leading-continuation" not in repairs:
                repairs.append("leading-continuation")
            continue
        match = field_name(line)
        if match is None:
            if line.startswith(b":"):
                if "empty-field-name" not in repairs:
                    repairs.append("empty-field-name")
                continue
            repairs.append("missing-separator")
            return pos + sum(len(piece) + len(separator) for piece in lines[:number])
        current = HeaderField(match.group(1).decode("ascii"), [line], clean)
        fields.append(current)
        bucket = index.get(current.key)
        if bucket is None:
            index[current.key] = [current]
        else:
            bucket.append(current)
    return -1


# A field starts at every line start that is not white space: splitting a block there (in C) gives
# each field's lines at once.
_FIELD_STARTS = {sep: re.compile(re.escape(sep) + rb"(?![ \t])") for sep in (b"\r\n", b"\n")}


def _whole_fields(
    block: bytes, separator: bytes, fields: list[HeaderField], index: dict[str, list[HeaderField]]
) -> bool:
    """Read a clean block with one line ending throughout a field at a time (issue 15: about half
    the cost of the line loop on a 2 KB message); False, with nothing added, when a piece is not a
    field (a continuation first, an empty name, a line that is no field), which the line loop
    then reads and repairs. The fields are those the line loop gives (test_core_fastpath.py)."""
    if block.endswith(separator):
        block = block[: -len(separator)]
    if not block:
        return True
    field_name = _FIELD_NAME.match
    found: list[HeaderField] = []
    for piece in _FIELD_STARTS[separator].split(block):
        match = field_name(piece)
        if match is None:
            return False
        found.append(HeaderField(match.group(1).decode("ascii"), piece.split(separator), True))
    for f in found:
        bucket = index.get(f.key)
        if bucket is None:
            index[f.key] = [f]
        else:
            bucket.append(f)
    fields.extend(found)
    return True


# A field line whose name is followed by its colon at once (no white space, obsolete syntax that
# the general reader repairs), found from the newline before it: the engine jumps between lines in C.
_NAMED_LINE = re.compile(rb"\n([\x21-\x39\x3b-\x7e]+):")


def _lazy_pieces(block: bytes, separator: bytes) -> tuple[list[bytes], list[bytes]] | None:
    """Each field of a clean block with one line ending throughout as one byte string (its lines
    joined by ``separator``), and its name; None when a piece is not such a field (a continuation
    first, an empty name, white space before the colon, a line that is no field), which the
    readers below then take. Every piece starts at a line start that is not white space, and so
    does every named line: as many named lines as pieces means each piece starts with one."""
    if block.endswith(separator):
        block = block[: -len(separator)]
    if not block:
        return [], []
    pieces = _FIELD_STARTS[separator].split(block)
    names = _NAMED_LINE.findall(b"\n" + block)
    if len(names) != len(pieces):
        return None
    return pieces, names


# A clean field of a block with one line ending throughout, from the newline before it to its own
# line ending: a name and its colon, then 7-bit lines without NUL or CR (nor LF but in the line
# ending), each continuation holding more than white space. Every quantifier is possessive and the
# pattern starts with a literal newline, so a search is linear in the block, whatever it holds.
# The classes are written as the bytes they take, not as the ones they refuse: so the engine tests a
# byte against one bitmap rather than against each excluded byte and range (issue 15: a fifth less).
_TEXT = rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*+"  # not NUL, LF, CR, nor 8-bit
_CONTINUATION = rb"[ \t]++[\x01-\x08\x0b\x0c\x0e-\x1f\x21-\x7f]" + _TEXT  # then not white space either
_CLEAN_FIELD = {
    b"\r\n": re.compile(rb"\n(([\x21-\x39\x3b-\x7e]++):" + _TEXT + rb"(?:\r\n" + _CONTINUATION + rb")*+)\r"),
    b"\n": re.compile(rb"\n(([\x21-\x39\x3b-\x7e]++):" + _TEXT + rb"(?:\n" + _CONTINUATION + rb")*+)(?=\n)"),
}


def _clean_split(raw: bytes) -> SplitMessage | None:
    """The lazy split of the common message, or None for :func:`split_message`'s general reading:
    a header block of clean fields (see ``_CLEAN_FIELD``; no line over 998) with one line ending
    throughout, ended by a blank line. The block is read by one search: its matches, one a field,
    tile the block exactly (their lengths add up to it) or the block is not of that form. A
    blank line earlier than the one found would be a line of the block that no match covers."""
    nl = raw.find(b"\n")
    if nl <= 0 or raw.startswith(b"From "):
        return None
    eol = b"\r\n" if raw[nl - 1] == 0x0D else b"\n"
    end = raw.find(eol + eol)
    if end < 0:
        return None
    block = raw[: end + len(eol)]
    found = _CLEAN_FIELD[eol].findall(b"\n" + block)
    if not found:
        return None
    pieces, names = zip(*found)
    lengths = [*map(len, pieces)]
    if sum(lengths) + len(eol) * len(pieces) != len(block):
        return None
    # A line is part of its piece: when no piece is over the limit, no line is (no scan needed).
    if max(lengths) > MAX_LINE_BYTES and first_long_line(block) >= 0:
        return None
    return SplitMessage(
        None,
        memoryview(raw)[end + 2 * len(eol) :],
        eol,
        True,
        [],
        len(raw),
        pieces=list(pieces),
        names=list(names),
        keys=b"\n".join(names).lower().decode("ascii").split("\n"),
    )


def split_message(raw: bytes) -> SplitMessage:
    """Split ``raw`` into header fields and body bytes. Never raises on malformed input.

    The end of the header block is found first with ``bytes.find``; the lines before it are then
    split in C and read once each, so the cost is linear in the size of the header block.
    """
    clean_split = _clean_split(raw)
    if clean_split is not None:
        return clean_split
    size = len(raw)
    repairs: list[str] = []
    fields: list[HeaderField] = []
    pos = 0
    if raw.startswith(b"From ") and not _MBOX_LOOKALIKE.match(raw):
        nl = raw.find(b"\n")
        pos = size if nl < 0 else nl + 1
        repairs.append("mbox-from-line")

    first_nl = raw.find(b"\n", pos)
    eol = b"\r\n" if first_nl < 0 or raw[first_nl - 1 : first_nl] == b"\r" else b"\n"
    blank = _blank_line(raw, pos, eol == b"\r\n")
    block_end = size if blank < 0 else blank

    block = raw[pos:block_end]
    crlf_count = block.count(b"\r\n")
    bare_cr = block.count(b"\r") - crlf_count
    clean = (
        bare_cr == 0
        and block.isascii()
        and b"\x00" not in block
        and _BLANK_CONTINUATION.search(block) is None
        and first_long_line(block) < 0
    )
    only_crlf = crlf_count > 0 and bare_cr == 0 and crlf_count == block.count(b"\n")
    one_ending = clean and (only_crlf or b"\r" not in block)
    lazy = _lazy_pieces(block, eol) if one_ending else None
    if lazy is not None:
        pieces, names = lazy
        had_separator = blank >= 0
        body_start = (blank + (1 if raw[blank] == 0x0A else 2)) if had_separator else size
        return SplitMessage(
            None,
            memoryview(raw)[body_start:],
            eol,
            had_separator,
            repairs,
            size,
            pieces=pieces,
            names=names,
            keys=b"\n".join(names).lower().decode("ascii").split("\n") if names else [],
        )
    index: dict[str, list[HeaderField]] = {}
    with paused_gc():
        if one_ending and _whole_fields(block, eol, fields, index):
            body_start = -1
        else:
            body_start = _fields_line_by_line(pos, block, only_crlf, clean, fields, index, repairs)

    had_separator = body_start < 0 and blank >= 0
    if had_separator:
        body_start = blank + (1 if raw[blank] == 0x0A else 2)
    elif body_start < 0:
        body_start = size
    return SplitMessage(fields, memoryview(raw)[body_start:], eol, had_separator, repairs, size, _index=index)
