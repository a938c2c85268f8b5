"""Split raw message bytes into a header block and a body, in one linear pass.

Only the header block is parsed. The body is kept as the exact bytes that followed the blank
line, so a forwarded message carries its body byte for byte (CRLF, LF, 8-bit, NUL and all).

The header scan walks line by line with ``bytes.find`` and never re-scans what it has seen, so
its cost is linear in the size of the header block: a message with 100,000 header lines and no
blank line is split in a fraction of a second. The body is never scanned here.

Malformed input is split as well as it can be, and each repair is named in ``repairs`` so the
adapters can log it:

- ``mbox-from-line``: a leading ``From `` envelope line (mbox format) is not a header; dropped.
- ``leading-continuation``: indented lines before the first field belong to nothing; dropped.
- ``empty-field-name``: a line such as ``: value`` inside the header block; dropped.
- ``missing-separator``: the header block ended at a line that is not a field, without the
  blank line; the body starts at that line and the writer inserts the blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WSP = (0x20, 0x09)
_MBOX_LOOKALIKE = re.compile(rb"From[ \t]*:")  # "From : x" is a header field, not an mbox line


@dataclass(slots=True)
class HeaderField:
    """One header field as it came: its name and its physical lines, without line endings."""

    name: str
    lines: list[bytes]

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def value(self) -> bytes:
        """The unfolded value (RFC 5322 unfolding: the line breaks are removed, nothing else)."""
        first = self.lines[0]
        head = first[first.index(b":") + 1 :]
        if len(self.lines) == 1:
            return head.strip()
        return (head + b"".join(self.lines[1:])).strip()

    def text(self) -> str:
        """The unfolded value as text; bytes that are not UTF-8 are kept as surrogates."""
        return self.value.decode("utf-8", "surrogateescape")


@dataclass(slots=True)
class SplitMessage:
    """The result of :func:`split_message`.

    ``body`` is every byte after the blank line that ended the header block (or after the last
    header line when there was none), as a view into the input: it is never copied. ``eol`` is the line ending the header block used, which the
    writer reuses so that a message keeps one convention throughout.
    """

    fields: list[HeaderField]
    body: memoryview
    eol: bytes
    had_separator: bool
    repairs: list[str] = field(default_factory=list)
    size: int = 0

    def get_all(self, key: str) -> list[HeaderField]:
        return [f for f in self.fields if f.key == key]

    def first(self, key: str) -> HeaderField | None:
        for f in self.fields:
            if f.key == key:
                return f
        return None


def _field_name(line: bytes) -> str | None:
    """The field name of a header line, or None when the line is not a header field.

    A name is printable US-ASCII without a colon (RFC 5322 section 2.2); white space between the
    name and the colon is obsolete syntax (RFC 5322 section 4.5) that we accept and drop.
    """
    colon = line.find(b":")
    if colon <= 0:
        return None
    name = line[:colon].rstrip(b" \t")
    if not name:
        return None
    for byte in name:
        if byte < 33 or byte > 126:
            return None
    return name.decode("ascii")


def split_message(raw: bytes) -> SplitMessage:
    """Split ``raw`` into header fields and body bytes. Never raises on malformed input."""
    size = len(raw)
    repairs: list[str] = []
    fields: list[HeaderField] = []
    pos = 0
    eol: bytes | None = None

    if raw.startswith(b"From ") and not _MBOX_LOOKALIKE.match(raw):
        nl = raw.find(b"\n")
        pos = size if nl < 0 else nl + 1
        repairs.append("mbox-from-line")

    current: HeaderField | None = None
    body_start = size
    had_separator = False
    while pos < size:
        nl = raw.find(b"\n", pos)
        end = size if nl < 0 else nl
        next_pos = size if nl < 0 else nl + 1
        line = raw[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
            if eol is None:
                eol = b"\r\n"
        elif eol is None and nl >= 0:
            eol = b"\n"

        if not line:
            body_start = next_pos
            had_separator = True
            break
        if line[0] in _WSP:
            if current is None:
                if "leading-continuation" not in repairs:
                    repairs.append("leading-continuation")
            else:
                current.lines.append(line)
            pos = next_pos
            continue
        name = _field_name(line)
        if name is None:
            if line.startswith(b":"):
                if "empty-field-name" not in repairs:
                    repairs.append("empty-field-name")
                pos = next_pos
                continue
            body_start = pos
            repairs.append("missing-separator")
            break
        current = HeaderField(name, [line])
        fields.append(current)
        pos = next_pos

    body = memoryview(raw)[body_start:]
    return SplitMessage(
        fields=fields,
        body=body,
        eol=eol or b"\r\n",
        had_separator=had_separator,
        repairs=repairs,
        size=size,
    )
