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

from dataclasses import dataclass

from forwarder.core.addresses import parse_address_list, strict_address_list
from forwarder.core.body import first_long_line
from forwarder.core.headers import ADDRESS_FIELDS, MAX_HEADER_RECIPIENTS, ONCE_ONLY
from forwarder.core.message import split_message
from forwarder.core.text import MAX_LINE

SESV1_MAX_BYTES = 10 * 1024 * 1024
SESV2_MAX_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def validate(head: bytes, body: bytes | memoryview, max_bytes: int = SESV2_MAX_BYTES) -> list[Violation]:
    """Every rule the message ``head + body`` breaks; an empty list means SES will accept it.

    ``head`` is the header block including the blank line that ends it.
    """
    problems: list[Violation] = []
    size = len(head) + len(body)
    if size > max_bytes:
        problems.append(Violation("too-large", f"{size} bytes, the limit is {max_bytes}"))

    parsed = split_message(head)
    if not parsed.had_separator or len(parsed.body) or parsed.repairs:
        problems.append(Violation("no-separator", "the header block does not end in one blank line"))
    lines = head.split(b"\n")
    for line in lines:
        content = line[:-1] if line.endswith(b"\r") else line
        if len(content) > MAX_LINE:
            problems.append(Violation("header-line-too-long", f"{len(content)} characters"))
            break
    if any(not line.strip() for line in lines[:-2]):
        problems.append(Violation("no-separator", "a blank or white-space-only line inside the header block"))
    if not head.isascii():
        problems.append(Violation("non-ascii-header", "header content must be 7-bit"))
    for line in head.split(b"\n"):
        if b"\x00" in line or b"\r" in line[:-1]:
            problems.append(Violation("control-character", "NUL or bare CR in a header"))
            break

    counts: dict[str, int] = {}
    recipients = 0
    for f in parsed.fields:
        key = f.key
        counts[key] = counts.get(key, 0) + 1
        if key in ADDRESS_FIELDS:
            text = f.value.decode("ascii", "replace")
            boxes = parse_address_list(text)
            strict = strict_address_list(text)
            if strict is None or any(not b.address.isascii() for b in strict):
                problems.append(Violation("bad-address", f"{f.name} holds an address SES cannot parse"))
            if key in ("to", "cc", "bcc"):
                recipients += len(boxes)
            if key == "from" and len(boxes) != 1:
                problems.append(Violation("bad-from", f"From has {len(boxes)} addresses"))
    for key, count in counts.items():
        if count > 1 and key in ONCE_ONLY:
            problems.append(Violation(f"duplicate-{key}", f"{count} times"))
    if counts.get("from", 0) == 0:
        problems.append(Violation("no-from", "no From field"))
    if recipients > MAX_HEADER_RECIPIENTS:
        problems.append(Violation("too-many-recipients", f"{recipients} header recipients"))

    offset = first_long_line(body)
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
