"""forwarder.core.forward: prepare() + forward() end to end, and a property test over messy input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forwarder.core import (
    AliasState,
    Outcome,
    Outgoing,
    Policy,
    Prepared,
    Verdicts,
    forward,
    prepare,
    rewrite,
    validate_bytes,
)

ALIAS = "shop-7hq2@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
SIMPLE = b"From: Jane <jane@example.com>\r\nTo: " + ALIAS.encode() + b"\r\nSubject: Hi\r\n\r\nHello.\r\n"


def test_prepare_reads_sender_and_subject() -> None:
    prepared = prepare(b"From: Jane <jane@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx")
    assert isinstance(prepared, Prepared)
    assert prepared.sender == "jane@example.com"
    assert prepared.subject == "Grüße"
    assert prepared.size == len(b"From: Jane <jane@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx")


def test_prepare_cleans_and_bounds_subject() -> None:
    raw = b"From: a@example.com\r\nSubject: =?utf-8?b?" + base64.b64encode(b"a\r\nb" + b"c" * 400) + b"?=\r\n\r\n"
    prepared = prepare(raw)
    assert "\r" not in prepared.subject and "\n" not in prepared.subject
    assert len(prepared.subject) == 255
    assert prepared.subject.startswith("a  bccc")


def test_prepare_uses_envelope_when_no_sender_in_headers() -> None:
    prepared = prepare(b"Subject: s\r\n\r\nx", envelope_from="env@example.com")
    assert prepared.sender == "env@example.com"
    assert prepare(b"Subject: s\r\n\r\nx").sender == ""


def test_forward_result_and_outgoing() -> None:
    result = forward(prepare(SIMPLE), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.FORWARDED
    assert result.reason == "forwarded"
    outgoing = result.outgoing
    assert isinstance(outgoing, Outgoing)
    assert outgoing.head.endswith(b"\r\n\r\n")
    assert bytes(outgoing.body) == b"Hello.\r\n"
    assert len(outgoing) == len(outgoing.as_bytes()) == result.bytes_out
    assert outgoing.as_bytes() == outgoing.head + b"Hello.\r\n"


def test_body_is_not_copied() -> None:
    raw = SIMPLE + b"x" * 70 + b"\r\n" * 1_000
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outgoing is not None
    assert isinstance(result.outgoing.body, memoryview)
    assert result.outgoing.body.obj is raw


def test_one_prepared_message_forwards_to_several_aliases() -> None:
    prepared = prepare(SIMPLE)
    first = forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW)
    second = forward(prepared, AliasState("other@othermail.example"), Verdicts(), Policy(), NOW)
    assert first.outgoing is not None and second.outgoing is not None
    assert b"<" + ALIAS.encode() + b">" in first.outgoing.head
    assert b"<other@othermail.example>" in second.outgoing.head
    assert first.outgoing.head != second.outgoing.head
    # forwarding to the first alias did not change what the second one sees
    assert forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW).outgoing.head == first.outgoing.head


def test_rewrite_skips_the_decision() -> None:
    result = rewrite(prepare(SIMPLE + b""), ALIAS)
    assert result.outcome is Outcome.FORWARDED
    dropped = forward(prepare(SIMPLE), AliasState(ALIAS, enabled=False), Verdicts(), Policy(), NOW)
    assert dropped.outcome is Outcome.DROPPED_DISABLED


def test_too_large_boundary() -> None:
    size = len(forward(prepare(SIMPLE), AliasState(ALIAS), Verdicts(), Policy(), NOW).outgoing)
    at_limit = forward(prepare(SIMPLE), AliasState(ALIAS), Verdicts(), Policy(), NOW, max_bytes=size)
    assert at_limit.outcome is Outcome.FORWARDED
    over = forward(prepare(SIMPLE), AliasState(ALIAS), Verdicts(), Policy(), NOW, max_bytes=size - 1)
    assert over.outcome is Outcome.DROPPED_TOO_LARGE
    assert over.outgoing is None
    assert str(size) in over.reason


def test_repairs_are_reported() -> None:
    raw = b"From x Mon\r\n stray\r\nFrom: a@example.com\r\nSubject: caf\xc3\xa9\r\nSubject: again\r\nbody line\r\n"
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.FORWARDED
    assert set(result.repairs) >= {
        "mbox-from-line",
        "leading-continuation",
        "missing-separator",
        "duplicate-subject",
        "rewrote-subject",
    }


# --- property test ------------------------------------------------------------------------------

NAMES = [
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
    "DKIM-Signature",
    "ARC-Seal",
    "Authentication-Results",
    "X-Othermail-Loop",
    "X-Othermail-Original-From",
    "Auto-Submitted",
    "List-Unsubscribe",
    "Received",
    "Delivered-To",
    "X-SES-Spam-Verdict",
]
CHARSETS = [
    b"utf-8",
    b"UTF-8",
    b"iso-8859-1",
    b"windows-1252",
    b"shift_jis",
    b"koi8-r",
    b"x-unknown-cs",
    b"utf-8*en",
    b"gb2312",
]

field_names = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(str.upper),
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=40
    ),
)
encoded_words = st.builds(
    lambda cs, kind, data: b"=?" + cs + b"?" + kind + b"?" + data + b"?=",
    st.sampled_from(CHARSETS),
    st.sampled_from([b"b", b"B", b"q", b"Q"]),
    st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b)),
        st.binary(max_size=30).map(lambda b: bytes(c for c in b if 33 <= c <= 126 and c != ord("?"))),
    ),
)
fragments = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.encode),
    st.text(max_size=15).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=15).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from(
        [
            b"\x00",
            b"\r",
            b" ",
            b"\t",
            b"@",
            b"<",
            b">",
            b'"',
            b",",
            b";",
            b"(",
            b")",
            b"\\",
            b"a@example.com",
            b"<m@example.com>",
            b"Name <n@example.com>",
            b'"A, B" <ab@example.com>',
            b"undisclosed-recipients:;",
            b"<>",
            b"multipart/report; report-type=delivery-status",
            b"text/plain; charset=iso-8859-1",
            b"multipart/mixed; boundary=zz",
            b"auto-replied",
        ]
    ),
    encoded_words,
    st.integers(min_value=990, max_value=1300).map(lambda n: b"Y" * n),
).map(lambda b: b.replace(b"\n", b""))  # a line feed would end the field; FOLD makes continuations
FOLD = object()
values = st.lists(st.one_of(fragments, st.just(FOLD)), max_size=8)
bodies = st.one_of(
    st.binary(max_size=600),
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.integers(min_value=995, max_value=2500).map(lambda n: b"B" * n),
            st.sampled_from([b"\r\n", b"\n", b"\r", b"--zz\r\n", b"--zz--\r\n", b"\x00"]),
        ),
        max_size=12,
    ).map(b"".join),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """(raw message, its body when the test can know it independently, else None)."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines: list[bytes] = []
    if draw(st.booleans()) and draw(st.booleans()):
        lines.append(b"From sender@example.com Fri May  3 10:00:00 2024")
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        name = draw(field_names).encode()
        value = b""
        physical = name + b":" + draw(st.sampled_from([b" ", b"", b"\t"]))
        for part in draw(values):
            if part is FOLD:
                physical += eol + draw(st.sampled_from([b" ", b"\t", b"  "]))
            else:
                value += part
                physical += part
        lines.append(physical)
    body = draw(bodies)
    separator = draw(st.sampled_from(["blank", "blank", "blank", "missing", "none"]))
    head = b"".join(line + eol for line in lines)
    if separator == "blank":
        return head + eol + body, body
    if separator == "missing":
        body = b"this first body line has no colon" + eol + body
        return head + body, body
    return eol.join(lines), None


def _check(raw: bytes, known_body: bytes | None) -> None:
    prepared = prepare(raw)
    result = forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome in {
        Outcome.FORWARDED,
        Outcome.DROPPED_LOOP,
        Outcome.DROPPED_BOUNCE,
        Outcome.DROPPED_AUTO_REPLY,
        Outcome.DROPPED_INVALID,
    }
    if result.outcome is not Outcome.FORWARDED:
        assert result.outgoing is None
        assert result.reason
        return
    assert result.outgoing is not None
    out = result.outgoing.as_bytes()
    assert validate_bytes(out) == []
    if "body-line-too-long" not in result.repairs:
        if known_body is not None:
            assert out.endswith(known_body)
            assert result.outgoing.body == known_body
        assert bytes(result.outgoing.body) == bytes(prepared.split.body)
        assert out.endswith(bytes(prepared.split.body))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
@example((b"From: a@example.com\r\nSubject: s\x00\r\n \r\n\r\n", b""))
@example((b"X-" + b"N" * 1100 + b": v\r\n\r\nbody", b"body"))
@example((b"To: =?utf-8?b?" + base64.b64encode(b"x\r\nBcc: v@x") + b"?= <t@example.com>\n\nb", b"b"))
def test_prepare_and_forward_never_raise_and_forwarded_output_is_valid(case: tuple[bytes, bytes | None]) -> None:
    raw, body = case
    _check(raw, body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _check(raw, None)
