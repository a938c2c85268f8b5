"""forwarder.core.message: splitting raw bytes into header fields and a body view."""

from __future__ import annotations

import pytest

from forwarder.core.message import HeaderField, _clean_split, first_long_line, split_message


def names(raw: bytes) -> list[str]:
    return [f.name for f in split_message(raw).fields]


def test_crlf_message() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody line\r\nsecond\r\n"
    msg = split_message(raw)
    assert [f.name for f in msg.fields] == ["From", "Subject"]
    assert msg.fields[0].lines == [b"From: a@example.com"]
    assert msg.fields[1].value == b"hi"
    assert bytes(msg.body) == b"body line\r\nsecond\r\n"
    assert msg.eol == b"\r\n"
    assert msg.had_separator is True
    assert msg.repairs == []
    assert msg.size == len(raw)


def test_lf_message() -> None:
    raw = b"From: a@example.com\nSubject: hi\n\nbody\n"
    msg = split_message(raw)
    assert [f.name for f in msg.fields] == ["From", "Subject"]
    assert bytes(msg.body) == b"body\n"
    assert msg.eol == b"\n"
    assert msg.had_separator


def test_mixed_line_endings_use_the_first_one_and_strip_cr() -> None:
    raw = b"From: a@example.com\nSubject: hi\r\nX-A: 1\n\r\nbody\r\n"
    msg = split_message(raw)
    assert msg.eol == b"\n"
    assert [f.lines for f in msg.fields] == [[b"From: a@example.com"], [b"Subject: hi"], [b"X-A: 1"]]
    assert bytes(msg.body) == b"body\r\n"
    assert msg.had_separator


def test_crlf_first_line_decides_eol() -> None:
    msg = split_message(b"From: a@example.com\r\nSubject: hi\n\nbody")
    assert msg.eol == b"\r\n"
    assert bytes(msg.body) == b"body"


def test_no_separator_body_starts_at_first_non_field_line() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\nthis is body text\r\nmore: text\r\n"
    msg = split_message(raw)
    assert [f.name for f in msg.fields] == ["From", "Subject"]
    assert bytes(msg.body) == b"this is body text\r\nmore: text\r\n"
    assert msg.had_separator is False
    assert msg.repairs == ["missing-separator"]


def test_headers_only_without_final_newline() -> None:
    msg = split_message(b"From: a@example.com\r\nSubject: hi")
    assert [f.name for f in msg.fields] == ["From", "Subject"]
    assert msg.fields[1].value == b"hi"
    assert bytes(msg.body) == b""
    assert msg.had_separator is False
    assert msg.repairs == []


def test_headers_only_with_final_newline() -> None:
    msg = split_message(b"From: a@example.com\r\nSubject: hi\r\n")
    assert len(msg.fields) == 2
    assert bytes(msg.body) == b""
    assert msg.had_separator is False


def test_empty_input() -> None:
    msg = split_message(b"")
    assert msg.fields == []
    assert bytes(msg.body) == b""
    assert msg.eol == b"\r\n"
    assert msg.had_separator is False
    assert msg.size == 0


def test_only_a_body_after_blank_line() -> None:
    msg = split_message(b"\r\njust a body\r\n")
    assert msg.fields == []
    assert msg.had_separator is True
    assert bytes(msg.body) == b"just a body\r\n"


def test_only_body_text_without_headers() -> None:
    msg = split_message(b"Hello there, no headers here\nsecond line\n")
    assert msg.fields == []
    assert bytes(msg.body) == b"Hello there, no headers here\nsecond line\n"
    assert msg.repairs == ["missing-separator"]


def test_folded_field_keeps_its_physical_lines_and_unfolds() -> None:
    raw = b"Subject: one\r\n two\r\n\tthree\r\nTo: b@example.com\r\n\r\n"
    (subject, to) = split_message(raw).fields
    assert subject.lines == [b"Subject: one", b" two", b"\tthree"]
    assert subject.value == b"one two\tthree"
    assert subject.text() == "one two\tthree"
    assert to.value == b"b@example.com"


def test_whitespace_only_continuation_stays_with_its_field() -> None:
    raw = b"Subject: hello\r\n \r\n\t\r\n world\r\nTo: b@example.com\r\n\r\nbody"
    msg = split_message(raw)
    assert [f.name for f in msg.fields] == ["Subject", "To"]
    assert msg.fields[0].lines == [b"Subject: hello", b" ", b"\t", b" world"]
    assert bytes(msg.body) == b"body"
    assert msg.had_separator


def test_leading_continuation_is_dropped() -> None:
    msg = split_message(b"  orphan line\r\n\tanother\r\nFrom: a@example.com\r\n\r\nbody")
    assert [f.lines for f in msg.fields] == [[b"From: a@example.com"]]
    assert msg.repairs == ["leading-continuation"]
    assert bytes(msg.body) == b"body"


def test_empty_field_name_lines_are_dropped() -> None:
    msg = split_message(b"From: a@example.com\r\n: no name\r\n:\r\nSubject: s\r\n\r\nbody")
    assert [f.name for f in msg.fields] == ["From", "Subject"]
    assert msg.repairs == ["empty-field-name"]
    assert bytes(msg.body) == b"body"


def test_white_space_before_colon_is_accepted() -> None:
    (field,) = split_message(b"Subject \t: hi\r\n\r\n").fields
    assert field.name == "Subject"
    assert field.key == "subject"
    assert field.value == b"hi"


@pytest.mark.parametrize("line", [b"Sub ject: x", b"Caf\xc3\xa9: x", b"No colon at all", b"X\x00Y: z"])
def test_invalid_field_names_end_the_header_block(line: bytes) -> None:
    msg = split_message(b"From: a@example.com\r\n" + line + b"\r\n\r\nrest")
    assert names(b"From: a@example.com\r\n" + line + b"\r\n") == ["From"]
    assert bytes(msg.body) == line + b"\r\n\r\nrest"
    assert msg.repairs == ["missing-separator"]


def test_mbox_from_line_is_dropped() -> None:
    raw = b"From alice@example.com Mon Jan  1 00:00:00 2024\nFrom: alice@example.com\n\nbody\n"
    msg = split_message(raw)
    assert [f.lines for f in msg.fields] == [[b"From: alice@example.com"]]
    assert msg.repairs == ["mbox-from-line"]
    assert bytes(msg.body) == b"body\n"


def test_mbox_from_line_alone() -> None:
    msg = split_message(b"From alice@example.com Mon Jan  1 00:00:00 2024")
    assert msg.fields == []
    assert bytes(msg.body) == b""
    assert msg.repairs == ["mbox-from-line"]


def test_from_field_is_not_an_mbox_line() -> None:
    msg = split_message(b"From: alice@example.com\r\n\r\n")
    assert msg.repairs == []
    assert names(b"From: alice@example.com\r\n\r\n") == ["From"]


def test_value_of_a_field_with_empty_value() -> None:
    (field,) = split_message(b"X-Empty:\r\n\r\n").fields
    assert field.value == b""
    assert field.lines == [b"X-Empty:"]


def test_colons_inside_values_are_kept() -> None:
    (field,) = split_message(b"X-Time: 12:30:45\r\n\r\n").fields
    assert field.value == b"12:30:45"


def test_eight_bit_values_are_kept_and_text_uses_surrogates() -> None:
    (field,) = split_message(b"Subject: caf\xe9\r\n\r\n").fields
    assert field.value == b"caf\xe9"
    assert field.text() == "caf\udce9"
    assert field.text().encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_nul_and_bare_cr_inside_a_value_are_kept_for_the_rewriter() -> None:
    (field,) = split_message(b"Subject: a\x00b\rc\r\n\r\n").fields
    assert field.value == b"a\x00b\rc"


def test_get_all_and_first_are_case_insensitive() -> None:
    msg = split_message(b"To: a@x.example\r\nSubject: s\r\nTO: b@x.example\r\n\r\n")
    assert [f.value for f in msg.get_all("to")] == [b"a@x.example", b"b@x.example"]
    first = msg.first("to")
    assert isinstance(first, HeaderField) and first.value == b"a@x.example"
    assert msg.first("cc") is None


def test_many_header_lines_without_blank_line() -> None:
    raw = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000))
    msg = split_message(raw)
    assert len(msg.fields) == 100_000
    assert msg.fields[-1].name == "X-H99999"
    assert len(msg.body) == 0
    assert msg.had_separator is False


def test_body_is_a_view_of_the_input_not_a_copy() -> None:
    raw = b"From: a@example.com\r\n\r\n" + b"x" * 10_000
    msg = split_message(raw)
    assert isinstance(msg.body, memoryview)
    assert msg.body.obj is raw
    assert msg.body.nbytes == 10_000
    assert bytes(msg.body) == b"x" * 10_000


def test_body_keeps_every_byte() -> None:
    body = bytes(range(256)) + b"\r\n\n\r\x00"
    msg = split_message(b"Subject: s\n\n" + body)
    assert bytes(msg.body) == body


def test_only_first_blank_line_ends_the_headers() -> None:
    msg = split_message(b"A: 1\r\n\r\nB: 2\r\n\r\nC: 3")
    assert names(b"A: 1\r\n\r\nB: 2\r\n\r\nC: 3") == ["A"]
    assert bytes(msg.body) == b"B: 2\r\n\r\nC: 3"


def test_long_body_line_is_the_body_scan_remembered() -> None:
    raw = b"From: a@example.com\r\n\r\nshort\r\n" + b"x" * 999 + b"\r\n"
    split = split_message(raw)
    assert split.long_body_line() == first_long_line(split.body) == 7
    assert split.long_body_line() == 7  # remembered: the same answer without a second scan
    assert split_message(b"From: a@example.com\r\n\r\nshort\r\n").long_body_line() == -1


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_clean_split_takes_exactly_the_clean_bytes(eol: bytes) -> None:
    """The clean reader's byte classes (written as the bytes they take): a field's text is any
    byte but NUL, CR, LF and 8-bit; a continuation starts with white space and then holds one of
    those that is not white space. Anything else goes to the general reader."""
    for byte in range(256):
        b = bytes([byte])
        in_text = eol.join([b"Subject: a" + b + b"z", b"", b"body"])
        clean = byte not in (0x00, 0x0A, 0x0D) and byte < 0x80
        assert (_clean_split(in_text) is not None) is clean, (eol, byte)
        in_continuation = eol.join([b"Subject: a", b" " + b + b"z", b"", b"body"])
        takes = clean and byte not in (0x20, 0x09)
        if byte in (0x20, 0x09):  # more white space, then z: still a continuation with text
            takes = True
        assert (_clean_split(in_continuation) is not None) is takes, (eol, byte)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_clean_split_line_limit_holds_for_each_line_of_a_field(eol: bytes) -> None:
    """A line of 998 bytes is clean and one of 999 is not, alone or as a continuation; a folded
    field longer than 998 bytes in all whose lines are short stays clean."""

    def raw(*lines: bytes) -> bytes:
        return eol.join([*lines, b"", b"body"])

    name = b"Subject: "
    assert _clean_split(raw(name + b"a" * (998 - len(name)))) is not None
    assert _clean_split(raw(name + b"a" * (999 - len(name)))) is None
    assert _clean_split(raw(b"To: x@example.com", name + b"a", b" " + b"b" * 997)) is not None
    assert _clean_split(raw(b"To: x@example.com", name + b"a", b" " + b"b" * 998)) is None
    folded = _clean_split(raw(name + b"a" * 600, b" " + b"b" * 600, b" " + b"c" * 600))
    assert folded is not None and folded.first("subject") is not None
