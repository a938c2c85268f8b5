"""forwarder.core.text: decoding what senders write, encoding what SES accepts."""

from __future__ import annotations

import base64
import email.header
import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core import text as text_module
from forwarder.core.text import (
    FOLD_AT,
    MAX_LINE,
    clean_text,
    decode_bytes,
    decode_header_text,
    encode_phrase,
    encode_unstructured,
    fold,
)

TEXT_CHARSETS = [
    None,
    "utf-8",
    "iso-8859-1",
    "windows-1252",
    "shift_jis",
    "koi8-u",
    "big5",
    "ks_c_5601-1987",
    "unknown-8bit",
    "x-no-such-charset",
    '"utf-8"',
    "utf-8*en",
]


def rfc2047_decode(value: str) -> str:
    """Decode with the standard library, independently of the code under test."""
    return str(email.header.make_header(email.header.decode_header(value)))


def unquoted_at_or_open_quote(phrase: str) -> bool:
    """True when ``phrase`` has an ``@`` outside a quoted string, or an unterminated quote."""
    quoted = escaped = False
    for ch in phrase:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "@":
            return True
    return quoted


# --- decode_bytes ------------------------------------------------------------------------------


def test_decode_bytes_ascii_and_utf8() -> None:
    assert decode_bytes(b"plain") == "plain"
    assert decode_bytes("Grüße ☕".encode()) == "Grüße ☕"


def test_decode_bytes_utf8_wins_over_declared_charset() -> None:
    assert decode_bytes("Grüße".encode(), "iso-8859-1") == "Grüße"


def test_decode_bytes_uses_the_fallback_charset() -> None:
    assert decode_bytes("Grüße".encode("iso-8859-1"), "iso-8859-1") == "Grüße"
    assert decode_bytes("Привет".encode("koi8-u"), "KOI8-U") == "Привет"


def test_decode_bytes_raw_shift_jis_with_fallback_charset() -> None:
    raw = "日本語の件名".encode("shift_jis")
    assert decode_bytes(raw, "Shift_JIS") == "日本語の件名"
    assert decode_header_text(raw, "shift_jis") == "日本語の件名"


def test_decode_bytes_cp1252_when_nothing_else_fits() -> None:
    assert decode_bytes(b"\x93quoted\x94 \x80") == "\u201cquoted\u201d \u20ac"
    # a charset this code does not know falls back to cp1252 as well
    assert decode_bytes(b"caf\xe9", "x-no-such-charset") == "café"
    assert decode_bytes(b"caf\xe9", "unknown-8bit") == "café"


def test_decode_bytes_wrong_fallback_charset_still_decodes() -> None:
    # not valid Shift_JIS: the declared charset fails and cp1252 takes over
    assert decode_bytes(b"caf\xe9\xff", "shift_jis") == "caf\xe9\xff"


def test_decode_bytes_undecodable_cp1252_becomes_replacement_character() -> None:
    assert decode_bytes(b"a\x81b") == "a\ufffdb"


def test_ks_c_5601_is_read_as_cp949() -> None:
    raw = "한국어".encode("cp949")
    assert decode_bytes(raw, "ks_c_5601-1987") == "한국어"
    word = b"=?ks_c_5601-1987?b?" + base64.b64encode(raw) + b"?="
    assert decode_header_text(word) == "한국어"


# --- decode_header_text ------------------------------------------------------------------------


def test_decode_q_and_b_words() -> None:
    assert decode_header_text(b"=?iso-8859-1?q?R=E9union_lundi?=") == "Réunion lundi"
    assert decode_header_text(b"=?UTF-8?B?" + base64.b64encode("Grüße".encode()) + b"?=") == "Grüße"


def test_adjacent_encoded_words_are_joined() -> None:
    raw = b"=?utf-8?q?Hello?= =?utf-8?q?World?=\t =?utf-8?b?IQ==?="
    assert decode_header_text(raw) == "HelloWorld!"


def test_words_split_inside_a_multibyte_character_join() -> None:
    data = "日本".encode()  # 6 bytes, split after the 4th, inside the second character
    raw = b"=?utf-8?b?" + base64.b64encode(data[:3]) + b"?= =?utf-8?b?" + base64.b64encode(data[3:]) + b"?="
    assert decode_header_text(raw) == "日本"


def test_text_between_words_is_kept() -> None:
    raw = b"Re: =?utf-8?q?caf=C3=A9?= and =?utf-8?q?th=C3=A9?= !"
    assert decode_header_text(raw) == "Re: café and thé !"


def test_unknown_charset_in_a_word_is_read_as_utf8() -> None:
    assert decode_header_text(b"=?x-martian?q?caf=C3=A9?=") == "café"


def test_word_whose_bytes_do_not_fit_its_charset_uses_replacement() -> None:
    assert decode_header_text(b"=?utf-8?q?caf=E9?=") == "caf\ufffd"


def test_rfc2231_language_suffix_in_charset() -> None:
    assert decode_header_text(b"=?utf-8*fr?q?caf=C3=A9?=") == "café"


def test_broken_base64_word_is_kept_as_written() -> None:
    # one base64 character can never be decoded
    assert decode_header_text(b"Subject =?utf-8?b?Q?=") == "Subject =?utf-8?b?Q?="


def test_missing_base64_padding_is_tolerated() -> None:
    assert decode_header_text(b"=?utf-8?b?YWI?=") == "ab"


def test_not_an_encoded_word_is_left_alone() -> None:
    assert decode_header_text(b"=?utf-8?x?abc?= and =? broken") == "=?utf-8?x?abc?= and =? broken"


def test_raw_8bit_around_encoded_words_uses_fallback() -> None:
    raw = "Grüße".encode("iso-8859-1") + b" =?utf-8?q?caf=C3=A9?="
    assert decode_header_text(raw, "iso-8859-1") == "Grüße café"


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.one_of(
                st.binary(max_size=20),
                st.builds(
                    lambda cs, kind, payload: b"=?" + cs + b"?" + kind + b"?" + payload + b"?=",
                    st.sampled_from(
                        [b"utf-8", b"iso-8859-1", b"shift_jis", b"x-bogus", b"UTF-8*en", b"gb2312", b"us-ascii"]
                    ),
                    st.sampled_from([b"q", b"Q", b"b", b"B"]),
                    st.binary(max_size=30).map(lambda b: bytes(c for c in b if c not in b"? \t\r\n")),
                ),
            ),
            max_size=6,
        ).map(b" ".join),
    ),
    charset=st.sampled_from(TEXT_CHARSETS),
)
def test_decoding_never_raises(raw: bytes, charset: str | None) -> None:
    text = decode_header_text(raw, charset)
    assert isinstance(text, str)
    assert isinstance(decode_bytes(raw, charset), str)


# --- clean_text --------------------------------------------------------------------------------


def test_clean_text_removes_control_characters() -> None:
    assert clean_text("  a\r\nb\x00c\x7fd\te  ") == "a  b c d e"
    assert clean_text("\r\n") == ""


# --- fold --------------------------------------------------------------------------------------


def test_fold_short_value_is_one_line() -> None:
    assert fold("Subject", "hello world") == [b"Subject: hello world"]


def test_fold_breaks_at_white_space_near_78() -> None:
    value = " ".join(["word"] * 60)
    lines = fold("Subject", value)
    assert lines is not None and len(lines) > 1
    assert all(len(line) <= FOLD_AT for line in lines)
    assert all(line.startswith(b" ") for line in lines[1:])
    assert b"".join(lines) == b"Subject: " + value.encode()


def test_fold_long_word_stays_whole_up_to_998() -> None:
    lines = fold("Subject", "x" * (MAX_LINE - len("Subject: ")))
    assert lines == [b"Subject: " + b"x" * 989]
    assert len(lines[0]) == MAX_LINE


def test_fold_word_too_long_for_a_line_returns_none() -> None:
    assert fold("Subject", "x" * (MAX_LINE - len("Subject: ") + 1)) is None
    assert fold("Subject", "short " + "y" * 1000) is None


def test_fold_empty_value() -> None:
    assert fold("X-Empty", "") == [b"X-Empty:"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
            st.integers(min_value=900, max_value=1100).map(lambda n: "w" * n),
        ),
        max_size=30,
    ),
    name=st.sampled_from(["Subject", "X-A", "References", "X-" + "N" * 60]),
)
def test_fold_never_produces_lines_over_998(words: list[str], name: str) -> None:
    value = " ".join(words)
    lines = fold(name, value)
    # the first word shares its line with "Name: ", every other one may start a line " word"
    fits = all(len(word) <= MAX_LINE - 1 for word in words[1:]) and (
        not words or len(words[0]) <= MAX_LINE - len(name) - 2
    )
    if not fits:
        assert lines is None
        return
    assert lines is not None
    assert all(len(line) <= MAX_LINE for line in lines)
    assert all(line.isascii() and b"\r" not in line and b"\n" not in line for line in lines)
    assert b"".join(lines).decode() == (f"{name}: {value}" if words else f"{name}:")


# --- encode_unstructured -----------------------------------------------------------------------


def test_encode_unstructured_ascii_is_plain() -> None:
    assert encode_unstructured("Subject", "Hello there") == [b"Subject: Hello there"]


def test_encode_unstructured_non_ascii_is_rfc2047() -> None:
    lines = encode_unstructured("Subject", "Grüße aus Köln")
    assert all(line.isascii() for line in lines)
    assert rfc2047_decode(b"".join(lines).decode()[len("Subject:") :]) == "Grüße aus Köln"


def test_encode_unstructured_removes_line_breaks() -> None:
    lines = encode_unstructured("Subject", "Eve\r\nBcc: victim@example.com")
    assert len(lines) == 1
    assert lines == [b"Subject: Eve Bcc: victim@example.com"]


def test_encode_unstructured_long_ascii_run_is_encoded_not_overlong() -> None:
    lines = encode_unstructured("X-Token", "Z" * 3000)
    assert len(lines) > 1
    assert all(len(line) <= MAX_LINE for line in lines)
    assert rfc2047_decode(b"".join(lines).decode()[len("X-Token:") :]) == "Z" * 3000


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_encode_unstructured_is_7bit_single_field_and_round_trips(text: str) -> None:
    lines = encode_unstructured("Subject", text)
    assert lines[0].startswith(b"Subject:")
    for line in lines:
        assert line.isascii()
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line
        assert len(line) <= MAX_LINE
    assert all(line[:1] in (b" ", b"\t") for line in lines[1:])
    decoded = rfc2047_decode(b"".join(lines).decode()[len("Subject:") :])
    assert decoded.split() == clean_text(text).split()


# --- encode_phrase -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Jane Doe", "Jane Doe"),
        ("Doe, Jane", '"Doe, Jane"'),
        ("jane@example.com", '"jane@example.com"'),
        ('Say "hi"', '"Say \\"hi\\""'),
        ("back\\slash.", '"back\\\\slash."'),
        ("", ""),
        ("\r\n", ""),
    ],
)
def test_encode_phrase_ascii(name: str, expected: str) -> None:
    assert encode_phrase(name) == expected


def test_encode_phrase_non_ascii_is_encoded_word() -> None:
    phrase = encode_phrase("Jérôme @ Café")
    assert phrase.isascii() and phrase.startswith("=?utf-8?")
    assert "@" not in phrase
    assert rfc2047_decode(phrase) == "Jérôme @ Café"


def test_encode_phrase_injection_is_neutralised() -> None:
    phrase = encode_phrase("Eve\r\nBcc: victim@example.com")
    assert "\r" not in phrase and "\n" not in phrase
    assert phrase.startswith('"') and phrase.endswith('"')


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_encode_phrase_never_unquoted_at_nor_line_break(text: str) -> None:
    phrase = encode_phrase(text)
    assert phrase.isascii()
    assert "\r" not in phrase and "\n" not in phrase and "\x00" not in phrase
    assert not unquoted_at_or_open_quote(phrase)
    # used as a display name, it never changes which address a parser finds
    assert email.utils.parseaddr(f"{phrase} <probe@example.com>")[1] == "probe@example.com"


def _words_before_issue15(text: str) -> list[str]:
    """text._words as it was before it encoded the text at once (one character at a time)."""
    words: list[str] = []
    chunk = bytearray()
    for ch in text:
        encoded = ch.encode("utf-8", "replace")
        if len(chunk) + len(encoded) > 45:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk.clear()
        chunk += encoded
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


_WORD_PIECES = ["a", " ", "é", "€", "𝄞", "\udc80", "\ud800", "x" * 44, "字"]


@given(st.lists(st.sampled_from(_WORD_PIECES), max_size=80).map("".join))
@settings(max_examples=1_500, deadline=None)
def test_words_are_unchanged_by_encoding_the_text_at_once(text: str) -> None:
    assert text_module._words(text) == _words_before_issue15(text)


@given(st.text(max_size=300))
def test_words_are_unchanged_for_any_text(text: str) -> None:
    assert text_module._words(text) == _words_before_issue15(text)
