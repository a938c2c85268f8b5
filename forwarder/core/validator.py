"""SES pre-flight: does an outgoing message satisfy every rule SES enforces on a raw send?

moto enforces none of these (duplicates, sizes, line lengths), and real SES rejects the whole send
for any one of them, so every message is checked here before it is handed to a sender. The rules
(see ``../shared/docs/SES_FACTS.md`` and the SES API reference for RawMessage):

- ``too-large``: the raw message is over the limit of the configured API (SESv1 ``SendRawEmail``
  10 MB, SESv2 ``SendEmail`` and SMTP 40 MB, counted on the MIME bytes as sent);
- ``no-separator``: header and body must be separated by exactly one blank line, and no header line
  may be blank or white space only before it;
- ``header-line-too-long`` / ``body-line-too-long``: no line over 998 characters plus CRLF;
- ``non-ascii-header`` / ``control-character``: header content must be 7-bit, without NUL or bare CR;
- ``duplicate-<field>``: a field SES accepts once appears more than once;
- ``no-from`` / ``bad-from``: exactly one From with exactly one 7-bit address;
- ``bad-address``: every address in an address field must be a valid 7-bit address;
- ``too-many-recipients``: at most 50 addresses in To, Cc and Bcc together.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from forwarder.core.addresses import parse_address_list, strict_address_list
from forwarder.core.headers import ADDRESS_FIELDS, MAX_HEADER_RECIPIENTS, ONCE_ONLY
from forwarder.core.message import first_long_line

SESV1_MAX_BYTES = 10 * 1024 * 1024
SESV2_MAX_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


_NAME = rb"[\x21-\x39\x3b-\x7e]+"
# Patterns that look at fields run over b"\n" + the header block and start with that literal
# newline, so the engine jumps from line to line in C even in a block of 100,000 fields.
_ONCE_FIELDS = re.compile(
    rb"(?i)\n(" + b"|".join(re.escape(k.encode()) for k in sorted(ONCE_ONLY, key=len, reverse=True)) + rb")[ \t]*:"
)
# Patterns start with a literal newline so the engine jumps between lines in C; the first line is
# checked on its own.
_STRAY_LINE = re.compile(rb"\n(?![ \t]|" + _NAME + rb"[ \t]*:|$)")
_FIRST_LINE = re.compile(_NAME + rb"[ \t]*:")
_BLANK_LINE = re.compile(rb"\n[ \t]*\r?\n")
_ADDRESS_FIELD = re.compile(
    rb"(?i)\n(" + b"|".join(re.escape(k.encode()) for k in sorted(ADDRESS_FIELDS, key=len, reverse=True)) + rb")[ \t]*:"
    rb"([^\n]*(?:\n[ \t][^\n]*)*)"
)


def _block(head: bytes) -> bytes | None:
    """The header lines without the blank line that ends them; None when there is no such line."""
    if head.endswith(b"\r\n\r\n"):
        return head[:-2]
    if head.endswith(b"\n\n"):
        return head[:-1]
    return None


def validate(
    head: bytes,
    body: bytes | memoryview,
    max_bytes: int = SESV2_MAX_BYTES,
    *,
    long_body_line: int | None = None,
) -> list[Violation]:
    """Every rule the message ``head + body`` breaks; an empty list means SES will accept it.

    ``head`` is the header block including the blank line that ends it. The checks are scans of
    the bytes (most of them in C), independent of how the header block was built.
    ``long_body_line`` is ``first_long_line(body)`` when the caller already has it (the body of
    a forwarded message is the input's, scanned once per message): the body is then not read.
    """
    problems: list[Violation] = []
    size = len(head) + len(body)
    if size > max_bytes:
        problems.append(Violation("too-large", f"{size} bytes, the limit is {max_bytes}"))

    block = _block(head)
    if block is None:
        problems.append(Violation("no-separator", "the header block does not end in one blank line"))
        block = head
    elif _BLANK_LINE.search(block) or not _FIRST_LINE.match(block):
        problems.append(Violation("no-separator", "a blank, white-space-only or stray first line"))
    stray = _STRAY_LINE.search(block)
    if stray is not None:
        problems.append(Violation("no-separator", f"a line that is not a header field at offset {stray.end()}"))
    if first_long_line(block) >= 0:
        problems.append(Violation("header-line-too-long", "a header line over 998 characters"))
    if not block.isascii():
        problems.append(Violation("non-ascii-header", "header content must be 7-bit"))
    if b"\x00" in block or block.count(b"\r") != block.count(b"\r\n"):
        problems.append(Violation("control-character", "NUL or bare CR in a header"))

    lined = b"\n" + block
    once = _ONCE_FIELDS.findall(lined)
    once_keys = b"\n".join(once).lower().split(b"\n") if once else []
    if len(set(once_keys)) != len(once_keys):
        counts = Counter(name.decode("ascii") for name in once_keys)
        for name, count in counts.items():
            if count > 1:
                problems.append(Violation(f"duplicate-{name}", f"{count} times"))
    if b"from" not in once_keys:
        problems.append(Violation("no-from", "no From field"))

    recipients = 0
    for match in _ADDRESS_FIELD.finditer(lined):
        key = match.group(1).lower()
        text = match.group(2).replace(b"\r\n", b"").replace(b"\n", b"").decode("ascii", "replace").strip()
        strict = strict_address_list(text)
        if strict is None or any(not b.address.isascii() for b in strict):
            problems.append(Violation("bad-address", f"{match.group(1).decode()} holds an address SES cannot parse"))
        boxes = parse_address_list(text) if strict is None else strict
        if key in (b"to", b"cc", b"bcc"):
            recipients += len(boxes)
        if key == b"from" and len(boxes) != 1:
            problems.append(Violation("bad-from", f"From has {len(boxes)} addresses"))
    if recipients > MAX_HEADER_RECIPIENTS:
        problems.append(Violation("too-many-recipients", f"{recipients} header recipients"))

    offset = first_long_line(body) if long_body_line is None else long_body_line
    if offset >= 0:
        problems.append(Violation("body-line-too-long", f"a line at body offset {offset}"))
    return problems


def validate_bytes(data: bytes, max_bytes: int = SESV2_MAX_BYTES) -> list[Violation]:
    """:func:`validate` for a whole message in one buffer, split at its first blank line."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    candidates = [(crlf, 4), (lf, 2)]
    found = [(pos, width) for pos, width in candidates if pos >= 0]
    if not found:
        return validate(data, b"", max_bytes) or [Violation("no-separator", "no blank line")]
    pos, width = min(found)
    return validate(data[: pos + width], memoryview(data)[pos + width :], max_bytes)
