"""forwarder.core.validator: one minimal message per violation code, and a valid one."""

from __future__ import annotations

import pytest

from forwarder.core.headers import MAX_HEADER_RECIPIENTS, ONCE_ONLY
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
