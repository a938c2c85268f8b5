"""Property: over many generated replies, the user's real address never leaves in any form.

Each generated reply has a random destination address written in random letter case, in random
positions of quoted lines (plain, ``<...>``, ``mailto:``, percent-escaped, HTML character
references), in text/plain and text/html parts of random charsets and transfer encodings, with CRLF
or LF line endings, sometimes next to an attachment, sometimes in the Subject. The rewritten reply:

- is sent (REPLIED) and passes the SES pre-flight validator;
- holds the address in no byte, in any case;
- holds it in no decoded text part either (transfer encoding and charset undone, then percent
  escapes and HTML references), and the alias stands exactly where each occurrence was;
- carries the attachment's bytes unchanged.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import html
import os
import urllib.parse
from dataclasses import dataclass, field

from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from forwarder.core import Outcome, prepare, validate_bytes
from forwarder.core.reply import reply
from tests.forwarder.core.strategies import Case, messages

ALIAS = "shop-7hq2@othermail.example"
REVERSE = "k3j5m7p9q2r4t6v8@othermail.example"
CONTACTS = {REVERSE: ("jane@example.com", "Jane Doe")}
FIXED = (ALIAS, REVERSE, "jane@example.com", "jane doe", "bypass@elsewhere.example", "reply-1@othermail.example")
#: Filler text a charset can hold; no "@", "%", "&", "<", ">" or "=", so filler alone never
#: spells an address or an escape (the address still touches it on either side).
ALPHABETS = {
    "us-ascii": "abcdefghij XYZ 0123456789.,;:!?()-",
    "utf-8": "abc xyz äöü ✓ 中文 😀 ÆØÅ.,-",
    "iso-8859-1": "abc xyz äöüß éèç ñ ÀÉ.,-",
    "windows-1252": "abc xyz äöü – “quoted” € .,-",
    "koi8-r": "abc привет мир ЖЩ.,-",
    "shift_jis": "abc あいうえおかきくけこ .,-",
    "iso-2022-jp": "abc あいうえお かきくけこ.,-",
}
SCALE = int(os.environ.get("OTHERMAIL_FUZZ_SCALE", "1"))


def profile(examples: int) -> settings:
    options: dict[str, object] = {
        "max_examples": examples * SCALE,
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    if os.environ.get("CI"):
        options.update(derandomize=True, database=None)
    return settings(**options)  # type: ignore[arg-type]  # a keyword bag for settings()


_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
LOCAL = st.from_regex(r"[a-z0-9](?:[a-z0-9._+-]{0,14}[a-z0-9])?", fullmatch=True).filter(lambda s: ".." not in s)
ADDRESS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    LOCAL,
    st.lists(_LABEL, min_size=1, max_size=3),
    st.sampled_from(["example", "test", "com", "org", "de"]),
)


def recase(address: str, flips: list[bool]) -> str:
    return "".join(ch.upper() if flip else ch for ch, flip in zip(address, flips + [False] * len(address)))


def escaped(address: str, form: str, is_html: bool) -> str:
    """One spelling of the address in a text; the HTML forms only in HTML."""
    local, _, domain = address.partition("@")
    if form == "angle":
        return f"&lt;{address}&gt;" if is_html else f"<{address}>"
    if form == "mailto":
        return f'<a href="mailto:{address}">{address}</a>' if is_html else f"mailto:{address}"
    if form == "percent":
        return f"mailto:{local}%40{domain.replace('.', '%2E', 1)}"
    if form == "decimal" and is_html:
        return f"{local}&#64;{domain}"
    if form == "hex" and is_html:
        return f"{local}&#X40;{domain.replace('.', '&#x2e;')}"
    if form == "named" and is_html:
        return f"{local}&commat;{domain}"
    return address


@dataclass
class Part:
    text: str
    occurrences: int


@dataclass
class Reply:
    raw: bytes
    destination: str
    parts: list[Part] = field(default_factory=list)
    attachment: bytes = b""


@st.composite
def text_part(draw: st.DrawFn, destination: str, charset: str, is_html: bool, first: bool) -> Part:
    alphabet = ALPHABETS[charset]
    filler = st.text(alphabet=alphabet, max_size=60)
    lines = []
    occurrences = 0
    for index in range(draw(st.integers(1, 8))):
        quote = draw(st.sampled_from(["", "> ", ">> ", "> > "]))
        line = quote + draw(filler)
        if draw(st.booleans()) or (first and index == 0):
            flips = draw(st.lists(st.booleans(), max_size=len(destination)))
            form = draw(st.sampled_from(["plain", "angle", "mailto", "percent", "decimal", "hex", "named"]))
            where = draw(st.sampled_from(["start", "middle", "end"]))
            spelled = escaped(recase(destination, flips), form, is_html)
            if where == "start":
                line = spelled + line
            elif where == "end":
                line = line + spelled
            else:
                line = quote + draw(filler) + " " + spelled + " " + draw(filler)
            occurrences += 2 if form == "mailto" and is_html else 1  # the link and its text
        lines.append(f"<div>{line}</div>" if is_html else line)
    return Part("\n".join(lines), occurrences)


def encode(text: str, charset: str, cte: str, eol: bytes) -> tuple[bytes, str]:
    data = text.encode(charset).replace(b"\n", eol)
    if cte == "7bit" and not data.isascii():
        cte = "8bit"
    if cte == "quoted-printable":
        return binascii.b2a_qp(data, istext=True), cte
    if cte == "base64":
        encoded = base64.b64encode(data)
        return eol.join(encoded[i : i + 76] for i in range(0, len(encoded), 76)), cte
    return data, cte


def entity(content_type: str, body: bytes, cte: str, eol: bytes) -> bytes:
    return (
        f"Content-Type: {content_type}".encode() + eol + f"Content-Transfer-Encoding: {cte}".encode() + eol + eol + body
    )


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    destination = draw(ADDRESS)
    assume(not any(destination in fixed for fixed in FIXED))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    shape = draw(st.sampled_from(["plain", "html", "alternative", "mixed"]))
    kinds = {"plain": [False], "html": [True]}.get(shape, [False, True])
    parts: list[Part] = []
    entities: list[bytes] = []
    for index, is_html in enumerate(kinds):
        charset = draw(st.sampled_from(sorted(ALPHABETS)))
        part = draw(text_part(destination, charset, is_html, first=index == 0))
        body, cte = encode(
            part.text, charset, draw(st.sampled_from(["7bit", "8bit", "quoted-printable", "base64"])), eol
        )
        subtype = "html" if is_html else "plain"
        flowed = "; format=flowed" if not is_html and draw(st.booleans()) else ""
        entities.append(entity(f'text/{subtype}; charset="{charset}"{flowed}', body, cte, eol))
        parts.append(part)
    attachment = b""
    if len(entities) == 1:
        top = entities[0]
    else:
        boundary = "----=_Part_" + draw(st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True))
        top = _multipart("multipart/alternative", boundary, entities, eol)
        if shape == "mixed":
            blob = base64.b64encode(draw(st.binary(min_size=1, max_size=300)))
            attachment = eol.join(blob[i : i + 76] for i in range(0, len(blob), 76))
            image = entity('application/octet-stream; name="a.bin"', attachment, "base64", eol)
            top = _multipart("multipart/mixed", boundary + "_m", [top, image], eol)
    subject = "Re: lunch"
    if draw(st.booleans()):
        spelled = recase(destination, draw(st.lists(st.booleans()))).replace("_", "=5F")
        subject = f"=?utf-8?q?Re:_{spelled}_=E2=9C=93?="
    head = [
        f"From: Me <{recase(destination, draw(st.lists(st.booleans())))}>",
        f"To: Jane <{REVERSE.upper() if draw(st.booleans()) else REVERSE}>",
        "Cc: bypass@elsewhere.example",
        f"Subject: {subject}",
        f"Reply-To: {destination}",
        f"Sender: {destination}",
        f"X-Mailer: client for {destination}",
        "MIME-Version: 1.0",
    ]
    raw = eol.join(line.encode() for line in head) + eol + top
    return Reply(raw, destination, parts, attachment)


def _multipart(content_type: str, boundary: str, entities: list[bytes], eol: bytes) -> bytes:
    out = f'Content-Type: {content_type}; boundary="{boundary}"'.encode() + eol + eol
    for item in entities:
        out += f"--{boundary}".encode() + eol + item + eol
    return out + f"--{boundary}--".encode() + eol


def readable(text: str) -> str:
    return html.unescape(urllib.parse.unquote(text)).lower()


@profile(300)
@given(replies())
def test_the_destination_address_never_leaves(case: Reply) -> None:
    note(case.raw.decode("utf-8", "replace"))
    result = reply(
        prepare(case.raw),
        alias_address=ALIAS,
        alias_display_name="",
        destination_addresses=[case.destination.upper()],
        reverse_to_real=CONTACTS,
        original_id=lambda _seen: None,
        message_id="<reply-1@othermail.example>",
    )
    assert result.outcome is Outcome.REPLIED, result.reason
    assert validate_bytes(result.raw) == []
    assert result.envelope_recipients == ("jane@example.com",)
    assert result.bypassed == ("bypass@elsewhere.example",)
    destination = case.destination.lower()
    assert destination.encode() not in result.raw.lower()

    message = email.message_from_bytes(result.raw, policy=email.policy.default)
    assert destination not in readable(str(message["Subject"]))
    texts = [p for p in message.walk() if p.get_content_maintype() == "text"]
    assert len(texts) == len(case.parts)
    for part, generated in zip(texts, case.parts):
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        text = payload.decode(part.get_content_charset() or "ascii")
        assert destination not in readable(text)
        assert readable(text).count(ALIAS) == generated.occurrences
    if case.attachment:
        assert case.attachment in result.raw


@profile(200)
@given(messages())
def test_hostile_replies_never_raise_and_what_is_sent_passes_the_pre_flight(case: Case) -> None:
    raw = f"To: {REVERSE}\r\n".encode() + case.raw
    result = reply(
        prepare(raw),
        alias_address=ALIAS,
        alias_display_name="Shop",
        destination_addresses=["jane.real@example.net"],
        reverse_to_real=CONTACTS,
        original_id=lambda seen: seen.replace("@", ".mapped@"),
        message_id="<reply-1@othermail.example>",
    )
    if result.outcome is Outcome.REPLIED:
        assert validate_bytes(result.raw) == []
        assert result.envelope_recipients == ("jane@example.com",)
    else:
        assert result.raw == b"" and result.reason
