"""Every header rule of othermail lives in this module, and each says why it exists.

A forwarded message keeps the sender's header block as it came, field by field and byte by byte,
except where one of the rules below changes it. The rules are applied in the order written here.

Rule 1 (From). ``From`` becomes the alias address, with a display name that shows who really sent
    the message: ``"Jane Doe (jane at example.com)" <alias@domain>``. SES only sends from verified
    identities, and only a From on the service's own (Easy DKIM) domain is DMARC-aligned at the
    receiving end; keeping the sender's From would fail DMARC for every sender with p=reject.
    The display name is a quoted string or RFC 2047 words, never has an ``@`` (nor a character that
    Unicode folds to one): every address-like token of the sender's name is spelled "x at y", as
    the sender address is, so ``security@paypal.com`` in a name cannot pass for an address. It
    never carries a CR or LF from the input (header injection).
Rule 2 (original sender). The sender's From stays visible in ``X-Othermail-Original-From``, so a
    user (or a filter) can always tell who wrote. Any incoming ``X-Othermail-*`` field is removed
    first, so this one can be trusted; only ``X-Othermail-Loop`` is kept (rule 9).
Rule 3 (replies). A reply must reach the real sender: the first ``Reply-To`` is kept when it
    holds a valid address; otherwise ``Reply-To`` is set to the sender's From address (a broken
    one is kept as ``X-Original-Reply-To``).
Rule 4 (removed fields). Fields that would break or leak are removed; ``REMOVED`` below lists each
    with its reason (signatures that no longer verify, trace of the alias's delivery, blind copies,
    SES-only metadata, read-receipt and bounce-address requests a destination would answer from
    the user's real mailbox).
Rule 5 (renamed fields). ``Authentication-Results`` becomes ``X-Original-Authentication-Results``:
    the results are useful to read but must not look like results from the destination's own
    server (RFC 8601 section 5).
Rule 6 (once only). SES rejects the whole send when a field it accepts once appears twice (a
    duplicated ``MIME-Version`` alone was most of the mail one large peer dropped every day). For
    each field in ``ONCE_ONLY`` the first occurrence is kept; ``To``, ``Cc`` and ``References`` are
    merged instead, so no recipient or thread reference is lost.
Rule 7 (threading). ``Message-ID``, ``In-Reply-To`` and ``References`` survive. SES replaces the
    Message-ID, so the original one is appended to ``References``: a later reply that refers to it
    still threads with the forwarded copy in the user's mailbox.
Rule 8 (header recipients). SES counts the addresses in To and Cc toward its limit of 50
    recipients per message. Over the limit, ``Cc`` is renamed ``X-Original-Cc`` (the list stays
    readable), and ``To`` too (``X-Original-To``) if it alone is still over; a renamed ``To`` is
    replaced by the alias.
Rule 9 (loop guard). Each forward adds ``X-Othermail-Loop: <token of the alias>``. A message that
    already carries the token of the alias it is addressed to went through this alias before and is
    not forwarded again; ``MAX_HOPS`` tokens or more mean a loop between aliases.
Rule 10 (7-bit, well-formed lines). SES accepts only 7-bit header content, lines of at most 998
    characters, and one blank line between header and body. A field that breaks one of these is
    rewritten: free text as RFC 2047 words, addresses one by one, MIME parameters in RFC 2231 form;
    NUL and bare CR are removed; white-space-only continuation lines (which SES could read as the
    end of the header block) are dropped, and so is white space between a field name and its colon
    (obsolete syntax that RFC 5322 section 4.5 forbids generating; strict readers such as Python's
    ``email`` package take ``To : x`` for the first body line, hiding every field after it). A field
    whose content has no valid form is renamed
    ``X-Original-<name>`` and encoded as free text, so nothing the sender wrote is lost; only a
    field whose name alone is longer than a line is dropped. Message ids are reduced to the
    well-formed ones they hold. Fields that already satisfy the rules are left exactly as they were.
Rule 11 (Date). A message without a ``Date`` (or whose Date rule 10 had to rename, or whose Date is
    empty or not a date ``email.utils.parsedate_to_datetime`` can read: renamed ``X-Original-Date``)
    gets one: RFC
    5322 section 3.6 requires it, and SES adds one but the one box's outbox and an SMTP relay do
    not, so some destinations would file the message as undated or spam. It is the time of
    forwarding in UTC (``Fri, 03 May 2024 16:00:00 +0000``), taken from the ``now`` the caller
    passes: the core reads no clock, so the same input always gives the same bytes.
Rule 12 (two-way). When the caller passes a ``TwoWay`` (contacts resolved for the participants),
    rules 1 to 3 and 8 name every participant by its reverse address instead; ``twoway`` holds
    those rules and why. Without it nothing changes.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from forwarder.core.addresses import (
    Mailbox,
    ascii_address,
    format_mailbox,
    parse_address_list,
    parse_mailbox,
    sender_display_name,
    spell_at,
    strict_address_list,
)
from forwarder.core.fields import MSG_ID, address_lines, mailbox_lines, msg_id_lines, parameter_lines, params
from forwarder.core.frozen import slot_setters
from forwarder.core.message import HeaderField, SplitMessage, paused_gc, split_message
from forwarder.core.text import MAX_LINE, clean_text, decode_bytes, decode_header_text, encode_unstructured, fold
from forwarder.core.twoway import (
    TWO_WAY_REMOVED,
    UNSUBSCRIBE_RENAMED,
    TwoWay,
    map_message_ids,
    map_recipients,
    map_reply_to,
    sender_display,
    spell_known_addresses,
    unsubscribe_lines,
)

ORIGINAL_FROM = "X-Othermail-Original-From"
LOOP = "X-Othermail-Loop"
MAX_HOPS = 3
MAX_HEADER_RECIPIENTS = 50

#: Rule 4: removed fields and why.
REMOVED: dict[str, str] = {
    "dkim-signature": "signs the original From and body; it fails after rule 1 and SES signs anew",
    "domainkey-signature": "obsolete DomainKeys signature; fails after rule 1",
    "return-path": "set by the last delivering server; SES uses its own MAIL FROM",
    "sender": "SES requires Sender to be a verified identity; the sender's would be rejected",
    "delivered-to": "trace of the alias's own delivery; makes receivers suspect a loop",
    "bcc": "a blind copy must never be revealed to anyone",
    "x-original-authentication-results": "only rule 5 may write it, so it can be trusted",
    # Read receipts and bounce addresses name the sender: a destination's client that honours one
    # sends the receipt (an MDN, RFC 8098) or the bounce from the user's real mailbox, which
    # reveals the address the alias hides. The alias never answers for its user.
    "disposition-notification-to": "asks for a read receipt (RFC 8098), sent from the real mailbox",
    "disposition-notification-options": "options of a read-receipt request, meaningless without it",
    "return-receipt-to": "the older read/delivery receipt request; answered from the real mailbox",
    "read-receipt-to": "a non-standard read-receipt request; answered from the real mailbox",
    "x-confirm-reading-to": "Pegasus Mail's read-receipt request; answered from the real mailbox",
    "x-pmrqc": "Pegasus Mail's receipt request flag",
    "generate-delivery-report": "an X.400 gateway's delivery-report request (RFC 2156)",
    "errors-to": "an obsolete bounce address some servers still send delivery errors to",
}
#: Rule 4: removed families of fields and why.
REMOVED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("arc-", "the ARC chain of earlier hops no longer matches the rewritten message"),
    ("x-ses-", "SES receiving metadata (receipt blob, verdicts, its DKIM) for the alias only"),
    ("x-othermail-", "only this service may write them (rules 2 and 9)"),
)
#: Rule 5.
RENAMED: dict[str, str] = {"authentication-results": "X-Original-Authentication-Results"}
#: Rule 6: fields SES accepts once (SES_FACTS), plus the MIME ones of the same kind.
ONCE_ONLY = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "return-path",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "content-description",
        "dkim-signature",
        "delivered-to",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-help",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
    }
)
MERGED: dict[str, str] = {"to": ", ", "cc": ", ", "references": " "}
#: Rule 10: fields whose content is a list of addresses.
ADDRESS_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "resent-from",
        "resent-to",
        "resent-cc",
        "resent-sender",
        "disposition-notification-to",
        "return-receipt-to",
        "errors-to",
        "mail-followup-to",
        "mail-reply-to",
    }
)
#: Rule 10: fields whose content is a MIME value with parameters.
PARAMETER_FIELDS = frozenset({"content-type", "content-disposition"})
#: Rule 10: structured fields with no free-text form; a broken one is renamed X-Original-*.
STRICT_FIELDS = frozenset(
    {"message-id", "in-reply-to", "references", "content-id", "date", "mime-version", "content-transfer-encoding"}
)


@functools.lru_cache(maxsize=1024)
def loop_token(alias_address: str) -> str:
    """The value of ``X-Othermail-Loop`` for an alias: stable, and says nothing the From doesn't."""
    return hashlib.sha256(b"othermail-loop:" + alias_address.lower().encode()).hexdigest()[:20]


@dataclass(slots=True)
class RewrittenHeaders:
    """The header block to send, as physical lines without line endings, and what was repaired."""

    lines: list[bytes]
    repairs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, init=False)
class Origin:
    """Who sent a message, read once per message and reused for every alias it goes to."""

    sender: Mailbox | None
    reply_to_valid: bool
    charset: str | None
    message_id: bytes | None
    from_text: str

    def __init__(
        self,
        sender: Mailbox | None,
        reply_to_valid: bool,
        charset: str | None,
        message_id: bytes | None,
        from_text: str = "",
    ) -> None:
        _ORIGIN_SENDER(self, sender)
        _ORIGIN_REPLY_TO_VALID(self, reply_to_valid)
        _ORIGIN_CHARSET(self, charset)
        _ORIGIN_MESSAGE_ID(self, message_id)
        _ORIGIN_FROM_TEXT(self, from_text)


_ORIGIN_SENDER, _ORIGIN_REPLY_TO_VALID, _ORIGIN_CHARSET, _ORIGIN_MESSAGE_ID, _ORIGIN_FROM_TEXT = slot_setters(
    Origin, "sender", "reply_to_valid", "charset", "message_id", "from_text"
)


def top_level_charset(msg: SplitMessage) -> str | None:
    content_type = msg.first_value("content-type")
    if content_type is None:
        return None
    return _charset(content_type)


@functools.lru_cache(maxsize=1024)
def _charset(content_type: bytes) -> str | None:
    """The charset parameter of a Content-Type value (remembered: most mail carries one of a few)."""
    return dict(params(content_type.decode("utf-8", "surrogateescape"))).get("charset")


def read_origin(msg: SplitMessage, envelope_from: str | None) -> Origin:
    charset = top_level_charset(msg)
    sender = None
    from_value = msg.first_value("from")
    sender = _mailbox(from_value, charset) if from_value is not None else None
    if sender is None:
        for key in ("sender", "return-path"):
            found = msg.first_value(key)
            if found is not None:
                sender = _mailbox(found, charset)
                if sender is not None:
                    break
    if sender is None and envelope_from:
        sender = parse_mailbox(envelope_from)
    message_id = msg.first_value("message-id")
    mid = MSG_ID.search(message_id) if message_id is not None else None
    reply_to = msg.first_value("reply-to")
    reply_boxes = strict_address_list(decode_bytes(reply_to, charset)) if reply_to is not None else None
    return Origin(
        sender=sender,
        reply_to_valid=bool(reply_boxes) and all(ascii_address(b.address) for b in reply_boxes or ()),
        charset=charset,
        message_id=mid.group(0) if mid else None,
        from_text=(
            clean_text(decode_header_text(from_value, charset)) if from_value is not None and sender is None else ""
        ),
    )


_NAME_ANGLE_ADDR = re.compile(r"^([^<>]*)<([^<>@\s]+@[^<>\s]+)>\s*$")


@functools.lru_cache(maxsize=2048)
def _mailbox(raw: bytes, charset: str | None) -> Mailbox | None:
    """The sender of a From-like field.

    A field with a single ``<address>`` takes everything before it as the name, so an unquoted
    comma (``Norton I., Emperor <n@example.com>``) does not cut the name in two. A pure function
    of its arguments, remembered like the address readers of ``addresses`` (a sender writes again).
    """
    text = decode_bytes(raw, charset)
    whole = _NAME_ANGLE_ADDR.match(text)
    if whole:
        name = whole.group(1).strip()
        if name.startswith('"') and name.endswith('"') and len(name) > 1:
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        found: Mailbox | None = Mailbox(name, whole.group(2))
    else:
        found = parse_mailbox(text)
    if found is None:
        return None
    name = decode_header_text(found.name.encode("utf-8", "surrogateescape"), charset)
    return Mailbox(clean_text(name), found.address)


def display_fields(raw: bytes, names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, text) of each field of ``raw`` named in ``names``, decoded for showing a message.

    In the order of ``names``, each name's fields in the order they came. The text is the field
    decoded (RFC 2047 words, raw 8-bit in the message's charset) on one line, without control
    characters. Addresses are shown as written, not parsed: this never raises and never recurses,
    whatever the sender wrote (``email.headerregistry`` recurses on a From of thousands of nested
    comments or a To of thousands of encoded words).
    """
    split = split_message(raw)
    charset = top_level_charset(split)
    shown = []
    for name in names:
        for f in split.get_all(name.lower()):
            shown.append((name, " ".join(clean_text(decode_header_text(f.value, charset)).split())))
    return shown


_LOOP_KEY = LOOP.lower()


def loop_tokens(msg: SplitMessage) -> list[str]:
    if msg.first_value(_LOOP_KEY) is None:
        return []
    return [f.value.decode("ascii", "replace") for f in msg.get_all(_LOOP_KEY)]


_REMOVED_PREFIX_TUPLE = tuple(prefix for prefix, _ in REMOVED_PREFIXES)
_KEPT_DESPITE_PREFIX = LOOP.lower()


def _removed(key: str) -> bool:
    """Rule 4: whether a field is removed (``REMOVED`` and ``REMOVED_PREFIXES`` say why)."""
    if key in REMOVED:
        return True
    return key.startswith(_REMOVED_PREFIX_TUPLE) and key != _KEPT_DESPITE_PREFIX


def rewrite_headers(
    msg: SplitMessage,
    origin: Origin,
    alias_address: str,
    now: datetime | None = None,
    two_way: TwoWay | None = None,
) -> RewrittenHeaders:
    """Apply rules 1 to 11 to the header block of ``msg`` for one alias.

    ``now`` is the time of forwarding, for rule 11; without it a missing Date stays missing.
    With ``two_way`` the rules of ``twoway`` replace rules 1 to 3 and 8 for every participant
    found in its contacts; without it the output is the one-way rewrite.
    """
    repairs: list[str] = []
    kept: list[HeaderField] = []
    first_of: dict[str, HeaderField] = {}
    merged_values: dict[str, list[bytes]] = {}
    renamed_unsubscribe = UNSUBSCRIBE_RENAMED if two_way is not None and two_way.unsubscribe else {}

    removed_two_way = TWO_WAY_REMOVED if two_way is not None else ()
    for f in msg.fields:
        key = f.key
        if key in REMOVED or key in removed_two_way or (key.startswith(_REMOVED_PREFIX_TUPLE) and _removed(key)):
            continue
        if key == "reply-to" and not origin.reply_to_valid:
            if f.value.strip():
                repairs.append("invalid-reply-to")
                if two_way is None:
                    kept.append(_renamed(f, "X-Original-Reply-To"))
            continue
        if key in renamed_unsubscribe:
            kept.append(_renamed(f, renamed_unsubscribe[key]))
            continue
        if key in RENAMED:
            f = _renamed(f, RENAMED[key])
        if key in ONCE_ONLY:
            if key in first_of:
                if key in MERGED:
                    merged_values[key].append(f.value)
                else:
                    repairs.append(f"duplicate-{key}")
                continue
            first_of[key] = f
            if key in MERGED:
                merged_values[key] = [f.value]
        kept.append(f)

    sender_mapped = bool(two_way and origin.sender and two_way.reverse_of(origin.sender.address))
    if two_way is not None and origin.sender is not None and not sender_mapped:
        repairs.append("contact-missing")
    out: list[HeaderField] = []
    for f in kept:
        key = f.key
        if key == "from":
            out.extend(_from_fields(origin, alias_address, two_way))
            continue
        if key in MERGED and len(merged_values[key]) > 1:
            repairs.append(f"merged-{key}")
            joined = MERGED[key].encode().join(v for v in merged_values[key] if v)
            f = HeaderField(f.name, [f.name.encode() + b": " + joined])
        out.append(f)

    if "from" not in first_of:
        out[0:0] = _from_fields(origin, alias_address, two_way)
        repairs.append("missing-from")
    if not origin.reply_to_valid and not sender_mapped:
        reply_to = _reply_to(origin)
        if reply_to is not None:
            out.append(reply_to)
    if origin.message_id is not None:
        _append_reference(out, origin.message_id)
    if two_way is None:
        _limit_header_recipients(out, alias_address, repairs)
    else:
        if origin.reply_to_valid:
            map_reply_to(out, two_way, alias_address, origin.charset, repairs)
        map_recipients(out, two_way, alias_address, origin.charset, MAX_HEADER_RECIPIENTS, repairs)
        spell_known_addresses(out, two_way)
        map_message_ids(out, two_way)
        if two_way.unsubscribe:
            _add_unsubscribe(out, two_way.unsubscribe, repairs)
    # 7-bit, one short line, nothing but a field name and hexadecimal digits: valid as written
    out.append(HeaderField(LOOP, [f"{LOOP}: {loop_token(alias_address)}".encode()], checked=True))

    lines: list[bytes] = []
    has_date = False
    with paused_gc():
        for f in out:
            first = f.lines[0]
            if f.checked and first[len(f.name) : len(f.name) + 1] == b":" and f.key not in ADDRESS_FIELDS:
                valid = f.lines  # what _valid_lines gives such a field, without the call
            else:
                valid = _valid_lines(f, origin.charset, repairs)
            if f.key == "date" and valid and valid[0][:5].lower() == b"date:":
                if _readable_date(valid):
                    has_date = True
                else:  # empty or no date at all: kept for the reader, and ours is added
                    repairs.append("unreadable-date")
                    valid = encode_unstructured("X-Original-Date", decode_header_text(f.value, origin.charset))
            lines.extend(valid)
    if not has_date and now is not None:
        lines.append(b"Date: " + rfc5322_date(now).encode("ascii"))
        repairs.append("missing-date")
    return RewrittenHeaders(lines=lines, repairs=repairs)


# The date-time most mail carries, ``Mon, 23 Nov 2026 11:00:00 +0100``, read without the stdlib's
# general parser (several microseconds). For a value of this exact form, parsedate_to_datetime
# succeeds exactly when these numbers make a datetime and the offset a timezone, so the answer is
# the same; any other form goes to the stdlib.
_PLAIN_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTH_NUMBER = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


# The same form with every number in range whatever the month (a day up to 28, an offset within a
# day), on the bytes: a match is readable with no number converted (issue 15: int() and datetime()
# were most of the check); anything else is read below.
_COMMON_DATE = re.compile(
    rb"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(?:0?[1-9]|1\d|2[0-8]) "
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?:0[1-9]\d\d|[1-9]\d{3}) "
    rb"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d [+-](?:(?:[01]\d|2[0-2])\d\d|23[0-5]\d)"
)


def _readable_date(lines: list[bytes]) -> bool:
    """Whether a Date field's (valid, ASCII) lines hold a date-time a reader can parse."""
    raw = b"".join(lines)[5:].strip()
    if _COMMON_DATE.fullmatch(raw) is not None:
        return True
    value = raw.decode("ascii", "replace").strip()
    if not value:
        return False
    plain = _PLAIN_DATE.fullmatch(value)
    if plain is not None and plain.group(3) >= "0100":  # the stdlib reads years 0-99 as 19xx or 20xx
        day, month, year, hour, minute, second, _sign, tz_hours, tz_minutes = plain.groups()
        # timezone() takes an offset strictly within a day either way; no object needs building
        if int(tz_hours) * 60 + int(tz_minutes) >= 24 * 60:
            return False
        try:
            datetime(int(year), _MONTH_NUMBER[month], int(day), int(hour), int(minute), int(second))
        except ValueError:
            return False
        return True
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return True


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc5322_date(moment: datetime) -> str:
    """``moment`` as an RFC 5322 date-time in UTC; a naive datetime is taken to be UTC already."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} +0000"
    )


def _renamed(f: HeaderField, name: str) -> HeaderField:
    return HeaderField(name, [name.encode() + f.lines[0][len(f.name) :], *f.lines[1:]])


def _add_unsubscribe(out: list[HeaderField], unsubscribe: tuple[str, str], repairs: list[str]) -> None:
    found = unsubscribe_lines(unsubscribe)
    if found is None:
        repairs.append("unwritable-unsubscribe")
        return
    out.append(HeaderField("List-Unsubscribe", found[0]))
    out.append(HeaderField("List-Unsubscribe-Post", found[1]))


def _from_fields(origin: Origin, alias_address: str, two_way: TwoWay | None = None) -> list[HeaderField]:
    if two_way is not None and origin.sender is not None:
        display = sender_display(origin.sender, two_way.display_format)
        reverse = two_way.reverse_of(origin.sender.address)
        if reverse is not None:  # no X-Othermail-Original-From: it would name the real address
            return [HeaderField("From", mailbox_lines("From", display, reverse))]
    elif origin.sender is not None:
        display = sender_display_name(origin.sender)
    else:
        display = sender_display_name(None) if not origin.from_text else spell_at(origin.from_text)[:64]
    fields = [HeaderField("From", mailbox_lines("From", display, alias_address))]
    formatted = None
    if origin.sender is not None:
        formatted = format_mailbox(origin.sender.name, origin.sender.address)
        text = f"{origin.sender.name} <{origin.sender.address}>".strip()
    else:
        text = origin.from_text
    if formatted is not None:
        lines = fold(ORIGINAL_FROM, formatted) or encode_unstructured(ORIGINAL_FROM, formatted)
    elif text:
        lines = encode_unstructured(ORIGINAL_FROM, text)
    else:
        return fields
    fields.append(HeaderField(ORIGINAL_FROM, lines))
    return fields


def _reply_to(origin: Origin) -> HeaderField | None:
    if origin.sender is None:
        return None
    address = ascii_address(origin.sender.address)
    if address is None:
        return None
    return HeaderField("Reply-To", mailbox_lines("Reply-To", origin.sender.name, address))


def _append_reference(out: list[HeaderField], message_id: bytes) -> None:
    for i, f in enumerate(out):
        if f.key == "references":
            if message_id in f.value:
                return
            out[i] = HeaderField(f.name, [*f.lines, b" " + message_id])
            return
    out.append(HeaderField("References", [b"References: " + message_id]))


def _count_recipients(f: HeaderField) -> int:
    return len(parse_address_list(f.value.decode("utf-8", "replace")))


def _limit_header_recipients(out: list[HeaderField], alias_address: str, repairs: list[str]) -> None:
    counts = {f.key: _count_recipients(f) for f in out if f.key in ("to", "cc")}
    if sum(counts.values()) <= MAX_HEADER_RECIPIENTS:
        return
    for key in ("cc", "to"):
        for i, f in enumerate(out):
            if f.key == key:
                out[i] = _renamed(f, f"X-Original-{f.name.capitalize()}")
                counts[key] = 0
                repairs.append(f"too-many-recipients-{key}")
        if sum(counts.values()) <= MAX_HEADER_RECIPIENTS:
            break
    if not any(f.key == "to" for f in out):  # an empty To ("undisclosed-recipients:;") stays alone
        out.append(HeaderField("To", [f"To: {alias_address}".encode()]))


def _is_clean(f: HeaderField) -> bool:
    if f.checked:
        return f.key not in ADDRESS_FIELDS or strict_address_list(f.value.decode("ascii")) is not None
    for line in f.lines:
        if len(line) > MAX_LINE or not line.isascii() or b"\x00" in line or b"\r" in line:
            return False
    if not all(line.strip() for line in f.lines[1:]):
        return False
    return f.key not in ADDRESS_FIELDS or strict_address_list(f.value.decode("ascii")) is not None


def _valid_lines(f: HeaderField, charset: str | None, repairs: list[str]) -> list[bytes]:
    """Rule 10: the field's own lines when they are valid, else the smallest valid rewrite."""
    first = f.lines[0]
    if first[len(f.name) : len(f.name) + 1] != b":":  # "Name :", obsolete (RFC 5322 section 4.5)
        f = HeaderField(f.name, [f.name.encode() + first[first.index(b":") :], *f.lines[1:]], f.checked)
        repairs.append("space-before-colon")
    if _is_clean(f):
        return f.lines
    key = f.key
    if len(f.name) > MAX_LINE - 2:
        repairs.append("dropped-overlong-field-name")
        return []
    repairs.append(f"rewrote-{key}")
    raw = f.value.replace(b"\x00", b"").replace(b"\r", b" ")
    lines: list[bytes] | None = None
    if key in ADDRESS_FIELDS:
        lines = address_lines(f.name, raw, charset)
    elif key in PARAMETER_FIELDS:
        lines = parameter_lines(f.name, raw, charset)
    elif key in ("message-id", "in-reply-to", "references", "content-id"):
        lines = msg_id_lines(f.name, raw)
    elif key not in STRICT_FIELDS:
        return encode_unstructured(f.name, decode_header_text(raw, charset))
    elif raw.isascii():
        lines = fold(f.name, raw.decode("ascii"))
    if lines is not None:
        return lines
    name = f.name if f.name.lower().startswith("x-original-") else f"X-Original-{f.name}"
    return encode_unstructured(name, decode_header_text(raw, charset))


__all__ = [
    "LOOP",
    "MAX_HEADER_RECIPIENTS",
    "MAX_HOPS",
    "ORIGINAL_FROM",
    "Origin",
    "RewrittenHeaders",
    "display_fields",
    "loop_token",
    "loop_tokens",
    "read_origin",
    "rewrite_headers",
    "rfc5322_date",
    "top_level_charset",
]
