"""The local outbox read as a mail catcher: the messages ``MaildirSender`` wrote, newest first.

Everything here reads the Maildir (``mailbox.Maildir(path, create=False)``: a missing folder is
never created) and survives any message: a header that does not parse is shown as its raw text,
a body that does not decode is shown with replacement characters. Nothing found in a message is
ever rendered as markup: the pages print it escaped, an HTML part as its source.
"""

from __future__ import annotations

import email.policy
import mailbox
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from markupsafe import Markup, escape

from forwarder.errors import NoOutbox

PER_PAGE = 50
#: A Maildir key (``1700000000.M123P456Q7.host``): the only text a key in a URL may hold.
KEY = re.compile(r"[A-Za-z0-9._,:=-]+")
#: How much of a message the list reads to find its header.
HEAD_BYTES = 64 * 1024
#: Longest body text shown on a message's page (the whole message is one download away).
BODY_CHARS = 200_000
SUMMARY = ("Delivered-To", "From", "To", "Subject", "Date")
_FOLD = re.compile(r"\r?\n[ \t]*")
_BLANK = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: A link the message view makes clickable: http(s) only, up to a space, a quote or an angle bracket.
_LINK = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


@dataclass(frozen=True)
class Row:
    key: str
    received: datetime
    size: int
    delivered_to: str
    sender: str
    subject: str


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Detail:
    key: str
    received: datetime
    size: int
    head: str  # every header line, in order, as stored
    summary: dict[str, str]  # decoded values of SUMMARY
    body: str | None
    body_type: str  # text/plain, text/html (shown as source) or "raw"
    attachments: list[Attachment] = field(default_factory=list)
    problem: str | None = None


def open_outbox(path: Path) -> mailbox.Maildir:
    """The outbox, read-only; :class:`NoOutbox` when the folder is not there."""
    try:
        maildir = mailbox.Maildir(str(path), factory=None, create=False)
    except mailbox.NoSuchMailboxError as exc:
        raise NoOutbox(str(path)) from exc
    if not all(os.path.isdir(os.path.join(str(path), sub)) for sub in ("new", "cur")):
        raise NoOutbox(str(path))
    return maildir


def _file(maildir: mailbox.Maildir, key: str) -> str:
    """Where the message ``key`` lives (under ``new/`` or ``cur/``); ``KeyError`` if it does not."""
    return os.path.join(maildir._path, maildir._lookup(key))  # type: ignore[attr-defined]  # mailbox.Maildir's private path lookup; no public API names the file


def valid_key(maildir: mailbox.Maildir, key: str) -> bool:
    """Whether ``key`` names a message of the outbox: checked against the folder's own listing,
    so nothing typed into a URL is ever joined to a path."""
    if not KEY.fullmatch(key) or key.startswith("."):
        return False
    try:
        return key in maildir.keys()
    except OSError:
        return False


def _stat(maildir: mailbox.Maildir, key: str) -> tuple[datetime, int] | None:
    try:
        info = os.stat(_file(maildir, key))
    except (KeyError, OSError):
        return None  # removed meanwhile
    return datetime.fromtimestamp(info.st_mtime, UTC), info.st_size


def page(maildir: mailbox.Maildir, number: int) -> tuple[list[Row], int]:
    """The messages of page ``number`` (newest first) and how many there are in all."""
    try:
        keys = maildir.keys()
    except OSError:
        return [], 0
    stats = {key: stat for key in keys if (stat := _stat(maildir, key)) is not None}
    ordered = sorted(stats, key=lambda k: (stats[k][0], k), reverse=True)
    start = (number - 1) * PER_PAGE
    rows = []
    for key in ordered[start : start + PER_PAGE]:
        received, size = stats[key]
        head = _read(maildir, key, HEAD_BYTES)
        message = _parse(_BLANK.split(head, maxsplit=1)[0] + b"\n\n", headersonly=True)
        rows.append(
            Row(
                key,
                received,
                size,
                header(message, "Delivered-To"),
                header(message, "From"),
                header(message, "Subject"),
            )
        )
    return rows, len(ordered)


def raw(maildir: mailbox.Maildir, key: str) -> bytes:
    """The message exactly as stored."""
    with maildir.get_file(key) as handle:
        return handle.read()


def _read(maildir: mailbox.Maildir, key: str, limit: int) -> bytes:
    try:
        with maildir.get_file(key) as handle:
            return handle.read(limit)
    except (KeyError, OSError):
        return b""


def _parse(data: bytes, headersonly: bool = False) -> Message | None:
    try:
        return BytesParser(policy=email.policy.default).parsebytes(data, headersonly=headersonly)
    except Exception:  # noqa: BLE001 - a message is untrusted input; never a 500
        return None


def text(value: object) -> str:
    """Header text fit for a page: 8-bit bytes read as UTF-8 (else replaced), unfolded, no controls."""
    if not isinstance(value, str):
        value = str(value)
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub("\ufffd", _FOLD.sub(" ", value)).strip()


def visible(value: str) -> str:
    """Multi-line text fit for a page: line breaks and tabs kept, other control characters replaced."""
    return _CONTROL.sub("\ufffd", value)


def linked(value: str) -> Markup:
    """``value`` escaped, its http(s) links made clickable (``rel="noopener noreferrer"``): the
    service's own mails (a verification link) can be followed from the outbox. Nothing else in the
    text becomes markup; a link ends before a quote or an angle bracket, and loses trailing
    punctuation (``... this link.``)."""
    parts: list[str] = []
    last = 0
    for match in _LINK.finditer(value):
        url = match.group(0).rstrip(_TRAILING)
        end = match.start() + len(url)
        parts.append(str(escape(value[last : match.start()])))
        parts.append(f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(url)}</a>')
        last = end
    parts.append(str(escape(value[last:])))
    return Markup("".join(parts))


def header(message: Message | None, name: str) -> str:
    """The decoded value of the first ``name`` header (RFC 2047 words decoded), or its raw text
    when it does not decode; ``""`` when there is none."""
    if message is None:
        return ""
    raw_value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    if raw_value is None:
        return ""
    try:
        return text(message.policy.header_fetch_parse(name, raw_value))
    except Exception:  # noqa: BLE001
        return text(raw_value)


def _decoded(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]  # parsed with policy.default, so an EmailMessage
        if isinstance(content, str):
            return content
    except Exception:  # noqa: BLE001 - unknown charset, broken encoding...
        pass
    try:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return str(part.get_payload() or "")
        try:
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        return ""


def _body(message: Message) -> tuple[Message | None, str]:
    if isinstance(message, EmailMessage):
        for kind in ("plain", "html"):
            try:
                part = message.get_body(preferencelist=(kind,))
            except Exception:  # noqa: BLE001
                part = None
            if part is not None:
                return part, f"text/{kind}"
    return None, "raw"


def _attachments(message: Message, body: Message | None) -> list[Attachment]:
    found = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        try:
            name = part.get_filename()
            disposition = part.get_content_disposition()
            content_type = part.get_content_type()
        except Exception:  # noqa: BLE001
            continue
        if not name and disposition != "attachment" and content_type in ("text/plain", "text/html"):
            continue  # an alternative of the body, not an attachment
        try:
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
        except Exception:  # noqa: BLE001
            size = 0
        found.append(Attachment(text(name or "(no name)"), text(content_type), size))
    return found


def detail(maildir: mailbox.Maildir, key: str) -> Detail:
    data = raw(maildir, key)
    received, size = _stat(maildir, key) or (datetime.now(UTC), len(data))
    parts = _BLANK.split(data, maxsplit=1)
    head = visible(parts[0].decode("utf-8", "replace"))
    rest = parts[1] if len(parts) > 1 else b""
    message = _parse(data)
    summary = {name: header(message, name) for name in SUMMARY}
    if message is None:
        return Detail(
            key,
            received,
            size,
            head,
            summary,
            visible(rest.decode("utf-8", "replace")[:BODY_CHARS]),
            "raw",
            problem="This message could not be parsed; it is shown as stored.",
        )
    part, body_type = _body(message)
    problem = None
    if part is not None:
        body = _decoded(part)
    else:
        body = rest.decode("utf-8", "replace")
        if message.defects:
            problem = "This message is malformed; its body is shown as stored."
    try:
        attachments = _attachments(message, part)
    except Exception:  # noqa: BLE001
        attachments = []
    return Detail(key, received, size, head, summary, visible(body[:BODY_CHARS]), body_type, attachments, problem)


def delete_all(maildir: mailbox.Maildir) -> int:
    """Remove every message (not the ``tmp/`` files of a delivery under way); how many went."""
    removed = 0
    for key in maildir.keys():
        try:
            maildir.remove(key)
            removed += 1
        except (KeyError, FileNotFoundError):
            pass  # removed meanwhile
    return removed
