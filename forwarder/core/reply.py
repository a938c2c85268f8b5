"""The reply rewrite: a user's answer to a reverse address leaves from the alias, naming only it.

The user writes from their real mailbox to a contact's reverse address (Reply, Reply-All, or a
first message). What leaves is a new message:

- its header block is rebuilt from an allowlist (``KEPT`` below, plus From, To, Cc, Message-ID,
  In-Reply-To and References, which are written anew): nothing the user's provider or client
  stamps (Received, X-Originating-IP, Sender, Return-Path, Authentication-Results, DKIM-Signature,
  ARC-*, X-Google-*, X-MS-*, Thread-Index, X-Apple-*, User-Agent, Reply-To...) goes on;
- From is the alias, with the alias's display name (none when empty);
- To and Cc: each reverse address becomes its contact's real address, with the name the contact
  has (never the one the user's client showed); any other address was delivered directly by the
  user's own mail server, so it is left out and reported in ``bypassed`` (the alias itself and the
  user's own mailboxes are left out silently: mail to them reaches only the user);
- In-Reply-To and References: each id is mapped through ``original_id`` to the id the other side
  knows; ids without a mapping are dropped. Message-ID is the one the caller made on the alias
  domain (SES replaces it and returns its own, which the caller records);
- Subject and every text/plain and text/html part have each destination address replaced by the
  alias (see ``scrub``); Date is kept, or added from ``now`` when the caller passes it.

Then the SES pre-flight validator runs, as for a forwarded message (a long body line is repaired
once). No I/O: the caller resolves reverse addresses and message ids before and sends after.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from forwarder.core.addresses import Mailbox, ascii_address, format_mailbox, parse_address_list
from forwarder.core.body import Unrepairable, repair
from forwarder.core.fields import MSG_ID, mailbox_lines, parameter_lines
from forwarder.core.forward import Prepared
from forwarder.core.headers import rfc5322_date
from forwarder.core.message import HeaderField, split_message
from forwarder.core.outcomes import Decision, Outcome
from forwarder.core.scrub import Scrubber, scrub_entity
from forwarder.core.text import MAX_LINE, decode_bytes, decode_header_text, encode_unstructured, fold
from forwarder.core.validator import SESV2_MAX_BYTES, validate

#: Fields of the user's message that go on (after the checks below); every other field is dropped.
KEPT = ("subject", "date", "content-type", "content-transfer-encoding", "content-language")
NO_RECIPIENT = "none of the recipients is a reverse address of this alias"


@dataclass(frozen=True, slots=True)
class ReplyResult:
    """What to send and to whom, or why nothing is sent (``raw`` is then empty).

    ``envelope_recipients``: the contacts' real addresses, once each, in the order they came.
    ``bypassed``: lowercase addresses from To/Cc that are not reverse addresses: the user's own
    server already delivered to them, with the user's real address; they are not sent again.
    """

    decision: Decision
    raw: bytes = b""
    envelope_recipients: tuple[str, ...] = ()
    bypassed: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()

    @property
    def outcome(self) -> Outcome:
        return self.decision.outcome

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def sends(self) -> bool:
        return self.decision.outcome is Outcome.REPLIED


@dataclass(slots=True)
class _Recipients:
    to: list[str]
    cc: list[str]
    envelope: list[str]
    bypassed: list[str]
    repairs: list[str]


def reply(
    message: Prepared,
    *,
    alias_address: str,
    alias_display_name: str,
    destination_addresses: Collection[str],
    reverse_to_real: Mapping[str, tuple[str, str]],
    original_id: Callable[[str], str | None],
    message_id: str,
    now: datetime | None = None,
    max_bytes: int = SESV2_MAX_BYTES,
    deliver_to: str | None = None,
) -> ReplyResult:
    """Rewrite the user's reply for sending from the alias (see the module's docstring).

    ``reverse_to_real`` maps each lowercase reverse address to the contact's (real address,
    display name); ``original_id`` maps a Message-ID (``<x@y>``) the user's client saw to the one
    the contact knows, or None. ``now`` dates a reply that has no readable Date.

    ``deliver_to``: the real address of the one contact this copy is for, when the caller handles
    one envelope recipient (a reverse address) at a time, as the user's server delivers a
    Reply-All once per reverse address, and a contact in Bcc is in no header at all. Without it,
    every contact named in To and Cc is an envelope recipient.
    """
    split = message.split
    charset = message.origin.charset
    own = {a.strip().lower() for a in destination_addresses} | {alias_address.strip().lower()}
    recipients = _recipients(split.get_all("to"), split.get_all("cc"), charset, own, reverse_to_real)
    if deliver_to is not None:
        address = ascii_address(deliver_to)
        recipients.envelope = [address] if address is not None else []
        if address is None:
            recipients.repairs.append("unsendable-contact-address")
    repairs = list(dict.fromkeys([*split.repairs, *recipients.repairs]))
    if not recipients.envelope:
        return ReplyResult(
            Decision(Outcome.DROPPED_NO_DESTINATION, NO_RECIPIENT),
            bypassed=tuple(recipients.bypassed),
            repairs=tuple(repairs),
        )

    scrubber = Scrubber.build(destination_addresses, alias_address)
    fields, body = split.fields, bytes(split.body)
    if scrubber is not None:
        scrubbed = scrub_entity(scrubber, fields, body, split.eol)
        if scrubbed is not None:
            fields, body = scrubbed
            repairs.append("scrubbed-body")
    lines = [*mailbox_lines("From", alias_display_name, alias_address)]
    lines += _address_field("To", recipients.to) + _address_field("Cc", recipients.cc)
    if not recipients.to and not recipients.cc:  # a contact in Bcc only: say so, as mail clients do
        lines.append(b"To: undisclosed-recipients:;")
    lines += _kept_fields(fields, charset, scrubber, now, repairs)
    lines += _id_field("Message-ID", [message_id])
    lines += _id_field("In-Reply-To", _mapped_ids(split.get_all("in-reply-to"), original_id))
    lines += _id_field("References", _mapped_ids(split.get_all("references"), original_id))
    lines.append(b"MIME-Version: 1.0")

    eol = split.eol
    head = eol.join(lines) + eol + eol
    return _checked(head, body, eol, max_bytes, recipients, repairs)


def _checked(
    head: bytes, body: bytes, eol: bytes, max_bytes: int, recipients: _Recipients, repairs: list[str]
) -> ReplyResult:
    """Run the SES pre-flight validator, repairing long body lines once, as a forward does."""
    problems = validate(head, body, max_bytes)
    if any(p.code == "body-line-too-long" for p in problems):
        parsed = split_message(head)
        try:
            fields, body = repair(parsed.fields, body, eol)
        except Unrepairable as exc:
            return ReplyResult(Decision(Outcome.DROPPED_INVALID, str(exc)), repairs=tuple(repairs))
        head = eol.join(line for f in fields for line in f.lines) + eol + eol
        repairs.append("body-line-too-long")
        problems = validate(head, body, max_bytes)
    if problems:
        outcome = Outcome.DROPPED_TOO_LARGE if any(p.code == "too-large" for p in problems) else Outcome.DROPPED_INVALID
        decision = Decision(outcome, "; ".join(str(p) for p in problems))
        return ReplyResult(decision, bypassed=tuple(recipients.bypassed), repairs=tuple(repairs))
    return ReplyResult(
        Decision(Outcome.REPLIED, "replied"),
        head + body,
        tuple(recipients.envelope),
        tuple(recipients.bypassed),
        tuple(repairs),
    )


def _recipients(
    to: list[HeaderField],
    cc: list[HeaderField],
    charset: str | None,
    own: set[str],
    reverse_to_real: Mapping[str, tuple[str, str]],
) -> _Recipients:
    found = _Recipients([], [], [], [], [])
    seen: set[str] = set()
    for fields, out in ((to, found.to), (cc, found.cc)):
        for box in (box for f in fields for box in _mailboxes(f, charset)):
            key = box.address.strip().lower()
            contact = reverse_to_real.get(key)
            if contact is None:
                if key not in own and key not in found.bypassed:
                    found.bypassed.append(key)
                continue
            real, name = contact
            address, formatted = ascii_address(real), format_mailbox(name, real)
            if address is None or formatted is None:
                found.repairs.append("unsendable-contact-address")
                continue
            if address.lower() in seen:
                continue
            seen.add(address.lower())
            out.append(formatted)
            found.envelope.append(address)
    return found


def _mailboxes(f: HeaderField, charset: str | None) -> tuple[Mailbox, ...]:
    return parse_address_list(decode_bytes(f.value, charset))


def _address_field(name: str, formatted: list[str]) -> list[bytes]:
    if not formatted:
        return []
    lines = fold(name, ", ".join(formatted))
    if lines is not None:
        return lines
    return [f"{name}: {formatted[0]}".encode("ascii"), *(f" , {item}".encode("ascii") for item in formatted[1:])]


def _mapped_ids(fields: list[HeaderField], original_id: Callable[[str], str | None]) -> list[str]:
    mapped: list[str] = []
    for f in fields:
        for seen in MSG_ID.findall(f.value):
            original = _as_id(original_id(seen.decode("ascii")))
            if original is not None and original not in mapped:
                mapped.append(original)
    return mapped


def _as_id(value: str | None) -> str | None:
    """A message id in angle brackets, or None when ``value`` is not one."""
    if not value:
        return None
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    found = MSG_ID.fullmatch(value.encode("ascii", "replace"))
    return value if found is not None else None


def _id_field(name: str, ids: list[str]) -> list[bytes]:
    clean = [i for i in (_as_id(x) for x in ids) if i is not None]
    if not clean:
        return []
    return fold(name, " ".join(clean)) or [f"{name}: {clean[0]}".encode("ascii")]


def _kept_fields(
    fields: list[HeaderField], charset: str | None, scrubber: Scrubber | None, now: datetime | None, repairs: list[str]
) -> list[bytes]:
    lines: list[bytes] = []
    done: set[str] = set()
    for f in fields:
        if f.key not in KEPT or f.key in done:
            continue
        done.add(f.key)
        if f.key == "subject":
            lines += _subject(f, charset, scrubber)
        elif f.key == "date":
            if _readable_date(f):
                lines += f.lines
            else:
                done.discard("date")
                repairs.append("unreadable-date")
        elif _clean(f):
            lines += f.lines
        elif f.key == "content-type":
            rewritten = parameter_lines(f.name, f.value.replace(b"\x00", b"").replace(b"\r", b" "), charset)
            lines += rewritten or []
            repairs.append("rewrote-content-type")
        else:
            repairs.append(f"dropped-{f.key}")
    if "date" not in done and now is not None:
        lines.append(b"Date: " + rfc5322_date(now).encode("ascii"))
        repairs.append("missing-date")
    return lines


def _clean(f: HeaderField) -> bool:
    if not all(line.strip() for line in f.lines[1:]):
        return False
    return all(
        len(line) <= MAX_LINE and line.isascii() and b"\x00" not in line and b"\r" not in line for line in f.lines
    )


def _subject(f: HeaderField, charset: str | None, scrubber: Scrubber | None) -> list[bytes]:
    text = decode_header_text(f.value, charset)
    # the raw bytes too: "=?utf-8?q?me_x@real.example?=" reads "me x@...", but spells the address
    if scrubber is not None and (scrubber.found_in(text) or scrubber.raw(f.value) != f.value):
        return encode_unstructured("Subject", scrubber.text(text))
    return f.lines if _clean(f) else encode_unstructured("Subject", text)


def _readable_date(f: HeaderField) -> bool:
    if not _clean(f):
        return False
    value = f.value.decode("ascii").strip()
    if not value:
        return False
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return True


__all__ = ["KEPT", "NO_RECIPIENT", "ReplyResult", "reply"]
