"""Header text: decoding what senders wrote, and encoding what SES accepts.

Decoding never raises. Senders write raw 8-bit headers in any charset (Shift_JIS, Big5,
KOI8-U...), encoded words with unknown charsets, and broken base64; each is read as well as it can
be and the worst case is a replacement character, never an exception.

Encoding produces 7-bit header lines (SES rejects non-ASCII header content) folded so that no
physical line is longer than ``MAX_LINE`` (RFC 5322 section 2.1.1, and SES's 1,000-character line
rule, which counts the CRLF).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import quopri
import re

MAX_LINE = 998
FOLD_AT = 78
#: Lines of RFC 2047 words are kept to this length so that no word exceeds 75 characters.
ENCODED_LINE = 75

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"^[ \t\r\n]*$")
_TOKEN_SPECIAL = re.compile(r'[()<>\[\]:;@\\,."]')


#: Codecs Python knows that are not charsets (or that raise on ordinary input).
_NOT_CHARSETS = frozenset({"undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "mbcs", "oem"})


@functools.lru_cache(maxsize=256)
def _codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset name, or None when it names no text charset."""
    if not charset:
        return None
    name = charset.split("*", 1)[0].strip().strip('"').lower()  # RFC 2231 language suffix
    if not name.isascii() or name in ("unknown-8bit", "x-unknown", "unknown"):
        return None
    if name in ("ks_c_5601-1987", "ks_c_5601"):
        name = "cp949"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, UnicodeError):
        return None
    # codecs.lookup names "unicode_escape" "unicode-escape": compare in the spelling of the set
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_CHARSETS:
        return None  # base64, hex, rot13, zlib... are codecs, not charsets
    return info.name


def _decode(raw: bytes, codec: str, errors: str = "strict") -> str:
    """Decode, with no lone surrogates in the result (they cannot be encoded again)."""
    text = raw.decode(codec, errors)
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_bytes(raw: bytes, fallback_charset: str | None = None) -> str:
    """Decode raw header bytes: UTF-8 first, then the message's own charset, then cp1252.

    Undeclared 8-bit header bytes are usually in the charset of the message body, which is why the
    caller passes the top-level ``charset`` parameter as the fallback.
    """
    if raw.isascii():
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = _codec(fallback_charset)
    if codec:
        try:
            return _decode(raw, codec)
        except (UnicodeError, ValueError, LookupError):
            pass
    return raw.decode("cp1252", "replace")


def _decode_word(charset: bytes, kind: bytes, payload: bytes) -> str | None:
    try:
        if kind in (b"b", b"B"):
            data = base64.b64decode(payload + b"=" * (-len(payload) % 4), validate=True)
        else:
            data = quopri.decodestring(payload.replace(b"_", b" "), header=False)
    except (binascii.Error, ValueError):
        return None
    codec = _codec(charset.decode("ascii", "replace")) or "utf-8"
    try:
        return _decode(data, codec)
    except (UnicodeError, ValueError, LookupError):
        return _decode(data, codec, "replace")


def decode_header_text(raw: bytes, fallback_charset: str | None = None) -> str:
    """Decode a header value: raw 8-bit bytes and RFC 2047 encoded words alike.

    White space between two adjacent encoded words is dropped (RFC 2047 section 6.2); a word that
    cannot be decoded is kept as it was written.
    """
    if b"=?" not in raw:
        return decode_bytes(raw, fallback_charset)
    out: list[str] = []
    pos = 0
    last_was_word = False
    for match in _ENCODED_WORD.finditer(raw):
        between = raw[pos : match.start()]
        if not (last_was_word and _BETWEEN_WORDS.match(between)):
            out.append(decode_bytes(between, fallback_charset))
        word = _decode_word(match.group(1), match.group(2), match.group(3))
        if word is None:
            out.append(decode_bytes(match.group(0)))
            last_was_word = False
        else:
            out.append(word)
            last_was_word = True
        pos = match.end()
    out.append(decode_bytes(raw[pos:], fallback_charset))
    return "".join(out)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Text that may go into a header: no CR, LF, NUL or other control characters."""
    return _CONTROL_CHARACTERS.sub(" ", text).strip()


def fold(name: str, value: str) -> list[bytes] | None:
    """Fold an ASCII value at white space into lines of at most ``FOLD_AT`` where possible.

    Returns None when a run without white space is too long for ``MAX_LINE``: the caller must
    then encode the value instead.
    """
    lines: list[str] = []
    current = f"{name}:"
    bare = True
    for word in value.split(" "):
        if not word:
            continue
        if not bare and len(current) + 1 + len(word) > FOLD_AT:
            lines.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
        bare = False
    lines.append(current)
    if any(len(line) > MAX_LINE for line in lines):
        return None
    return [line.encode("ascii") for line in lines]


def encode_unstructured(name: str, text: str) -> list[bytes]:
    """Lines of a header whose value is free text: plain when ASCII, RFC 2047 words otherwise."""
    text = clean_text(text)
    if text.isascii():
        folded = fold(name, text)
        if folded is not None:
            return folded
    words = _words(text)
    if len(name) + 2 + len(words[0]) > MAX_LINE:  # a name too long to share its line with a word
        return [f"{name}:".encode("ascii"), *(f" {w}".encode("ascii") for w in words)]
    return [f"{name}: {words[0]}".encode("ascii"), *(f" {w}".encode("ascii") for w in words[1:])]


#: UTF-8 bytes per encoded word: ``=?utf-8?b?`` + 60 base64 characters + ``?=`` is 72 characters,
#: under RFC 2047's limit of 75, and a folded line `` word`` stays under 78.
_WORD_BYTES = 45


def _words(text: str) -> list[str]:
    """RFC 2047 B-encoded words of UTF-8 text, never splitting a character between two words.

    Each word holds as many whole characters as fit in ``_WORD_BYTES``: the text is encoded once
    and cut before the last UTF-8 lead byte within reach (issue 15: a loop over every character
    was most of the cost of a rewritten non-ASCII header)."""
    data = text.encode("utf-8", "replace")
    size = len(data)
    words: list[str] = []
    start = 0
    while True:
        end = start + _WORD_BYTES
        if end >= size:
            words.append(f"=?utf-8?b?{binascii.b2a_base64(data[start:], newline=False).decode('ascii')}?=")
            return words
        while data[end] & 0xC0 == 0x80:  # a continuation byte: the character started before
            end -= 1
        words.append(f"=?utf-8?b?{binascii.b2a_base64(data[start:end], newline=False).decode('ascii')}?=")
        start = end


def encode_words(text: str) -> str:
    """Text as RFC 2047 words only, none longer than 75 characters, separated by spaces."""
    return " ".join(_words(clean_text(text)))


def encode_phrase(text: str) -> str:
    """A display name as an RFC 5322 phrase: a quoted string, or RFC 2047 words when non-ASCII.

    An ``@`` or any other special character is only ever emitted inside quotes or inside an encoded
    word, so no client can read part of a display name as an address.
    """
    text = clean_text(text)
    if not text:
        return ""
    if text.isascii():
        if not _TOKEN_SPECIAL.search(text):
            return text
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return encode_words(text)
