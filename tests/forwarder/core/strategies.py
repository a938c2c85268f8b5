"""Hypothesis strategies for hostile mail, for the fuzz tests of the forwarding core.

The strategies build bytes as a sender could put them on the wire: header field names (valid and
odd), header values (7-bit, UTF-8, Latin-1 and other raw 8-bit, RFC 2047 words valid and broken,
folded with CRLF or LF, overlong, NUL, bare CR, bare LF, control characters), address lists
(quoted, grouped, broken), duplicated once-only fields, MIME trees (multipart nesting to depth 4,
boundaries missing, mismatched or never closed, 8-bit, base64 and quoted-printable parts, broken
charsets) and whole messages (CRLF, LF or mixed line endings; with, without or with a missing blank
line; huge header blocks). Issue 12 added inputs that once broke the core or leaked: address fields
with thousands of nested comments or groups and phrases of thousands of encoded words (12.17),
display names that read as an address, ``@`` look-alikes and encoded ``@`` included (12.16),
read-receipt and bounce-address requests (12.15), boundaries too long for a line, nested or in
RFC 2231 pieces (12.18), and messages without a Date (12.20).

Large inputs (overlong lines, thousands of fields) repeat a small drawn piece a drawn number of
times, so Hypothesis draws little, stays under its data limit and shrinks well.

:func:`messages` returns a :class:`Case`: the raw bytes and, when this module can tell where the
header block ends (from RFC 5322's grammar, not from the code under test), the body bytes a
forwarded copy must carry unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from hypothesis import strategies as st

CRLF = b"\r\n"
LF = b"\n"
ALIAS = "shop-7hq2@othermail.example"

# --- RFC 5322 grammar used as the oracle for "where does the header block end" ------------------

#: A field line: printable US-ASCII without colon, optional white space (obsolete syntax), colon.
_FIELD_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def header_line_kind(line: bytes) -> str:
    """How a physical header line (line ending removed) reads: field, continuation, drop, other."""
    if not line:
        return "blank"
    if line[:1] in (b" ", b"\t"):
        return "continuation"
    if line[:1] == b":":
        return "drop"  # a field with an empty name: not a field, not the end of the block either
    return "field" if _FIELD_LINE.match(line) else "other"


def block_is_plain(block: bytes) -> bool:
    """True when every physical line of ``block`` is a field, a continuation or a dropped line.

    Lines are split at LF (a CR before it belongs to the line ending), as RFC 5322 readers do
    with bare LF. Such a block ends exactly where its author ended it.
    """
    pieces = block.split(LF)
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the empty piece after the last line break
    for piece in pieces:
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if header_line_kind(piece) in ("blank", "other"):
            return False
    return True


# --- line endings ---------------------------------------------------------------------------------

EOL_STYLES = ("crlf", "lf", "mixed")


class Endings:
    """The line endings of one message: CRLF, LF, or a mix drawn line by line."""

    def __init__(self, style: str, rnd) -> None:  # rnd: a random.Random from st.randoms()
        self.style = style
        self.rnd = rnd

    def __repr__(self) -> str:
        return f"Endings({self.style!r})"

    def __call__(self) -> bytes:
        if self.style == "crlf":
            return CRLF
        if self.style == "lf":
            return LF
        return CRLF if self.rnd.random() < 0.5 else LF


@st.composite
def endings(draw: st.DrawFn) -> Endings:
    return Endings(draw(st.sampled_from(EOL_STYLES)), draw(st.randoms(use_true_random=False)))


# --- field names ----------------------------------------------------------------------------------

KNOWN_NAMES = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Reply-To",
    "Sender",
    "Return-Path",
    "Message-ID",
    "References",
    "In-Reply-To",
    "Date",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Content-Description",
    "DKIM-Signature",
    "DomainKey-Signature",
    "ARC-Seal",
    "ARC-Message-Signature",
    "ARC-Authentication-Results",
    "Authentication-Results",
    "X-Original-Authentication-Results",
    "X-Othermail-Loop",
    "X-Othermail-Original-From",
    "X-Othermail-Anything",
    "Auto-Submitted",
    "Precedence",
    "X-Autoreply",
    "X-Autorespond",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Post",
    "Received",
    "Delivered-To",
    "X-SES-Spam-Verdict",
    "X-SES-Receipt",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "Resent-Sender",
    "Disposition-Notification-To",
    "Return-Receipt-To",
    "Errors-To",
    "Mail-Followup-To",
    "Mail-Reply-To",
    "X-Original-To",
    "X-Original-Cc",
    "X-Original-Reply-To",
    "Comments",
    "Keywords",
    "X-Mailer",
    "Thread-Topic",
    "X-Confirm-Reading-To",
    "Read-Receipt-To",
    "Disposition-Notification-Options",
    "Generate-Delivery-Report",
    "X-PMRQC",
]
#: Read-receipt and bounce-address requests: rule 4 removes every one (issue 12.15).
RECEIPT_NAMES = [
    "Disposition-Notification-To",
    "Disposition-Notification-Options",
    "Return-Receipt-To",
    "Read-Receipt-To",
    "X-Confirm-Reading-To",
    "Errors-To",
    "Generate-Delivery-Report",
    "X-PMRQC",
]
#: Fields SES accepts once (SES_FACTS.md), plus the MIME ones of the same kind.
ONCE_ONLY_NAMES = [
    "From",
    "Sender",
    "Reply-To",
    "Return-Path",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Content-Description",
    "DKIM-Signature",
    "Delivered-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Help",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
]
ADDRESS_NAMES = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Sender",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "Disposition-Notification-To",
    "Errors-To",
    "Mail-Followup-To",
    "Return-Receipt-To",
    "Mail-Reply-To",
]
#: True one time in four, or in ten (Hypothesis draws the ends of an integer range often).
rarely = st.sampled_from([False, False, False, True])
seldom = st.sampled_from([False] * 9 + [True])
_FTEXT = st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":")


def _case_variants(names: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(names).flatmap(lambda n: st.sampled_from([n, n.upper(), n.lower(), n.swapcase()]))


#: Names a reader takes for field names (RFC 5322 ftext), from everyday to 1,200 characters.
valid_names = st.one_of(
    _case_variants(KNOWN_NAMES),
    st.text(alphabet=_FTEXT, min_size=1, max_size=30),
    st.integers(min_value=60, max_value=1_200).map(lambda n: "X-" + "N" * n),
).map(lambda s: s.encode("ascii"))

#: Names that are not field names, or only just: white space before the colon (obsolete syntax),
#: a colon inside, spaces, 8-bit, control characters, nothing at all.
odd_names = st.one_of(
    _case_variants(KNOWN_NAMES).map(lambda n: n.encode() + b" "),
    _case_variants(KNOWN_NAMES).map(lambda n: n.encode() + b"\t"),
    st.sampled_from(
        [
            b"X-A:B",
            b"From:To",
            b"X Spaced Name",
            b"From x",
            b"Subj\x00ect",
            b"X-\x7f",
            b"X-\x01ctl",
            b"",
            b" Continued",
            b"\tTabbed",
            b">From",
            b"--boundary",
            b"Content-Type ",
            b"X-\xc3\xbc-utf8",
            b"X-\xfc-latin1",
            b"\r",
            b"X-Bad\rName",
        ]
    ),
    st.text(
        alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF, blacklist_characters="\n:"),
        min_size=1,
        max_size=20,
    ).map(lambda s: s.encode("utf-8")),
)

names = st.one_of(valid_names, valid_names, valid_names, odd_names)


# --- header value fragments -----------------------------------------------------------------------

#: A fold: the value continues on the next physical line, after this white space.
FOLD = object()

CHARSETS = [
    b"utf-8",
    b"UTF-8",
    b"us-ascii",
    b"iso-8859-1",
    b"ISO-8859-15",
    b"windows-1252",
    b"shift_jis",
    b"koi8-r",
    b"big5",
    b"gb2312",
    b"euc-kr",
    b"utf-16",
]
BAD_CHARSETS = [
    b"x-unknown-cs",
    b"unknown-8bit",
    b"base64",
    b"hex",
    b"rot13",
    b"zlib",
    b"idna",
    b"undefined",
    b"unicode_escape",
    b"utf-8*en",
    b"utf-7",
    b"",
    b"utf-8\x80",
    b"\xff",
    b"iso-8859-1\x00",
    b'"utf-8"',
    b"utf-8 ",
    b"cp65001",
    b"x" * 200,
]

ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=0x20), max_size=25)
latin1_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=25)


def _encode_lossy(text: str, codec: str) -> bytes:
    return text.encode(codec, "ignore")


#: Raw 8-bit header text, undeclared, in the charsets senders really use.
raw_8bit = st.one_of(
    unicode_text.map(lambda t: t.encode("utf-8")),
    latin1_text.map(lambda t: t.encode("latin-1")),
    st.tuples(
        unicode_text, st.sampled_from(["shift_jis", "koi8_r", "big5", "gb2312", "cp1252", "euc_kr", "iso8859_5"])
    ).map(lambda p: _encode_lossy(*p)),
    st.binary(min_size=1, max_size=20).map(lambda b: bytes(c | 0x80 for c in b)),
)


def _q_encode(data: bytes) -> bytes:
    out = bytearray()
    for c in data:
        if c == 0x20:
            out += b"_"
        elif 0x21 <= c <= 0x7E and c not in b"=?_":
            out.append(c)
        else:
            out += b"=%02X" % c
    return bytes(out)


@st.composite
def valid_encoded_words(draw: st.DrawFn) -> bytes:
    """An RFC 2047 word that decodes: text in a real charset, B- or Q-encoded."""
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis"]))
    text = draw(unicode_text if charset == "utf-8" else latin1_text)
    data = text.encode(charset, "ignore")
    kind = draw(st.sampled_from([b"B", b"b", b"Q", b"q"]))
    payload = base64.b64encode(data) if kind in (b"B", b"b") else _q_encode(data)
    return (
        b"=?"
        + draw(st.sampled_from([charset.encode(), charset.upper().encode()]))
        + b"?"
        + kind
        + b"?"
        + payload
        + b"?="
    )


@st.composite
def broken_encoded_words(draw: st.DrawFn) -> bytes:
    """RFC 2047 words that do not decode, or decode to something hostile."""
    charset = draw(st.sampled_from(CHARSETS + BAD_CHARSETS))
    kind = draw(st.sampled_from([b"B", b"b", b"Q", b"q", b"X", b""]))
    payload = draw(
        st.one_of(
            st.sampled_from(
                [
                    b"!!!!",
                    b"abc",
                    b"a===",
                    b"====",
                    b"=ZZ",
                    b"=",
                    b"=4",
                    b"=\xff",
                    b"_ _",
                    b"\xc3\xa9",
                    b"PT91dGYtOD9iP1p6ND0/PQ",
                    b"",
                    b"AAAA" * 300,
                ]
            ),
            st.binary(max_size=30).map(lambda b: bytes(c for c in b if c not in b"?\r\n")),
            # decodes to header injection, NUL or controls
            st.sampled_from(
                [
                    b"x\r\nBcc: victim@example.com",
                    b"\x00\x01\x7f",
                    b"\r",
                    b"\n",
                    b"a@b.example>, <c@d.example",
                    b"\xed\xa0\x80",
                    b"\\ud800",
                ]
            ).map(base64.b64encode),
        )
    )
    word = b"=?" + charset + b"?" + kind + b"?" + payload + b"?="
    cut = draw(st.sampled_from(["whole", "whole", "no-end", "truncated", "doubled", "spaced"]))
    if cut == "no-end":
        return word[:-2]
    if cut == "truncated":
        return word[: draw(st.integers(min_value=2, max_value=max(2, len(word) - 1)))]
    if cut == "doubled":
        return word + word
    if cut == "spaced":
        return word.replace(b"?", b" ? ", 1)
    return word


encoded_words = st.one_of(valid_encoded_words(), broken_encoded_words())

#: Pieces of text with a line structure of their own: NUL, bare CR, bare LF, controls.
control_pieces = st.one_of(
    st.sampled_from(
        [
            b"\x00",
            b"\r",
            b"\n",
            b"\r\r",
            b"\n\n",
            b"\r\n",
            b"\r\n\r\n",
            b"\x0b",
            b"\x0c",
            b"\x1b[31m",
            b"\x7f",
            b"\x01\x02\x03",
            b"\t",
            b" \t ",
            b"\r \n",
            b"\x85",
            b"\xe2\x80\xa8",
        ]
    ),
    st.binary(min_size=1, max_size=6).map(lambda b: bytes(c & 0x1F for c in b)),
)

#: Over 998 characters on one line: without white space, foldable words, 8-bit, encoded words.
overlong = st.one_of(
    st.integers(min_value=990, max_value=1_400).map(lambda n: b"Y" * n),
    st.integers(min_value=200, max_value=500).map(lambda n: b"word " * n),
    st.integers(min_value=340, max_value=600).map(lambda n: "é€x".encode() * n),
    st.integers(min_value=15, max_value=40).map(lambda n: b"=?utf-8?b?" + b"QUJD" * 20 + b"?= " * 1 * n),
    st.integers(min_value=990, max_value=1_200).map(lambda n: b"<" + b"a" * n + b"@example.com>"),
)

specials = st.sampled_from(
    [b"@", b"<", b">", b'"', b",", b";", b":", b"(", b")", b"\\", b"[", b"]", b"=?", b"?=", b" ", b"  ", b"\t"]
)

fragments = st.one_of(
    ascii_text.map(str.encode),
    ascii_text.map(str.encode),
    raw_8bit,
    encoded_words,
    control_pieces,
    specials,
    overlong,
)


def value_tokens(fragment: st.SearchStrategy[bytes] = fragments, max_size: int = 8) -> st.SearchStrategy[list]:
    """A header value as a list of byte fragments and :data:`FOLD` markers."""
    return st.lists(st.one_of(fragment, fragment, fragment, st.just(FOLD)), max_size=max_size)


# --- address lists --------------------------------------------------------------------------------

LOCAL_PARTS = [
    b"a",
    b"jane.doe",
    b"first+tag",
    b"o'neil",
    b"x_y-z",
    b'"quoted local"',
    b'"a\\"b"',
    b"l" * 64,
    b"J\xc3\xb6rg",
    b"j\xf6rg",
    b"a..b",
    b".a",
    b"",
]
DOMAINS = [
    b"example.com",
    b"mail.example.co.uk",
    b"[192.0.2.1]",
    b"xn--bcher-kva.example",
    b"b\xc3\xbccher.example",
    b"localhost",
    b"example.com.",
    b"-bad-.example",
    b"",
    b"d" * 63 + b".example",
    b"exa mple.com",
]
DISPLAY_NAMES = [
    b"Jane Doe",
    b'"Doe, Jane"',
    b'"Jane \\"JD\\" Doe"',
    b"=?utf-8?q?J=C3=B6rg?=",
    b"J\xc3\xb6rg M\xc3\xbcller",
    b"J\xf6rg",
    b'"a@b.example"',
    b"a@b.example",
    b"Norton I., Emperor",
    b'""',
    b"(comment)",
    b'"unterminated',
    b"Bob (the builder)",
    b"=?utf-8?b?IkV2aWwiIDxldmlsQGV4YW1wbGUuY29tPg==?=",
    b"\x00\r",
    b"N" * 1_100,
]


@st.composite
def addr_specs(draw: st.DrawFn) -> bytes:
    if draw(rarely):
        return draw(st.sampled_from(LOCAL_PARTS)) + b"@" + draw(st.sampled_from(DOMAINS))
    local = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.+-_", min_size=1, max_size=12))
    return local.encode() + b"@" + draw(st.sampled_from(DOMAINS[:4]))


@st.composite
def mailboxes(draw: st.DrawFn) -> bytes:
    addr = draw(addr_specs())
    form = draw(st.sampled_from(["bare", "angle", "named", "named", "comment", "route", "broken"]))
    if form == "bare":
        return addr
    if form == "angle":
        return b"<" + addr + b">"
    name = draw(st.one_of(st.sampled_from(DISPLAY_NAMES), ascii_text.map(str.encode), raw_8bit))
    if form == "named":
        return name + b" <" + addr + b">"
    if form == "comment":
        return addr + b" (" + name.replace(b"(", b"").replace(b")", b"") + b")"
    if form == "route":
        return b"<@route.example,@other.example:" + addr + b">"
    return draw(
        st.sampled_from(
            [
                b"<<" + addr + b">>",
                addr + b">",
                b"<" + addr,
                name + b" <" + addr,
                b"@" + addr,
                addr + b"@",
                b"<>",
                b"<" + addr + b"> trailing",
                b"a b" + addr,
                b"<" + addr + b", " + addr + b">",
            ]
        )
    )


@st.composite
def address_lists(draw: st.DrawFn) -> list:
    """Tokens of an address list: mailboxes, groups, separators and folds (up to 80 addresses)."""
    tokens: list = []
    shape = draw(st.sampled_from(["few", "few", "few", "group", "empty-group", "many", "garbage"]))
    if shape == "empty-group":
        return [
            draw(st.sampled_from([b"undisclosed-recipients:;", b"Undisclosed recipients: ;", b":;", b"group:", b";"]))
        ]
    if shape == "garbage":
        return draw(value_tokens(max_size=4))
    if shape == "many":
        count = draw(st.integers(min_value=20, max_value=80))
        box = draw(mailboxes())
        tokens = []
        for i in range(count):
            tokens.append(b"u%d." % i + box if i % 2 else box.replace(b"@", b"%d@" % i, 1))
            tokens.append(b", ")
            if i % 7 == 6:
                tokens.append(FOLD)
        return tokens[:-1]
    boxes = draw(st.lists(mailboxes(), min_size=0, max_size=4))
    separators = st.sampled_from([b", ", b",", b" , ", b",,", b", ", b" "])
    for i, box in enumerate(boxes):
        if i:
            tokens.append(draw(separators))
            if draw(st.booleans()):
                tokens.append(FOLD)
        tokens.append(box)
    if shape == "group":
        tokens = [
            draw(st.sampled_from([b"Friends: ", b'"Group, Name": ', b"G:"])),
            *tokens,
            draw(st.sampled_from([b";", b"", b"; x@example.com"])),
        ]
    return tokens


# --- address fields that break recursive parsers, and names that look like addresses --------------


#: Nested comments (issue 12.17): thousands deep, closed or not, around or inside a mailbox.
@st.composite
def nested_comments(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=6_000))
    inner = draw(st.sampled_from([b"x", b"", b"a@b.example", b"\\)", b"=?utf-8?q?a?="]))
    closed = draw(st.sampled_from(["closed", "closed", "open", "half"]))
    closing = {"closed": depth, "open": 0, "half": depth // 2}[closed]
    return b"(" * depth + inner + b")" * closing


#: Many encoded words in one phrase (issue 12.17: the strict stdlib parser recursed on them).
many_encoded_words = st.tuples(
    st.one_of(valid_encoded_words(), st.sampled_from([b"=?utf-8?q?a?=", b"=?utf-8?b?QUJD?="])),
    st.integers(min_value=50, max_value=4_000),
    st.sampled_from([b" ", b"", b"\r\n "]),
).map(lambda p: p[2].join([p[0]] * p[1]))

#: Display names that read as an address (issue 12.16): "@", its look-alikes, in a comment, encoded.
AT_NAMES = [
    b'"security@paypal.com"',
    b"security@paypal.com",
    b'"security\xef\xbc\xa0paypal.com"',
    b'"security\xef\xb9\xabpaypal.com"',
    b"=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQ==?=",
    b"=?utf-8?q?security=40paypal.com?=",
    b"=?utf-8?b?c2VjdXJpdHnvvKBwYXlwYWwuY29t?=",
    b'"PayPal <service@paypal.com>"',
    b'"a @ b.example, c@d.example"',
    b'"@"',
    b"@@",
]


@st.composite
def hostile_mailboxes(draw: st.DrawFn) -> bytes:
    addr = draw(addr_specs())
    form = draw(
        st.sampled_from(["comment-before", "comment-after", "comment-name", "words", "at-name", "at-comment", "groups"])
    )
    if form == "comment-before":
        return draw(nested_comments()) + b" <" + addr + b">"
    if form == "comment-after":
        return addr + b" " + draw(nested_comments())
    if form == "comment-name":
        return b"Name " + draw(nested_comments()) + b" <" + addr + b">"
    if form == "words":
        return draw(many_encoded_words) + b" <" + addr + b">"
    if form == "at-name":
        return draw(st.sampled_from(AT_NAMES)) + b" <" + addr + b">"
    if form == "at-comment":
        return addr + b" (" + draw(st.sampled_from(AT_NAMES)).strip(b'"') + b")"
    depth = draw(st.integers(min_value=2, max_value=3_000))
    return b"g: " * depth + addr + b";" * draw(st.sampled_from([0, 1, depth]))


@st.composite
def hostile_address_fields(draw: st.DrawFn) -> Field:
    name = draw(st.sampled_from(["From", "From", "To", "Cc", "Reply-To", "Sender", "Resent-From"])).encode()
    boxes = draw(st.lists(hostile_mailboxes(), min_size=1, max_size=3))
    return Field(name, [b", ".join(boxes)])


@st.composite
def receipt_fields(draw: st.DrawFn) -> Field:
    name = draw(_case_variants(RECEIPT_NAMES)).encode()
    value = draw(st.one_of(mailboxes(), st.sampled_from([b"1", b"yes", b""])))
    return Field(name, [value])


# --- whole header fields --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A header field before its line endings are chosen: name, separator after the colon, value."""

    name: bytes
    value: list  # bytes fragments and FOLD markers
    space: bytes = b" "

    def render(self, eol: Endings) -> bytes:
        out = [self.name, b":", self.space]
        for token in self.value:
            if token is FOLD:
                out.append(eol() + (b"\t" if eol.rnd.random() < 0.2 else b" "))
            else:
                out.append(token)
        return b"".join(out)


colon_space = st.sampled_from([b" ", b" ", b" ", b"", b"\t", b"  "])


@st.composite
def free_fields(draw: st.DrawFn) -> Field:
    return Field(draw(names), draw(value_tokens()), draw(colon_space))


@st.composite
def address_fields(draw: st.DrawFn) -> Field:
    name = draw(_case_variants(ADDRESS_NAMES)).encode()
    return Field(name, draw(address_lists()), draw(colon_space))


MSG_IDS = [
    b"<m1@example.com>",
    b"<CA+abc=def@mail.example.net>",
    b"<no-at-sign>",
    b"m2@example.com",
    b"<a@b> <c@d>",
    b"<>",
    b"<\xc3\xa9@example.com>",
    b"<" + b"i" * 1_100 + b"@example.com>",
    b"(comment) <m3@example.com>",
    b"<m4@example.com",
    b"",
]


@st.composite
def structured_fields(draw: st.DrawFn) -> Field:
    """Message ids, dates, MIME-Version, Content-* and the decision's markers, valid or not."""
    kind = draw(st.sampled_from(["ids", "date", "mime", "ctype", "cte", "disposition", "markers"]))
    if kind == "ids":
        name = draw(st.sampled_from([b"Message-ID", b"In-Reply-To", b"References", b"Content-ID"]))
        ids = draw(st.lists(st.sampled_from(MSG_IDS), min_size=0, max_size=6))
        value: list = []
        for i, mid in enumerate(ids):
            if i:
                value.append(draw(st.sampled_from([b" ", FOLD, b""])))
            value.append(mid)
        return Field(name, value)
    if kind == "date":
        return Field(
            b"Date",
            [
                draw(
                    st.sampled_from(
                        [
                            b"Mon, 23 Nov 2026 11:00:00 +0100",
                            b"yesterday",
                            b"Mon, 32 Foo 99999 25:61:61 +9999",
                            b"",
                            b"Mo, 23 Nov 2026 11:00:00 \xb1 0100",
                        ]
                    )
                )
            ],
        )
    if kind == "mime":
        return Field(
            b"MIME-Version", [draw(st.sampled_from([b"1.0", b"1.0 (Generated)", b"2.0", b"", b"1.0\x00", b"\xc3\xa9"]))]
        )
    if kind == "ctype":
        return Field(b"Content-Type", [draw(content_type_values())])
    if kind == "cte":
        return Field(b"Content-Transfer-Encoding", [draw(st.sampled_from(CTES))])
    if kind == "disposition":
        filename = draw(st.one_of(ascii_text.map(str.encode), raw_8bit, overlong))
        return Field(b"Content-Disposition", [b'attachment; filename="' + filename + b'"'])
    return draw(
        st.sampled_from(
            [
                Field(b"Auto-Submitted", [b"auto-replied"]),
                Field(b"Auto-Submitted", [b"auto-generated"]),
                Field(b"Precedence", [b"auto_reply"]),
                Field(b"Precedence", [b"bulk"]),
                Field(b"X-Autoreply", [b"yes"]),
                Field(b"Return-Path", [b"<>"]),
                Field(b"Return-Path", [b"<bounce@example.com>"]),
                Field(b"X-Othermail-Loop", [b"0123456789abcdef0123"]),
                Field(b"X-Othermail-Loop", [b"b0c84e39d1031b59640a"]),  # the token of ALIAS
            ]
        )
    )


header_fields = st.one_of(free_fields(), free_fields(), address_fields(), structured_fields(), receipt_fields())


@st.composite
def duplicated_fields(draw: st.DrawFn) -> list[Field]:
    """A field SES accepts once, two to five times, with values of its kind."""
    name = draw(_case_variants(ONCE_ONLY_NAMES)).encode()
    count = draw(st.integers(min_value=2, max_value=5))
    key = name.lower()
    if key in {n.lower().encode() for n in ADDRESS_NAMES}:
        values = st.builds(lambda v: Field(name, v), address_lists())
    elif key in (b"message-id", b"in-reply-to", b"references", b"content-id"):
        values = st.sampled_from(MSG_IDS).map(lambda v: Field(name, [v]))
    elif key == b"content-type":
        values = content_type_values().map(lambda v: Field(name, [v]))
    else:
        values = value_tokens(max_size=4).map(lambda v: Field(name, v))
    return [draw(values) for _ in range(count)]


# --- MIME -----------------------------------------------------------------------------------------

CTES = [
    b"7bit",
    b"8bit",
    b"binary",
    b"base64",
    b"quoted-printable",
    b"BASE64",
    b" Quoted-Printable ",
    b"x-uuencode",
    b"base64; x=y",
    b"",
    b"q-p",
    b"7bit\x00",
]
LEAF_TYPES = [
    b"text/plain",
    b"text/html",
    b"TEXT/PLAIN",
    b"application/octet-stream",
    b"image/png",
    b"application/pdf",
    b"text/calendar",
    b"message/delivery-status",
    b"text",
    b"",
    b"text/plain/extra",
    b"multipart/mixed",
    b"\xc3\xa9/\xc3\xa9",
]
MULTIPART_SUBTYPES = [b"mixed", b"alternative", b"related", b"signed", b"digest", b"report", b"MIXED", b"x-unknown"]
PARAM_CHARSETS = [
    b"utf-8",
    b"UTF-8",
    b'"utf-8"',
    b"iso-8859-1",
    b"us-ascii",
    b"windows-1252",
    b"shift_jis",
    b"x-unknown",
    b"utf-8\x80",
    b'"unterminated',
    b"base64",
    b"rot13",
    b"utf-8*en",
    b"",
    b"utf-8; charset=latin1",
    b"\xe9",
]


def long_boundaries(min_size: int = 987) -> st.SearchStrategy[bytes]:
    """Boundaries too long for a line (issue 12.18): from ``min_size`` octets (986 still fit in
    `` boundary="..."`` and in ``--boundary--``) to 1,400."""
    return st.tuples(
        st.sampled_from([b"L", b"=_Part_", b"0123456789abcdef", b"-"]),
        st.integers(min_value=min_size, max_value=1_400),
    ).map(lambda p: (p[0] * (p[1] // len(p[0]) + 1))[: p[1]])


#: Boundaries: token characters, characters that need quotes, one over RFC 2046's 70, 8-bit, and
#: now and then one too long for any line.
boundaries = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=30).map(
        str.encode
    ),
    st.sampled_from(
        [
            b"=_Part_0_1234.5678",
            b"a b",
            b"(paren)",
            b"----=_NextPart_000_0000",
            b"b" * 71,
            b"x",
            b"-",
            b"\xc3\xa9",
            b"zz",
        ]
    ),
    st.sampled_from([False] * 7 + [True]).flatmap(lambda long: long_boundaries(960) if long else st.just(b"=_short")),
)
content_type_parameters = st.one_of(
    st.sampled_from(PARAM_CHARSETS).map(lambda c: b"charset=" + c),
    boundaries.map(lambda b: b'boundary="' + b + b'"'),
    boundaries.map(lambda b: b"boundary=" + b),
    st.one_of(ascii_text.map(str.encode), raw_8bit).map(lambda n: b'name="' + n + b'"'),
    st.sampled_from(
        [
            b"name*=utf-8''%C3%A9t%C3%A9.pdf",
            b"report-type=delivery-status",
            b"format=flowed; delsp=yes",
            b'x="a \\"b\\""',
            b"=novalue",
            b"",
        ]
    ),
)


@st.composite
def content_type_values(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(LEAF_TYPES + [b"multipart/" + s for s in MULTIPART_SUBTYPES]))
    params = draw(st.lists(content_type_parameters, max_size=3))
    separator = draw(st.sampled_from([b"; ", b";", b";\r\n\t", b" ; "]))
    return separator.join([ctype, *params]) if params else ctype


@st.composite
def payloads(draw: st.DrawFn, eol: bytes) -> bytes:
    """Decoded content of a leaf: text lines, 8-bit, binary, long lines, NUL, bare CR."""
    pieces = draw(
        st.lists(
            st.one_of(
                ascii_text.map(str.encode),
                raw_8bit,
                st.binary(max_size=60),
                control_pieces,
                st.just(eol),
                st.just(eol),
                st.tuples(
                    st.sampled_from([b"x", b"ab ", b"\xc3\xa9", b"=", b"\t", b"y" * 75 + b"="]),
                    st.integers(min_value=300, max_value=1_500),
                ).map(lambda p: p[0] * p[1]),
            ),
            max_size=12,
        )
    )
    return b"".join(pieces)


def _wrap(data: bytes, width: int, eol: bytes) -> bytes:
    return b"".join(data[i : i + width] + eol for i in range(0, len(data), width))


@st.composite
def encoded_payloads(draw: st.DrawFn, cte: bytes, eol: bytes) -> bytes:
    """A leaf's body as written under its Content-Transfer-Encoding: proper, unwrapped or broken."""
    data = draw(payloads(eol))
    how = draw(st.sampled_from(["proper", "proper", "unwrapped", "broken"]))
    kind = cte.strip().lower()
    if kind == b"base64":
        encoded = base64.b64encode(data)
        if how == "proper":
            return _wrap(encoded, 76, eol)
        if how == "unwrapped":
            return encoded + eol
        return _wrap(encoded[: len(encoded) // 2] + b"!*" + encoded[len(encoded) // 2 + 3 :], 80, eol)
    if kind == b"quoted-printable":
        encoded = binascii.b2a_qp(data, istext=False)
        if eol == CRLF:
            encoded = encoded.replace(b"=\n", b"=\r\n")
        if how == "proper":
            return encoded
        if how == "unwrapped":
            return encoded.replace(b"=\r\n", b"").replace(b"=\n", b"")
        return encoded + b"=ZZ=4=" + eol
    return data


@dataclass
class Entity:
    """A MIME entity rendered: its header fields (without line endings) and its body bytes."""

    fields: list[bytes]
    body: bytes

    def as_bytes(self, eol: bytes) -> bytes:
        return b"".join(f + eol for f in self.fields) + eol + self.body


@st.composite
def leaves(draw: st.DrawFn, eol: bytes) -> Entity:
    ctype = draw(st.sampled_from(LEAF_TYPES))
    fields = []
    if ctype or draw(st.booleans()):
        value = ctype
        if draw(st.booleans()):
            value += b"; charset=" + draw(st.sampled_from(PARAM_CHARSETS))
        if draw(rarely):
            value += b'; name="' + draw(st.one_of(ascii_text.map(str.encode), raw_8bit)) + b'"'
        fields.append(b"Content-Type: " + value)
    cte = draw(st.sampled_from(CTES))
    if cte or draw(st.booleans()):
        fields.append(b"Content-Transfer-Encoding: " + cte)
    if draw(rarely):
        fields.append(
            b'Content-Disposition: attachment; filename="'
            + draw(st.sampled_from([b"a.pdf", b"\xc3\xa9t\xc3\xa9.pdf", b"f" * 1_100 + b".bin"]))
            + b'"'
        )
    return Entity(fields, draw(encoded_payloads(cte, eol)))


@st.composite
def attached_messages(draw: st.DrawFn, eol: bytes, depth: int) -> Entity:
    inner = draw(mime_entities(eol=eol, depth=depth + 1))
    head = [b"From: inner@example.com", b"Subject: attached", *inner.fields]
    return Entity([b"Content-Type: message/rfc822"], Entity(head, inner.body).as_bytes(eol))


@st.composite
def multiparts(draw: st.DrawFn, eol: bytes, depth: int) -> Entity:
    subtype = draw(st.sampled_from(MULTIPART_SUBTYPES))
    boundary = draw(boundaries)
    declared = draw(st.sampled_from(["quoted", "plain", "plain", "missing", "other", "empty"]))
    ctype = b"Content-Type: multipart/" + subtype
    if subtype == b"report":
        ctype += b"; report-type=" + draw(st.sampled_from([b"delivery-status", b"feedback-report", b"x"]))
    if declared == "quoted":
        ctype += b'; boundary="' + boundary + b'"'
    elif declared == "plain":
        ctype += b"; boundary=" + boundary
    elif declared == "other":
        ctype += b"; boundary=declared-but-unused"
    elif declared == "empty":
        ctype += b'; boundary=""'
    children = draw(st.lists(mime_entities(eol=eol, depth=depth + 1), max_size=4 if depth < 3 else 2))
    delimiter = b"--" + boundary
    out = []
    if draw(st.booleans()):
        out.append(
            draw(
                st.sampled_from(
                    [b"This is a multi-part message in MIME format.", b"", b"p" * 1_200, b"\xc3\xa9 preamble"]
                )
            )
            + eol
        )
    for child in children:
        padding = draw(st.sampled_from([b"", b"", b"", b" \t"]))
        out.append(delimiter + padding + eol + child.as_bytes(eol) + eol)
    closing = draw(st.sampled_from(["closed", "closed", "closed", "never", "twice", "no-eol"]))
    if closing == "closed":
        out.append(delimiter + b"--" + eol)
    elif closing == "twice":
        out.append(delimiter + b"--" + eol + delimiter + b"--" + eol)
    elif closing == "no-eol":
        out.append(delimiter + b"--")
    if closing != "never" and draw(st.booleans()):
        out.append(draw(st.sampled_from([b"epilogue", b"e" * 1_100, b"--" + boundary + b"--"])) + eol)
    return Entity([ctype], b"".join(out))


def mime_entities(eol: bytes, depth: int = 0) -> st.SearchStrategy[Entity]:
    """A MIME entity; multipart and message/rfc822 nest, to depth 4 at most."""
    if depth >= 4:
        return leaves(eol)
    return st.one_of(leaves(eol), leaves(eol), multiparts(eol, depth), attached_messages(eol, depth))


# --- whole messages -------------------------------------------------------------------------------


class Case:
    """A generated message; ``body`` is the body a forwarded copy must carry, when known.

    A plain class, not a dataclass, so that Hypothesis prints a failing example with ``__repr__``.
    """

    __slots__ = ("raw", "body", "note")

    def __init__(self, raw: bytes, body: bytes | None, note: str = "") -> None:
        self.raw = raw
        self.body = body
        self.note = note

    def __repr__(self) -> str:
        shown = self.raw if len(self.raw) <= 3_000 else self.raw[:3_000] + b"..."
        return f"Case(raw={shown!r} [{len(self.raw)} bytes], body_known={self.body is not None}, note={self.note!r})"


FIRST_BODY_LINES = [
    b"This first body line has no colon",
    b"<html><body>",
    b"--boundary",
    b"Hello,",
    b"\xc3\xa9t\xc3\xa9 sans s\xc3\xa9parateur",
    b"x" * 1_200,
]


def assemble_message(
    fields: list[bytes],
    body: bytes,
    eol: Endings,
    separator: str,
    mbox: bool = False,
    leading: bytes | None = None,
) -> Case:
    """Join rendered fields and a body the way ``separator`` says, and work out the known body.

    ``separator``: ``blank`` (a blank line, as RFC 5322 wants), ``missing`` (the body's first
    line follows the last field directly), ``none`` (no body at all) or ``none-open`` (no body
    and no line ending after the last field).
    """
    head = b""
    if mbox:
        head += b"From sender@example.com Fri May  3 10:00:00 2024" + eol()
    if leading is not None:
        head += leading + eol()
    block = b"".join(f + eol() for f in fields)
    plain = block_is_plain(block) and (leading is None or header_line_kind(leading) == "continuation")
    if separator == "blank":
        raw = head + block + eol() + body
        return Case(raw, body if plain else None, separator)
    if separator == "missing":
        first = FIRST_BODY_LINES[len(body) % len(FIRST_BODY_LINES)]
        rest = first + eol() + body
        return Case(head + block + rest, rest if plain else None, separator)
    if separator == "none-open" and block:
        block = block[: -2 if block.endswith(CRLF) else -1]
    return Case(head + block, b"" if plain else None, separator)


separators = st.sampled_from(["blank", "blank", "blank", "blank", "missing", "none", "none-open"])


@st.composite
def messages(
    draw: st.DrawFn,
    fields: st.SearchStrategy[Field] = header_fields,
    max_fields: int = 14,
    mime: bool = True,
) -> Case:
    """A whole message: fields of every kind, duplicates, a MIME tree, odd line endings."""
    eol = draw(endings())
    body_eol = draw(st.sampled_from([CRLF, LF])) if eol.style == "mixed" else eol()
    chosen = draw(st.lists(fields, max_size=max_fields))
    for group in draw(st.lists(duplicated_fields(), max_size=2)):
        chosen.extend(group)
    if not draw(rarely):
        chosen.insert(0, Field(b"From", draw(st.one_of(address_lists(), st.just([b"Jane <jane@example.com>"])))))
    rendered = [f.render(eol) for f in chosen]
    if mime and draw(st.booleans()):
        entity = draw(mime_entities(eol=body_eol))
        rendered.extend(entity.fields)
        body = entity.body
    else:
        body = draw(payloads(body_eol))
    order = draw(st.permutations(range(len(rendered)))) if len(rendered) < 30 else range(len(rendered))
    ordered = [rendered[i] for i in order]
    leading = draw(st.sampled_from([None, None, None, b" leading continuation", b"\tx"]))
    mbox = draw(seldom)
    return assemble_message(ordered, body, eol, draw(separators), mbox, leading)


@st.composite
def address_messages(draw: st.DrawFn) -> Case:
    """Messages whose header block is mostly address fields, duplicated or not."""
    return draw(
        messages(fields=st.one_of(address_fields(), address_fields(), structured_fields()), max_fields=8, mime=False)
    )


@st.composite
def mime_messages(draw: st.DrawFn) -> Case:
    """A plain header block over a MIME tree: the body is what is being fuzzed."""
    eol = draw(endings())
    body_eol = draw(st.sampled_from([CRLF, LF]))
    entity = draw(mime_entities(eol=body_eol))
    fields = [
        b"From: Jane <jane@example.com>",
        b"To: " + ALIAS.encode(),
        b"Subject: mime",
        b"MIME-Version: 1.0",
        *entity.fields,
    ]
    return assemble_message(fields, entity.body, eol, draw(st.sampled_from(["blank", "blank", "missing"])))


@st.composite
def huge_header_blocks(draw: st.DrawFn) -> Case:
    """Thousands of fields: a few drawn templates repeated, numbered so they differ."""
    eol = draw(endings())
    templates = [f.render(eol)[:300] for f in draw(st.lists(header_fields, min_size=1, max_size=5))]
    count = draw(st.integers(min_value=1_000, max_value=4_000))
    fields = [b"From: Jane <jane@example.com>"]
    for i in range(count):
        template = templates[i % len(templates)]
        fields.append(b"X-Filler-%d: %d " % (i, i) + template if i % 3 == 0 else template)
    body = draw(st.sampled_from([b"short body" + eol(), b"", b"x" * 1_200 + eol()]))
    return assemble_message(fields, body, eol, draw(separators))


@st.composite
def long_boundary_messages(draw: st.DrawFn) -> Case:
    """A multipart message (maybe nested) whose boundary, or a nested one, is too long for a line."""
    eol = draw(st.sampled_from([CRLF, LF]))
    long = draw(long_boundaries())
    # leaves body.py can repair: header lines that fit (a part's header line over 998 has no
    # repair at all), and no "multipart" type without a boundary
    short_headers = leaves(eol).filter(lambda e: all(len(f) <= 998 and b"multipart" not in f.lower() for f in e.fields))
    children = draw(st.lists(short_headers, min_size=1, max_size=3))
    where = draw(st.sampled_from(["top", "nested", "both"]))
    inner_boundary = long if where != "top" else b"inner-short"
    inner = Entity(
        [b"Content-Type: multipart/alternative;" + eol + b' boundary="' + inner_boundary + b'"'],
        b"".join(b"--" + inner_boundary + eol + c.as_bytes(eol) + eol for c in children)
        + b"--"
        + inner_boundary
        + b"--"
        + eol,
    )
    outer_boundary = long + b"-outer" if where != "nested" else b"outer-short"
    param = draw(st.sampled_from(["quoted", "rfc2231"]))
    if param == "quoted":
        ctype = b"Content-Type: multipart/mixed;" + eol + b' boundary="' + outer_boundary + b'"'
    else:
        half = len(outer_boundary) // 2
        ctype = (
            b"Content-Type: multipart/mixed;"
            + eol
            + b' boundary*0="'
            + outer_boundary[:half]
            + b'";'
            + eol
            + b' boundary*1="'
            + outer_boundary[half:]
            + b'"'
        )
    parts = [*children[:1], inner]
    body = b"preamble" + eol + b"".join(b"--" + outer_boundary + eol + p.as_bytes(eol) + eol for p in parts)
    body += b"--" + outer_boundary + b"--" + eol + b"epilogue" + eol
    fields = [
        b"From: Jane <jane@example.com>",
        b"To: " + ALIAS.encode(),
        b"Subject: long boundary",
        b"MIME-Version: 1.0",
        ctype,
    ]
    return Case(eol.join(fields) + eol + eol + body, body, "long-boundary")


@st.composite
def hostile_address_messages(draw: st.DrawFn) -> Case:
    """Address fields nested thousands deep, many encoded words, names that look like addresses;
    with or without a Date and with read-receipt requests."""
    eol = draw(endings())
    chosen = draw(st.lists(hostile_address_fields(), min_size=1, max_size=3))
    chosen += draw(st.lists(receipt_fields(), max_size=2))
    if draw(st.booleans()):
        chosen.append(Field(b"Date", [b"Fri, 03 May 2024 12:00:00 +0000"]))
    return assemble_message([f.render(eol) for f in chosen], b"body" + eol(), eol, "blank")
