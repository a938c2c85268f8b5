"""forwarder.core.validator: one minimal message per violation code, and a valid one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core import message as message_module
from forwarder.core.headers import MAX_HEADER_RECIPIENTS, ONCE_ONLY
from forwarder.core.message import first_long_line
from forwarder.core.validator import SESV1_MAX_BYTES, SESV2_MAX_BYTES, Violation, validate, validate_bytes

VALID = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def codes(data: bytes, max_bytes: int = SESV2_MAX_BYTES) -> list[str]:
    return [v.code for v in validate_bytes(data, max_bytes)]


def with_header(line: bytes, body: bytes = b"body\r\n") -> bytes:
    return b"From: a@example.com\r\n" + line + b"\r\nSubject: s\r\n\r\n" + body


def test_valid_message_gives_no_violations() -> None:
    assert validate_bytes(VALID) == []
    assert validate(b"From: a@example.com\r\nSubject: s\r\n\r\n", b"body\r\n") == []


def test_valid_lf_message_gives_no_violations() -> None:
    assert validate_bytes(VALID.replace(b"\r\n", b"\n")) == []


def test_valid_message_with_folded_fields_and_8bit_body() -> None:
    data = (
        b'From: "Doe, Jane" <a@example.com>\r\nTo: b@example.com,\r\n c@example.com\r\n'
        b"Subject: folded\r\n\tsubject\r\nX-Empty:\r\n\r\n\xe9t\xe9\x00\r\n\r\n" + b"x" * 998
    )
    assert validate_bytes(data) == []


def test_violation_str() -> None:
    assert str(Violation("too-large", "11 bytes")) == "too-large: 11 bytes"


# --- too-large ------------------------------------------------------------------------------


def test_too_large_boundary() -> None:
    assert codes(VALID, max_bytes=len(VALID)) == []
    assert codes(VALID, max_bytes=len(VALID) - 1) == ["too-large"]


def test_limits_are_the_ses_ones() -> None:
    assert SESV1_MAX_BYTES == 10 * 1024 * 1024
    assert SESV2_MAX_BYTES == 40 * 1024 * 1024


def _message_of_size(size: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: big\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    body += b"y" * (size - len(head) - len(body))
    data = head + body
    assert len(data) == size
    return data


def test_sesv1_limit() -> None:
    assert codes(_message_of_size(SESV1_MAX_BYTES), SESV1_MAX_BYTES) == []
    over = _message_of_size(SESV1_MAX_BYTES + 1)
    assert codes(over, SESV1_MAX_BYTES) == ["too-large"]
    assert codes(over, SESV2_MAX_BYTES) == []


def test_sesv2_limit_is_the_default() -> None:
    over = _message_of_size(SESV2_MAX_BYTES + 1)
    assert codes(over) == ["too-large"]
    assert codes(over, SESV2_MAX_BYTES + 1) == []


# --- no-separator -------------------------------------------------------------------------------


def test_no_blank_line_at_all() -> None:
    assert codes(b"From: a@example.com\r\nSubject: s") == ["no-separator"]
    assert codes(b"From: a@example.com\r\nSubject: s\r\n") == ["no-separator"]


def test_whitespace_only_line_inside_header_block() -> None:
    assert codes(b"From: a@example.com\r\n \r\nSubject: s\r\n\r\nbody") == ["no-separator"]
    assert codes(b"From: a@example.com\r\n\t\r\nSubject: s\r\n\r\nbody") == ["no-separator"]


def test_head_given_to_validate_must_end_in_one_blank_line() -> None:
    assert [v.code for v in validate(b"From: a@example.com\r\n", b"body")] == ["no-separator"]
    # a blank line inside the head is reported by both separator checks
    assert {v.code for v in validate(b"From: a@example.com\r\n\r\nmore\r\n", b"body")} == {"no-separator"}


def test_head_that_is_not_all_header_fields() -> None:
    assert codes(b"From a@example.com Mon Jan  1 00:00:00 2024\r\nFrom: a@example.com\r\n\r\nx") == ["no-separator"]
    assert codes(b": no name\r\nFrom: a@example.com\r\n\r\nx") == ["no-separator"]
    assert codes(b" leading\r\nFrom: a@example.com\r\n\r\nx") == ["no-separator"]


# --- line lengths -------------------------------------------------------------------------------


def test_header_line_too_long_boundary() -> None:
    ok = b"X-Long: " + b"a" * (998 - len(b"X-Long: "))
    assert codes(with_header(ok)) == []
    assert codes(with_header(ok + b"a")) == ["header-line-too-long"]


def test_header_continuation_line_too_long() -> None:
    assert codes(with_header(b"X-Long: a\r\n " + b"b" * 998)) == ["header-line-too-long"]


def test_body_line_too_long_boundary() -> None:
    assert codes(with_header(b"X-A: 1", body=b"a" * 998 + b"\r\nshort\r\n")) == []
    assert codes(with_header(b"X-A: 1", body=b"short\r\n" + b"a" * 999 + b"\r\n")) == ["body-line-too-long"]
    assert codes(with_header(b"X-A: 1", body=b"a" * 999)) == ["body-line-too-long"]


# --- header content ------------------------------------------------------------------------------


def test_non_ascii_header() -> None:
    assert codes(with_header("X-Note: café".encode())) == ["non-ascii-header"]


def test_nul_in_header() -> None:
    assert codes(with_header(b"X-Note: a\x00b")) == ["control-character"]


def test_bare_cr_in_header() -> None:
    assert codes(with_header(b"X-Note: a\rb")) == ["control-character"]


# --- duplicates ----------------------------------------------------------------------------------


def _value_for(key: str) -> bytes:
    if key in {"from", "to", "cc", "bcc", "reply-to", "sender", "return-path", "delivered-to"}:
        return b"x@example.com"
    return b"v"


@pytest.mark.parametrize("key", sorted(ONCE_ONLY))
def test_duplicate_field(key: str) -> None:
    value = _value_for(key)
    name = key.encode()
    if key == "from":
        data = b"From: a@example.com\r\nFROM: " + value + b"\r\n\r\nbody"
    else:
        data = b"From: a@example.com\r\n" + name + b": " + value + b"\r\n" + name.upper() + b": " + value + b"\r\n\r\nb"
    assert codes(data) == [f"duplicate-{key}"]


def test_repeatable_fields_are_not_duplicates() -> None:
    data = b"From: a@example.com\r\nReceived: one\r\nReceived: two\r\nX-A: 1\r\nX-A: 2\r\n\r\nbody"
    assert codes(data) == []


# --- From ----------------------------------------------------------------------------------------


def test_no_from() -> None:
    assert codes(b"To: b@example.com\r\nSubject: s\r\n\r\nbody") == ["no-from"]


def test_from_with_two_addresses() -> None:
    assert codes(b"From: a@example.com, b@example.com\r\n\r\nbody") == ["bad-from"]


def test_from_with_no_address() -> None:
    assert codes(b"From: undisclosed-recipients:;\r\n\r\nbody") == ["bad-from"]


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"To: a@b@c",
        b"To: <a b@example.com>",
        b"Reply-To: @example.com",
        b"Cc: ok@example.com, broken@@x.com",
        b"To: a@-bad-.com",
        b"Resent-To: nobody",
    ],
)
def test_bad_address(line: bytes) -> None:
    assert codes(with_header(line)) == ["bad-address"]


def test_good_addresses_in_every_address_field() -> None:
    data = with_header(
        b'To: "Doe, J" <j@example.com>, k@example.org\r\nCc: Group: c@example.com;\r\n'
        b"Reply-To: r@example.com\r\nResent-From: x@example.com\r\nErrors-To: e@example.com"
    )
    assert codes(data) == []


# --- recipients ----------------------------------------------------------------------------------


def _list(prefix: str, count: int) -> bytes:
    return b", ".join(b"%s%d@example.com" % (prefix.encode(), i) for i in range(count))


def test_fifty_recipients_are_fine() -> None:
    assert codes(with_header(b"To: " + _list("t", 30) + b"\r\nCc: " + _list("c", 20))) == []


def test_too_many_recipients() -> None:
    assert MAX_HEADER_RECIPIENTS == 50
    assert codes(with_header(b"To: " + _list("t", 51))) == ["too-many-recipients"]
    assert codes(with_header(b"To: " + _list("t", 30) + b"\r\nCc: " + _list("c", 21))) == ["too-many-recipients"]


def test_every_violation_is_reported_together() -> None:
    data = (
        b"To: " + _list("t", 51) + "\r\nX-Bad: é\x00\r\n".encode() + b"X-L: " + b"x" * 1000 + b"\r\n\r\n" + b"y" * 1000
    )
    found = set(codes(data, max_bytes=100))
    assert found == {
        "too-large",
        "header-line-too-long",
        "non-ascii-header",
        "control-character",
        "no-from",
        "too-many-recipients",
        "body-line-too-long",
    }


# --- the body line-length rule, exactly at the limit ------------------------------------------
# The scan jumps from line to line (message.first_long_line); these pin the rule it must keep:
# 998 bytes of content pass and 999 fail, wherever the line is and whatever the line ending.

HEAD = b"From: a@example.com\r\nSubject: s\r\n\r\n"
FILLER = b"a short line of text\r\n" * 200  # 4,400 bytes: the line under test is not near a window edge


def _body(where: str, line: bytes, eol: bytes) -> bytes:
    filler = FILLER.replace(b"\r\n", eol)
    if where == "start":
        return line + eol + filler
    if where == "middle":
        return filler + line + eol + filler
    if where == "end":  # the last line, with and without its line ending
        return filler + line + eol
    return filler + line  # "end-unterminated"


@pytest.mark.parametrize("where", ["start", "middle", "end", "end-unterminated"])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("view", [False, True])
def test_body_line_at_the_limit_passes_and_one_over_fails(where: str, eol: bytes, view: bool) -> None:
    for length, expected in ((998, []), (999, ["body-line-too-long"])):
        body = _body(where, b"x" * length, eol)
        given = memoryview(body) if view else body
        assert [v.code for v in validate(HEAD, given)] == expected, (where, eol, length)
        offset = body.index(b"x" * length)
        assert first_long_line(given) == (-1 if length == 998 else offset)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_body_line_at_the_limit_in_a_large_body(eol: bytes) -> None:
    """Bodies over the scan's chunk size (1 MB) and lines at the limit on both sides of chunk
    edges: a line over it is found at its exact offset, and only then."""
    at_limit = (b"y" * 998 + eol) * 3_000  # lines exactly at the limit, one after another
    short = (b"z" * 75 + eol) * 30_000
    body = short + at_limit + short
    assert first_long_line(body) == -1
    assert validate(HEAD, memoryview(body)) == []
    for cut in (17, len(short) - 3, len(short) + 998 * 1_500, len(body) - 10):
        start = body.rfind(b"\n", 0, cut) + 1
        end = body.find(eol, start)
        over = body[:start] + b"w" * (end - start + 1) + body[end:]  # that line one byte longer
        if end - start + 1 <= 998:
            over = body[:start] + b"w" * 999 + body[end:]
        assert first_long_line(over) == start, cut
        assert first_long_line(memoryview(over)) == start, cut


_LONG_FIRST = re.compile(rb"[^\n]{998}(?:[^\n\r]|\r[^\n])")
_LONG_LATER = re.compile(rb"\n[^\n]{998}(?:[^\n\r]|\r[^\n])")


def _reference_first_long_line(data: bytes) -> int:
    """The rule as one regular expression (the scan before issue 15): slow, but plainly right."""
    if _LONG_FIRST.match(data):
        return 0
    found = _LONG_LATER.search(data)
    return -1 if found is None else found.start() + 1


_PIECES = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 996, 997, 998, 999, 1000, 1500]) | st.integers(0, 2_100),
        st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\r", b""]),
        st.booleans(),
    ),
    max_size=6,
)


@given(_PIECES)
@settings(max_examples=400, deadline=None)
def test_first_long_line_agrees_with_the_reference(pieces: list[tuple[int, bytes, bool]]) -> None:
    data = b"".join((b"a" * (n - 1) + b"\r" if cr and n else b"a" * n) + end for n, end, cr in pieces)
    expected = _reference_first_long_line(data)
    assert first_long_line(data) == expected
    assert first_long_line(memoryview(data)) == expected


@given(_PIECES, st.integers(1_000, 3_000))
@settings(max_examples=300, deadline=None)
def test_first_long_line_agrees_with_the_reference_at_any_chunk_size(
    pieces: list[tuple[int, bytes, bool]], chunk: int
) -> None:
    """Chunk edges anywhere in and around long lines (the chunk size made small here) change nothing."""
    data = b"".join((b"a" * (n - 1) + b"\r" if cr and n else b"a" * n) + end for n, end, cr in pieces)
    saved = message_module._CHUNK
    message_module._CHUNK = chunk
    try:
        assert first_long_line(data) == _reference_first_long_line(data)
    finally:
        message_module._CHUNK = saved
