"""Multipart boundaries too long for a line (issue 12.18): replaced, every part's bytes kept.

RFC 2046 allows 70 characters; SES and RFC 5321 refuse any line over 998, and a delimiter line is
the boundary plus two or four characters. Such a message is forwarded with a short boundary in the
Content-Type parameter and on its delimiter lines only, and ``long-boundary`` names the repair.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forwarder.core import AliasState, Outcome, Policy, Verdicts, forward, prepare, validate_bytes
from forwarder.core.boundaries import MAX_BOUNDARY, REPAIR, new_boundary
from forwarder.core.message import first_long_line, split_message

ALIAS = "shop-7hq2@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
LONG = b"=_" + b"0123456789abcdef" * 75  # 1,202 octets


def corpus_dir() -> Path:
    return Path(os.environ.get("OTHERMAIL_CORPUS") or Path(__file__).parents[4] / "shared" / "corpus")


def run(raw: bytes):
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert result.outgoing is not None
    out = result.outgoing.as_bytes()
    assert validate_bytes(out) == []
    return result, out


def boundary_of(head: bytes) -> bytes:
    """The boundary parameter of the first Content-Type, read with the standard library."""
    msg = email.message_from_bytes(head, policy=email.policy.compat32)
    value = msg.get_boundary()
    assert value is not None
    return value.encode("latin-1")


def pieces(body: bytes, boundary: bytes) -> list[bytes]:
    """The body cut at its delimiter lines: preamble, each part, epilogue (delimiters left out)."""
    return re.split(rb"(?m)^--" + re.escape(boundary) + rb"(?:--)?[ \t]*\r?$", body)


def leaves(data: bytes) -> list[tuple[str, bytes]]:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in msg.walk() if not p.is_multipart()]


def multipart(
    boundary: bytes,
    parts: list[bytes],
    eol: bytes = b"\r\n",
    ctype: bytes = b"multipart/mixed",
    param: bytes | None = None,
) -> bytes:
    param = param if param is not None else b'boundary="' + boundary + b'"'
    head = eol.join(
        [
            b"From: Ann <ann@example.com>",
            b"To: " + ALIAS.encode(),
            b"Subject: long boundary",
            b"Date: Fri, 03 May 2024 12:00:00 +0000",
            b"MIME-Version: 1.0",
            b"Content-Type: " + ctype + b";" + eol + b" " + param,
        ]
    )
    body = b"preamble" + eol
    for part in parts:
        body += b"--" + boundary + eol + part + eol
    body += b"--" + boundary + b"--" + eol + b"epilogue" + eol
    return head + eol + eol + body


TEXT_PART = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello, caf\xc3\xa9.\r\n"
BIN_PART = (
    b'Content-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
)


def test_long_top_level_boundary_is_replaced_and_parts_kept() -> None:
    raw = multipart(LONG, [TEXT_PART, BIN_PART])
    result, out = run(raw)
    assert REPAIR in result.repairs
    head, body = out.split(b"\r\n\r\n", 1)
    new = boundary_of(head + b"\r\n\r\n")
    assert len(new) <= 70 and new != LONG
    assert LONG not in out
    before = pieces(bytes(split_message(raw).body), LONG)
    after = pieces(body, new)
    assert before == after  # preamble, every part, epilogue: byte for byte
    assert leaves(out) == leaves(raw)
    assert max(len(line) for line in out.split(b"\r\n")) <= 998


def test_nested_long_boundary_is_replaced_and_the_outer_one_kept() -> None:
    inner = (
        b'Content-Type: multipart/alternative;\r\n boundary="' + LONG + b'"\r\n\r\n'
        b"--" + LONG + b"\r\n" + TEXT_PART + b"\r\n--" + LONG + b"\r\n" + BIN_PART + b"\r\n--" + LONG + b"--"
    )
    raw = multipart(b"outer-short", [TEXT_PART, inner])
    result, out = run(raw)
    assert REPAIR in result.repairs
    assert LONG not in out
    assert boundary_of(out) == b"outer-short"
    outer = pieces(out.split(b"\r\n\r\n", 1)[1], b"outer-short")
    original = pieces(bytes(split_message(raw).body), b"outer-short")
    assert outer[:2] == original[:2] and outer[3:] == original[3:]
    new_inner = boundary_of(outer[2].lstrip(b"\r\n"))
    assert len(new_inner) <= 70
    assert pieces(outer[2], new_inner)[1:] == pieces(original[2], LONG)[1:]
    assert leaves(out) == leaves(raw)


def test_long_boundary_in_rfc2231_continuations_is_replaced() -> None:
    param = b'boundary*0="' + LONG[:600] + b'";\r\n boundary*1="' + LONG[600:] + b'"'
    raw = multipart(LONG, [TEXT_PART], param=param)
    result, out = run(raw)
    assert REPAIR in result.repairs
    assert b"boundary*" not in out
    assert leaves(out) == leaves(raw)


def test_lf_message_with_long_boundary() -> None:
    raw = multipart(LONG, [TEXT_PART.replace(b"\r\n", b"\n"), BIN_PART.replace(b"\r\n", b"\n")], eol=b"\n")
    result, out = run(raw)
    assert REPAIR in result.repairs and b"\r" not in out
    assert leaves(out) == leaves(raw)


def test_boundary_at_the_limit_is_left_alone() -> None:
    edge = b"b" * MAX_BOUNDARY
    raw = multipart(edge, [TEXT_PART])
    result, out = run(raw)
    assert REPAIR not in result.repairs
    assert out.endswith(bytes(split_message(raw).body))


def test_short_boundaries_leave_the_message_as_it_was() -> None:
    raw = multipart(b"short", [TEXT_PART, BIN_PART])
    result, out = run(raw)
    assert REPAIR not in result.repairs
    assert out.endswith(bytes(split_message(raw).body))


def test_new_boundary_never_appears_in_the_body() -> None:
    first = new_boundary(LONG, b"", set())
    body = b"text that quotes --" + first + b" on purpose\r\n"
    second = new_boundary(LONG, body, set())
    assert second != first and b"--" + second not in body
    assert new_boundary(LONG, b"", {first}) != first
    assert len(first) <= 70 and re.fullmatch(rb"[0-9A-Za-z=_.-]+", first)


# --- the corpus -------------------------------------------------------------------------------------


@pytest.fixture
def corpus() -> Path:
    path = corpus_dir()
    if not path.is_dir():
        pytest.skip(f"the shared corpus is not at {path} (set OTHERMAIL_CORPUS)")
    return path


def _top_boundary(raw: bytes) -> bytes | None:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not msg.is_multipart():
        return None
    value = msg.get_boundary()
    return value.encode("latin-1") if value else None


def test_corpus_multiparts_with_a_lengthened_boundary(corpus: Path) -> None:
    """Every multipart message of the corpus, its top-level boundary made 1,202 octets long (set A
    of the corpus has no message whose own boundary passes 986 octets, so they are made here)."""
    tried = 0
    for path in sorted(corpus.rglob("*.eml")):
        raw = path.read_bytes()
        old = _top_boundary(raw)
        if old is None or not re.fullmatch(rb"[0-9A-Za-z'()+_,./:=?-]+", old):
            continue
        split = split_message(raw)
        head = raw[: len(raw) - len(split.body)]
        param = re.compile(rb'(?i)(boundary\s*=\s*)("?)' + re.escape(old) + rb"\2")
        if len(param.findall(head)) != 1:
            continue
        delimiter = re.compile(rb"(?m)^--" + re.escape(old) + rb"(?=--|[ \t]*\r?$)")
        body = bytes(split.body)
        lengthened = param.sub(lambda m: m.group(1) + b'"' + LONG + b'"', head) + delimiter.sub(b"--" + LONG, body)
        result = forward(prepare(lengthened), AliasState(ALIAS), Verdicts(), Policy(), NOW)
        if "body-line-too-long" in result.repairs or result.outgoing is None:
            continue  # the message had long lines of its own: body.py re-encodes those parts
        tried += 1
        out = result.outgoing.as_bytes()
        assert result.outcome is Outcome.FORWARDED, (path, result.reason)
        assert REPAIR in result.repairs, path
        assert validate_bytes(out) == [], path
        new = boundary_of(result.outgoing.head)
        assert pieces(bytes(result.outgoing.body), new) == pieces(body, old), path
    assert tried >= 50, f"only {tried} multipart messages in the corpus at {corpus}"


def test_new_nested_boundary_never_equals_an_outer_one() -> None:
    # an outer boundary crafted to be the one the long inner boundary would get
    crafted = new_boundary(LONG, b"", set())
    inner = (
        b'Content-Type: multipart/alternative; boundary="' + LONG + b'"\r\n\r\n'
        b"--" + LONG + b"\r\n" + TEXT_PART + b"\r\n--" + LONG + b"--"
    )
    raw = multipart(crafted, [TEXT_PART, inner])
    result, out = run(raw)
    assert REPAIR in result.repairs
    assert boundary_of(out) == crafted
    assert out.count(b"--" + crafted + b"\r\n") == 2  # the outer delimiters only
    assert leaves(out) == leaves(raw)


def test_the_body_scan_remembered_is_the_new_bodys() -> None:
    """The outer boundary is short, so the body is scanned for a long (nested) delimiter line; the
    prepared message has a new body, and its remembered scan must be that body's, not the old."""
    inner = (
        b'Content-Type: multipart/alternative;\r\n boundary="' + LONG + b'"\r\n\r\n'
        b"--" + LONG + b"\r\n" + TEXT_PART + b"\r\n--" + LONG + b"--"
    )
    raw = multipart(b"outer-short", [TEXT_PART, inner])
    assert split_message(raw).long_body_line() >= 0
    prepared = prepare(raw)
    assert REPAIR in prepared.split.repairs
    assert prepared.split.long_body_line() == first_long_line(prepared.split.body) == -1
    result = forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.repairs == (REPAIR,)
