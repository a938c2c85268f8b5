"""Bugs the fuzz tests (test_fuzz.py) found in the core, one regression test each.

Each test states the input, what the documented rules (forwarder/core/*.py docstrings, the README)
say must happen, and what happened before the fix.
"""

from __future__ import annotations

import binascii
import email
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core import AliasState, Outcome, Policy, Verdicts, forward, prepare, validate_bytes
from forwarder.core.body import _soft_wrap
from forwarder.core.message import split_message
from forwarder.core.text import MAX_LINE, encode_unstructured

ALIAS = "shop-7hq2@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)


def run(raw: bytes):
    return forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)


def forwarded(raw: bytes) -> bytes:
    result = run(raw)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert result.outgoing is not None
    out = result.outgoing.as_bytes()
    assert validate_bytes(out) == []
    return out


# --- 1. text.encode_unstructured: a field name too long to share its line with an encoded word ----
#
# Input: a field whose name is 990 characters long and whose value holds one 8-bit byte.
# Expected (headers.py rule 10): the value is RFC 2047-encoded and no line exceeds 998 characters;
# "only a field whose name alone is longer than a line is dropped".
# Actual: "X-NNN...N: =?utf-8?b?4oKs?=" on one line of 1,010 characters; the validator refused the
# rewritten header block and the message was dropped (dropped-invalid, header-line-too-long).


def test_long_field_name_with_an_8bit_value_fits_the_line_limit() -> None:
    name = b"X-" + b"N" * 988
    out = forwarded(b"From: a@example.com\r\n" + name + b": \x80\r\n\r\nbody")
    assert b"\r\n" + name + b":\r\n =?utf-8?b?" in out


def test_encode_unstructured_moves_the_first_word_after_a_long_name() -> None:
    name = "X-" + "N" * 990
    lines = encode_unstructured(name, "Grüße")
    assert lines[0] == name.encode() + b":"
    assert lines[1].startswith(b" =?utf-8?b?")
    assert max(len(line) for line in lines) <= MAX_LINE
    assert encode_unstructured("Subject", "Grüße")[0].startswith(b"Subject: =?utf-8?b?")  # unchanged


# --- 2. Rule 10: white space before the colon ("To : x") was sent as it came -------------------
#
# Input: "To : b@example.com" and "Subject\t: hi" (obsolete syntax, RFC 5322 section 4.5, which
# must be read but never generated).
# Expected: the forwarded message uses "To:" and "Subject:"; every reader finds every field.
# Actual: both lines went out unchanged. Python's email package (like other strict readers) takes
# "To : ..." for the first body line, so the fields after it (Reply-To, X-Othermail-Loop...) and
# the MIME structure vanished for such readers.


def test_white_space_before_the_colon_is_removed() -> None:
    raw = b"From: Bob <bob@example.org>\r\nTo : b@example.com\r\nSubject\t: hi\r\nX-Folded  : one\r\n two\r\n\r\nbody"
    result = run(raw)
    assert result.outgoing is not None
    head = result.outgoing.head
    assert b"\r\nTo: b@example.com\r\n" in head
    assert b"\r\nSubject: hi\r\n" in head
    assert b"\r\nX-Folded: one\r\n two\r\n" in head
    assert "space-before-colon" in result.repairs
    parsed = email.message_from_bytes(result.outgoing.as_bytes())
    assert parsed["To"] == "b@example.com"
    assert parsed["Reply-To"] == "Bob <bob@example.org>"
    assert parsed["X-Othermail-Loop"]
    assert parsed.get_payload() == "body"


def test_renamed_field_loses_the_space_before_its_colon_too() -> None:
    out = forwarded(b"From: a@example.com\r\nAuthentication-Results : mx.example; spf=pass\r\n\r\nb")
    assert b"\r\nX-Original-Authentication-Results: mx.example; spf=pass\r\n" in out


# --- 3. body._soft_wrap: quadratic in the length of a quoted-printable line ------------------------
#
# Input: a quoted-printable part whose text is one line of n bytes (n up to the 40 MB SES limit).
# Expected (README): every step of the core is linear in its input.
# Actual: each soft break copied the rest of the line, O(n^2 / 75): _soft_wrap took 0.17 s for a
# 640 KB line, 1.6 s for 2.5 MB, 49 s for 10 MB (about 13 minutes for 40 MB, past the Lambda's
# time limit, so SES would retry the message into the same timeout). After the fix: 0.19 s for
# 10 MB, 0.84 s for 40 MB. bench/fuzz_linear.py ("quoted-printable, one long line") measures
# the growth; the tests below pin the output of the rewritten loop to the old one's.


def _soft_wrap_before_the_fix(data: bytes, eol: bytes) -> bytes:
    out: list[bytes] = []
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        cr = line.endswith(b"\r")
        content = line[:-1] if cr else line
        while len(content) > 76:
            cut = 75
            escape = content.rfind(b"=", cut - 2, cut)
            if escape >= 0:
                cut = escape
            back = cut  # the later fix for runs of bare "=" (test below), in the copying style
            while back > 0 and content[back - 1 : back] == b"=":
                back -= 1
            if back > 0:
                cut = back
            out.append(content[:cut] + b"=" + eol)
            content = content[cut:]
        ending = b"" if index == len(lines) - 1 else (b"\r\n" if cr else b"\n")
        out.append(content + ending)
    return b"".join(out)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"a", b"=3D", b"=C3=A9", b" ", b"\t", b"=", b"\r\n", b"\n", b"\r", b"x" * 80]), max_size=200
    ).map(b"".join),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_soft_wrap_output_is_unchanged_by_the_fix(data: bytes, eol: bytes) -> None:
    # the one change since: a final bare CR is kept (test_soft_wrap_keeps_a_final_bare_cr)
    before = _soft_wrap_before_the_fix(data, eol)
    assert _soft_wrap(data, eol) == (before + b"\r" if data.endswith(b"\r") else before)


def test_a_run_of_bare_equals_signs_decodes_the_same_after_wrapping() -> None:
    """Found by test_fuzz: a segment ending in "=" before the soft break read as an escape."""
    for offset in range(80):
        for run in (1, 2, 3, 75, 76, 700):
            line = b"x" * (300 + offset) + b"=" * run + b"tail" * (offset % 3)
            wrapped = _soft_wrap(line, b"\r\n")
            assert binascii.a2b_qp(wrapped) == binascii.a2b_qp(line), (offset, run)
            assert max(len(part) for part in wrapped.split(b"\r\n")) <= 76


def test_soft_wrap_of_a_long_line_decodes_to_the_same_text() -> None:
    for offset in range(80):  # an escape at every position relative to a cut
        line = b"a" * offset + b"=C3=A9" * 300 + b"tail"
        wrapped = _soft_wrap(line, b"\r\n")
        assert binascii.a2b_qp(wrapped) == binascii.a2b_qp(line)
        assert max(len(part) for part in wrapped.split(b"\r\n")) <= 76


def test_quoted_printable_part_with_a_megabyte_line_is_forwarded() -> None:
    body = b"0123456=3D" * 100_000 + b"\r\n"
    out = forwarded(b"From: a@example.com\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body)
    assert binascii.a2b_qp(out.split(b"\r\n\r\n", 1)[1]) == binascii.a2b_qp(body)


# --- 4. message.py: a white-space-only last line at the very end of the message -----------------
#
# Input: b"From: Jane <jane@example.com>\r\n0: \r\n\t" (a message that ends inside its header
# block, on a continuation line holding only a tab).
# Expected (headers.py rule 10): white-space-only continuation lines are dropped; the message is
# forwarded.
# Actual: split_message marked the block clean (its check wanted a line ending after the white
# space), so the line went out as it came, followed by the blank line: "0: \r\n\t\r\n\r\n". The
# validator saw a white-space-only line and the message was dropped (dropped-invalid, no-separator).


def test_white_space_only_last_line_at_the_end_of_the_message() -> None:
    raw = b"From: Jane <jane@example.com>\r\n0: \r\n\t"
    assert not split_message(raw).fields[1].checked
    out = forwarded(raw)
    assert b"\r\n\t\r\n" not in out


# --- 5. Rule 8: an empty To plus more than 50 Cc addresses made two To fields --------------------
#
# Input: "To: undisclosed-recipients:;" (or an empty To) and a Cc with 60 addresses.
# Expected (rule 8 and rule 6): Cc becomes X-Original-Cc; the To stays; To appears once.
# Actual: a To with no address counted as "no To", so the alias was added as a second To field;
# the validator found duplicate-to and the message was dropped (dropped-invalid).


def test_empty_to_and_many_cc_keep_a_single_to() -> None:
    cc = b", ".join(b"c%d@example.com" % i for i in range(60))
    for to in (b"undisclosed-recipients:;", b""):
        out = forwarded(b"From: a@example.com\r\nTo: " + to + b"\r\nCc: " + cc + b"\r\n\r\nbody")
        head = out.split(b"\r\n\r\n", 1)[0]
        assert [line for line in head.split(b"\r\n") if line.lower().startswith(b"to:")] == [b"To: " + to]
        assert b"\r\nX-Original-Cc: c0@example.com," in head


def test_to_over_the_limit_is_still_replaced_by_the_alias() -> None:
    to = b", ".join(b"t%d@example.com" % i for i in range(60))
    out = forwarded(b"From: a@example.com\r\nTo: " + to + b"\r\n\r\nbody")
    head = out.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nTo: " + ALIAS.encode() + b"\r\n" in head + b"\r\n"
    assert b"\r\nX-Original-To: t0@example.com," in head


# --- 6. text._codec: "unicode_escape" was still read as a charset ---------------------------------
#
# Input: an encoded word in the charset "unicode_escape" (or "raw-unicode-escape"), which the
# sender chooses: =?unicode_escape?q?a=5C=BFb?=.
# Expected (text.py): _NOT_CHARSETS lists these codecs as "not charsets", so the word's bytes are
# read as UTF-8 and never interpreted as Python escape sequences; decoding never raises.
# Actual: codecs.lookup() spells them "unicode-escape" and "raw-unicode-escape", so the check
# against the set (spelt with underscores) never matched: sender text went through Python's escape
# decoder (=5Cx41 became "A") and an invalid escape raised a DeprecationWarning from inside
# prepare(), an exception wherever warnings are errors (python -W error, PYTHONWARNINGS=error).


def test_escape_codecs_are_not_charsets() -> None:
    from forwarder.core.text import _codec

    for name in ("unicode_escape", "unicode-escape", "raw_unicode_escape", "raw-unicode-escape", "UNICODE_ESCAPE"):
        assert _codec(name) is None, name
    assert _codec("utf-8") == "utf-8" and _codec("iso-8859-1") == "iso8859-1"


def test_escape_codec_word_is_read_as_utf8_without_warnings() -> None:
    import warnings

    from forwarder.core.text import decode_header_text

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_header_text(b"=?unicode_escape?q?=5Cx41?=") == "\\x41"
        assert decode_header_text(b"=?unicode_escape?q?a=5C=BFb?=") == "a\\\ufffdb"
        out = forwarded(b"From: =?unicode_escape?q?a=5C=BFb?= <a@example.com>\r\n\r\nbody")
    assert b"a@example.com" in out


# --- a final bare CR of a quoted-printable body ----------------------------------------------------
# Found by tests/forwarder/core/test_fuzz.py::test_messages (a QP body with a line over 998 bytes,
# ending "\r\n\r\n\r"). Expected: the soft-wrapped body decodes to what the original decoded to.
# Actual: _soft_wrap took the final "\r" for the end of a CRLF it never saw and dropped it.


def test_soft_wrap_keeps_a_final_bare_cr() -> None:
    import binascii

    body = b"word " * 300 + b"\r\n\r\n\r"
    wrapped = _soft_wrap(body, b"\r\n")
    assert wrapped.endswith(b"\r\n\r\n\r")
    assert binascii.a2b_qp(wrapped) == binascii.a2b_qp(body)


# --- a soft break that made a delimiter ------------------------------------------------------------
# Found by tests/forwarder/core/test_fuzz.py::test_mime_trees: the last part of a multipart message
# held a 999-byte line and then a junk line "--<boundary>----<boundary>--" (no delimiter: text
# after it). The repair re-encodes the part as quoted-printable, and the wrap at 76 characters
# split the junk line into "--<boundary>--=" and "--<boundary>--": a closing delimiter, which ended
# the part early and lost the rest of its text. Expected: no line after a soft break starts with "-".


def test_the_long_line_repair_never_wraps_a_line_into_a_delimiter() -> None:
    boundary = b"b" * 71
    part = b"--" + boundary + b"\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    raw = (
        b'From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="'
        + boundary
        + b'"\r\n\r\n'
        + part
        + b"ab " * 333
        + b"\r\n--"
        + boundary
        + b"----"
        + boundary
        + b"--\r\n"
    )
    out = forwarded(raw)
    lines = out.split(b"\r\n")
    assert not [line for before, line in zip(lines, lines[1:]) if before.endswith(b"=") and line.startswith(b"-")]
    [*_, last] = email.message_from_bytes(out).walk()
    junk = b"--" + boundary + b"----" + boundary + b"--"
    assert junk in last.get_payload(decode=True)  # the part's text is all there


# --- body.repair: a multipart never closed, nested in a multipart never closed --------------------
#
# Input: an outer multipart/mixed whose last part is a multipart/mixed, neither closed (the inner
# "--00--" is followed by text on its line, so it is no delimiter), the inner last part holding a
# line over 998 bytes. Rule: the repaired part decodes to what a reader (the standard library)
# reads from the sender's message. Before: each level dropped a line ending at the end of the
# message, so the re-encoded part lost one CRLF (1,110 bytes became 1,108).


def test_the_repair_drops_one_line_ending_at_the_end_of_nested_unclosed_multiparts() -> None:
    raw = (
        b"From: Jane <jane@example.com>\r\nTo: shop-7hq2@othermail.example\r\nSubject: mime\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="0"\r\n\r\n--0\r\nContent-Type: text/plain\r\n\r\n\r\n'
        b'--0\r\nContent-Type: multipart/mixed; boundary="00"\r\n\r\n--00\r\nContent-Type: text/plain\r\n\r\n\r\n'
        b"--00\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\r\n--00--"
        + b"e" * 1100
        + b"\r\n\r\n"
    )

    def last_leaf(data: bytes) -> bytes:
        leaves = [p for p in email.message_from_bytes(data).walk() if not p.is_multipart()]
        payload = leaves[-1].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload

    assert last_leaf(forwarded(raw)) == last_leaf(raw)
