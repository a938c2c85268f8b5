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

import functools
from datetime import datetime

from forwarder.core.addresses import Mailbox, parse_address_list, strict_address_list
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


def _removed(key: str) -> bool:
    return key in REMOVED or (key.startswith(_REMOVED_PREFIXES) and key != _LOOP_KEY)


# Every key some rule names, and whether rule 4 removes it; a key not here is copied as it came
# unless a removed prefix starts it (one look-up a field instead of one a rule: issue 15).
_NAMED_KEYS: dict[str, bool] = {
    key: _removed(key) for key in (*REMOVED, *RENAMED, *ONCE_ONLY, *ADDRESS_FIELDS, "reply-to", _LOOP_KEY)
}


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


@functools.lru_cache(maxsize=1024)
def _built_fields(
    sender: Mailbox | None, from_text: str, alias_address: str, reply_to: bool
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
    """Rule 1 and 2's From and ``X-Othermail-Original-From`` lines, and rule 3's Reply-To lines
    (when ``reply_to``; empty when there is none to add), each known to pass the checks below;
    None when one does not (the general path decides). A pure function of the sender and the
    alias, so remembered: a sender writes to the same alias again (issue 15: building and checking
    them was about a third of the one-way rewrite of a 2 KB message)."""
    origin = Origin(sender=sender, reply_to_valid=not reply_to, charset=None, message_id=None, from_text=from_text)
    built_from: list[bytes] = []
    for built in _from_fields(origin, alias_address):
        checked = _built_lines(built)
        if checked is None:
            return None
        if built.key == "from" and len(strict_address_list(built.value.decode("ascii")) or ()) != 1:
            return None
        built_from.extend(checked)
    reply_lines: list[bytes] = []
    if reply_to:
        built_reply = _reply_to(origin)
        if built_reply is not None:
            checked = _built_lines(built_reply)
            if checked is None:
                return None
            reply_lines = checked
    return tuple(built_from), tuple(reply_lines)


def _field_pieces(split: SplitMessage) -> tuple[list[bytes], list[bytes], list[str], bool] | None:
    """Each field as one byte string (its lines joined by the block's line ending), its name and
    its key, and whether every name is known to be followed by its colon at once (so in the lazy
    form of ``message.SplitMessage``, whose readers take no other); None when a field is not
    known clean."""
    if split.pieces is not None and split.names is not None and split.keys is not None:
        return split.pieces, split.names, split.keys, True
    fields = split.fields
    if not all(f.checked for f in fields):
        return None
    eol = split.eol
    pieces = [eol.join(f.lines) for f in fields]
    return pieces, [f.name.encode("ascii") for f in fields], [f.key for f in fields], False


def fast_assemble(
    split: SplitMessage, origin: Origin, alias_address: str, now: datetime | None
) -> tuple[bytes, list[str]] | None:
    """The header block (ending in its blank line) and the repairs ``forward.assemble`` would give
    for a one-way forward, known to pass ``validator.validate``; None when the general path must
    decide. The body must have no line over 998 (the caller checks that).

    The fields are read as pieces (one byte string a field, see ``message.SplitMessage``): a field
    copied as it came is appended whole, the output being the pieces joined by the line ending."""
    found = _field_pieces(split)
    if found is None:
        return None
    pieces, names, keys, colons_known = found
    eol = split.eol
    out: list[bytes] = []
    seen: set[str] = set()
    references_at = -1
    references_value = b""
    has_date = False
    strict_count = 0
    lenient_count = 0
    from_at = -1
    for key, piece, name in zip(keys, pieces, names):
        removed = _NAMED_KEYS.get(key)
        if removed is None:
            if key.startswith(_REMOVED_PREFIXES):
                continue
            if not colons_known and piece[len(name) : len(name) + 1] != b":":
                return None  # space before the colon: a repair
            out.append(piece)  # no rule names it: copied as it came
            continue
        if removed:
            continue
        if not colons_known and piece[len(name) : len(name) + 1] != b":":
            return None  # space before the colon: a repair
        if key == "reply-to" and not origin.reply_to_valid:
            if _value(piece, name, eol).strip():
                return None  # renamed X-Original-Reply-To: a repair
            continue
        if key in RENAMED:
            new_name = RENAMED[key]
            lines = piece.split(eol)
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
                references_at = len(out) + 1
                references_value = _value(piece, name, eol)
            elif key == "date":
                if not _readable_date([piece.replace(eol, b"")]):
                    return None
                has_date = True
        if key in ADDRESS_FIELDS:
            text = _value(piece, name, eol).decode("ascii")
            boxes = strict_address_list(text)
            if boxes is None:
                return None  # rewritten address by address: a repair
            if key in _RECIPIENT_KEYS:
                strict_count += len(boxes)
                lenient_count += len(parse_address_list(text))
        out.append(piece)
    if from_at < 0 or strict_count > MAX_HEADER_RECIPIENTS or lenient_count > MAX_HEADER_RECIPIENTS:
        return None

    built = _built_fields(origin.sender, origin.from_text, alias_address, not origin.reply_to_valid)
    if built is None:
        return None
    built_from, reply_lines = built
    tail: list[bytes] = []
    if reply_lines:
        if "reply-to" in seen:
            return None
        tail.extend(reply_lines)
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
    tail.append(_loop_line(alias_address))
    repairs: list[str] = []
    if not has_date and now is not None:
        tail.append(b"Date: " + rfc5322_date(now).encode("ascii"))
        repairs.append("missing-date")
    out[from_at:from_at] = built_from
    out.extend(tail)
    return eol.join(out) + eol + eol, repairs


def _value(piece: bytes, name: bytes, eol: bytes) -> bytes:
    """A piece's unfolded value, as ``HeaderField.value`` gives it (line breaks removed, stripped)."""
    return piece[len(name) + 1 :].replace(eol, b"").strip()


@functools.lru_cache(maxsize=1024)
def _loop_line(alias_address: str) -> bytes:
    return f"{LOOP}: {loop_token(alias_address)}".encode()
