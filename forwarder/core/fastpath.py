"""The one-way rewrite of a clean header block, done in one pass and checked without re-reading it.

This module decides nothing of its own: ``headers`` owns every rule and ``validator`` the SES
pre-flight. For a header block that ``message.split_message`` found clean (7-bit, no NUL or bare
CR, no line over 998, no white-space-only continuation) and that needs none of rule 10's repairs,
it produces exactly the bytes :func:`forward.assemble` would, faster:

- one walk over the fields applies rules 4 to 7 by dict and set look-ups; fields copied as they
  came are never wrapped in new objects nor checked again;
- only what is built (rule 1's From and ``X-Othermail-Original-From``, rule 3's Reply-To, rule 5's
  renamed field, rule 7's References, rule 9's loop guard, rule 11's Date) is checked, with the
  same test ``headers`` applies (``_is_clean``) plus the validator's rules that test alone does not
  imply (a field line starts every field, continuations start with white space, From holds one
  address);
- a copied field was clean in the input, so it passes every rule of ``validator`` that looks at
  one line or one field; the rules across fields (duplicates, the recipient count, From present)
  are checked here on the field names and the address counts the walk already has.

Whenever anything would need a repair (a duplicated once-only field, a broken address, a Date no
reader can parse, a renamed Reply-To, a missing From, too many recipients, a long body line, a
two-way forward) :func:`fast_assemble` returns None and the caller takes the general path, which
is unchanged. tests/forwarder/core/test_core_fastpath.py checks, over the fuzz strategies and the
corpus, that whenever this path answers its bytes and repairs are those of the general path.
"""

from __future__ import annotations

from datetime import datetime

from forwarder.core.addresses import parse_address_list, strict_address_list
from forwarder.core.headers import (
    ADDRESS_FIELDS,
    LOOP,
    MAX_HEADER_RECIPIENTS,
    ONCE_ONLY,
    REMOVED,
    REMOVED_PREFIXES,
    RENAMED,
    Origin,
    _from_fields,
    _is_clean,
    _readable_date,
    _reply_to,
    loop_token,
    rfc5322_date,
)
from forwarder.core.message import HeaderField, SplitMessage
from forwarder.core.text import MAX_LINE

_REMOVED_PREFIXES = tuple(prefix for prefix, _ in REMOVED_PREFIXES)
_LOOP_KEY = LOOP.lower()
_RECIPIENT_KEYS = frozenset({"to", "cc"})  # bcc is removed by rule 4


def _built_lines(f: HeaderField) -> list[bytes] | None:
    """A built field's lines when ``headers._valid_lines`` keeps them as they are and the validator
    accepts them; None otherwise (the general path then decides)."""
    lines = f.lines
    first = lines[0]
    if first[len(f.name) : len(f.name) + 1] != b":" or not _is_clean(f):
        return None
    for line in lines[1:]:
        if line[:1] not in (b" ", b"\t"):
            return None
    return lines


def fast_assemble(
    split: SplitMessage, origin: Origin, alias_address: str, now: datetime | None
) -> tuple[bytes, list[str]] | None:
    """The header block (ending in its blank line) and the repairs ``forward.assemble`` would give
    for a one-way forward, known to pass ``validator.validate``; None when the general path must
    decide. The body must have no line over 998 (the caller checks that)."""
    out: list[bytes] = []
    seen: set[str] = set()
    references_at = -1
    references_value = b""
    has_date = False
    strict_count = 0
    lenient_count = 0
    from_at = -1
    for f in split.fields:
        if not f.checked:
            return None
        key = f.key
        if key in REMOVED or (key.startswith(_REMOVED_PREFIXES) and key != _LOOP_KEY):
            continue
        lines = f.lines
        name = f.name
        if lines[0][len(name) : len(name) + 1] != b":":
            return None  # space before the colon: a repair
        if key == "reply-to" and not origin.reply_to_valid:
            if f.value.strip():
                return None  # renamed X-Original-Reply-To: a repair
            continue
        if key in RENAMED:
            new_name = RENAMED[key]
            renamed = _built_lines(HeaderField(new_name, [new_name.encode() + lines[0][len(name) :], *lines[1:]]))
            if renamed is None:
                return None
            out.extend(renamed)
            continue
        if key in ONCE_ONLY:
            if key in seen:
                return None  # duplicated or merged: a repair
            seen.add(key)
            if key == "from":
                from_at = len(out)
                continue
            if key == "references":
                references_at = len(out) + len(lines)
                references_value = f.value
            elif key == "date":
                if not _readable_date(lines):
                    return None
                has_date = True
        if key in ADDRESS_FIELDS:
            text = f.value.decode("ascii")
            boxes = strict_address_list(text)
            if boxes is None:
                return None  # rewritten address by address: a repair
            if key in _RECIPIENT_KEYS:
                strict_count += len(boxes)
                lenient_count += len(parse_address_list(text))
        out.extend(lines)
    if from_at < 0 or strict_count > MAX_HEADER_RECIPIENTS or lenient_count > MAX_HEADER_RECIPIENTS:
        return None

    built_from: list[bytes] = []
    for built in _from_fields(origin, alias_address):
        checked = _built_lines(built)
        if checked is None:
            return None
        if built.key == "from" and len(strict_address_list(built.value.decode("ascii")) or ()) != 1:
            return None
        built_from.extend(checked)
    tail: list[bytes] = []
    if not origin.reply_to_valid:
        reply_to = _reply_to(origin)
        if reply_to is not None:
            checked = _built_lines(reply_to)
            if checked is None or "reply-to" in seen:
                return None
            tail.extend(checked)
    mid = origin.message_id
    if mid is not None:
        if references_at < 0:
            line = b"References: " + mid
            if len(line) > MAX_LINE:
                return None
            tail.append(line)
        elif mid not in references_value:
            if len(mid) + 1 > MAX_LINE:
                return None
            out.insert(references_at, b" " + mid)
            if references_at <= from_at:
                from_at += 1
    tail.append(f"{LOOP}: {loop_token(alias_address)}".encode())
    repairs: list[str] = []
    if not has_date and now is not None:
        tail.append(b"Date: " + rfc5322_date(now).encode("ascii"))
        repairs.append("missing-date")
    out[from_at:from_at] = built_from
    out.extend(tail)
    eol = split.eol
    return eol.join(out) + eol + eol, repairs
