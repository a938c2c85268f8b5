"""forwarder/core/trace.py: forged trace fields are removed byte-exactly, ours is written and read
back per RFC 8601, and results map onto the SES verdict values the decision understands."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import default as default_policy

import pytest

from forwarder.core import Verdicts
from forwarder.core.message import split_message
from forwarder.core.trace import (
    NO_VERDICT,
    MethodResult,
    format_authentication_results,
    parse_authentication_results,
    stamp,
    stamped_verdicts,
    strip_trace_fields,
    verdicts_from_results,
)

FORGED = (
    b"Received: from mx.example.net\r\n"
    b"Authentication-Results: othermail.example; dmarc=pass header.from=bank.example\r\n"
    b"Received-SPF: pass (forged)\r\n"
    b"X-SES-Spam-Verdict: PASS\r\n"
    b"X-SES-Virus-Verdict: PASS\r\n"
    b"ARC-Authentication-Results: i=1; relay.example; dkim=pass\r\n"
    b"authentication-results :\r\n\tspf=pass smtp.mailfrom=bank.example\r\n"
    b"From: Bank <ceo@bank.example>\r\n"
    b"X-Note: a\rAuthentication-Results: othermail.example; spf=pass\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"Authentication-Results: this is body text and stays\r\n"
)


def shown_names(raw: bytes) -> list[str]:
    """Header names as the web app's parser (Python's email package) sees them."""
    return [name.lower() for name, _ in BytesHeaderParser(policy=default_policy).parsebytes(raw).raw_items()]


def test_every_forged_trace_field_goes_whoever_reads_the_header_block() -> None:
    stripped, removed = strip_trace_fields(FORGED)
    assert removed == 6
    for names in (shown_names(stripped), [f.key for f in split_message(stripped).fields]):
        assert "authentication-results" not in names and "received-spf" not in names
        assert not any(n.startswith("x-ses-") for n in names)
    assert "arc-authentication-results" in shown_names(stripped)  # a signed ARC set stays whole
    assert stripped.endswith(b"\r\n\r\nAuthentication-Results: this is body text and stays\r\n")
    assert (
        b"Received: from mx.example.net\r\nARC-Authentication-Results: i=1; relay.example; dkim=pass\r\n"
        b"From: Bank <ceo@bank.example>\r\nX-Note: a\rSubject: hi\r\n" in stripped
    )


def test_a_message_without_trace_fields_is_returned_as_is() -> None:
    raw = b"From: a@b.example\nSubject: x\n\nAuthentication-Results: body\n"
    assert strip_trace_fields(raw) == (raw, 0)


def test_a_field_after_the_header_block_is_body_and_stays() -> None:
    raw = b"From: a@b.example\r\nnot a field\r\nAuthentication-Results: x; spf=pass\r\n\r\nbody\r\n"
    assert strip_trace_fields(raw) == (raw, 0)


def test_rfc8601_values_are_parsed_with_their_comments() -> None:
    parsed = parse_authentication_results(
        "mx.Example.net 1; spf=pass (sender ip) smtp.mailfrom=a@b.example;\r\n\tdkim/1=pass header.d=b.example "
        'header.s="s1"; dmarc=fail reason="no aligned id" (p=reject dis=none) header.from=b.example'
    )
    assert parsed is not None and parsed.authserv_id == "mx.example.net"
    spf, dkim, dmarc = parsed.results
    assert (spf.method, spf.result, spf.prop("smtp.mailfrom")) == ("spf", "pass", "a@b.example")
    assert (dkim.method, dkim.prop("header.s")) == ("dkim", "s1")
    assert (dmarc.result, dmarc.reason, dmarc.policy) == ("fail", "no aligned id", "reject")
    assert parse_authentication_results("mx.example.net; none") == parse_authentication_results("mx.example.net;none")
    assert parse_authentication_results("mx.example.net; none").results == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", ["", "(only a comment)", "mx; spf=pass (unclosed", 'mx; spf="open', "(" * 100_000, "a b c; spf=pass"]
)
def test_malformed_values_are_no_result_and_never_an_error(value: str) -> None:
    assert parse_authentication_results(value) is None


def test_rspamd_writes_the_policy_in_its_own_comment() -> None:
    parsed = parse_authentication_results(
        'rspamd.relay.example; dmarc=fail reason="No valid SPF" header.from=b.example (policy=reject)'
    )
    assert parsed is not None and parsed.results[0].policy == "reject"


def test_our_field_is_read_back_into_the_same_verdicts() -> None:
    results = [
        MethodResult("spf", "fail", (("smtp.mailfrom", "x@b.example"),), comments=("192.0.2.1",)),
        MethodResult("dkim", "none"),
        MethodResult("dmarc", "fail", (("header.from", "b.example"),), comments=("p=reject",)),
    ]
    raw = stamp(b"From: a@b.example\r\n\r\nbody\r\n", format_authentication_results("othermail.example", results))
    assert raw.startswith(b"Authentication-Results: othermail.example;\r\n\tspf=fail (192.0.2.1) ")
    assert stamped_verdicts(raw, "othermail.example") == Verdicts(
        spf="FAIL", dkim="GRAY", dmarc="FAIL", dmarc_policy="reject"
    )
    assert stamped_verdicts(raw, "other.example") == NO_VERDICT  # not ours: not trusted


def test_unsafe_values_never_reach_our_field() -> None:
    results = [
        MethodResult("spf", "pass", (("smtp.mailfrom", 'x"y;dmarc=pass@b.example'),), comments=("a) ; dmarc=pass (",))
    ]
    line = format_authentication_results("othermail.example", results)
    parsed = parse_authentication_results(line.decode().partition(":")[2])
    assert parsed is not None and [r.method for r in parsed.results] == ["spf"]
    assert parsed.results[0].properties == ()


def test_nothing_checked_is_no_verdict() -> None:
    raw = stamp(b"Subject: x\n\nbody\n", format_authentication_results("othermail.example", [], b"\n"))
    assert raw.startswith(b"Authentication-Results: othermail.example; none\n")
    assert stamped_verdicts(raw, "othermail.example") == NO_VERDICT


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([MethodResult("spf", "softfail")], Verdicts(spf="GRAY", dkim="DISABLED", dmarc="DISABLED")),
        (
            [MethodResult("dkim", "fail"), MethodResult("dkim", "pass")],
            Verdicts(spf="DISABLED", dkim="PASS", dmarc="DISABLED"),
        ),
        (
            [MethodResult("dmarc", "temperror", comments=("p=reject",))],
            Verdicts(spf="DISABLED", dkim="DISABLED", dmarc="PROCESSING_FAILED"),
        ),
        (
            [MethodResult("dmarc", "fail", comments=("p=quarantine",))],
            Verdicts(spf="DISABLED", dkim="DISABLED", dmarc="FAIL", dmarc_policy="quarantine"),
        ),
    ],
)
def test_results_map_onto_ses_verdicts(results: list[MethodResult], expected: Verdicts) -> None:
    assert verdicts_from_results(results) == expected


# -- generated header blocks ----------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = st.sampled_from(
    [
        "Authentication-Results",
        "authentication-results ",
        "Received-SPF",
        "X-SES-Verdict",
        "X-Ses-Receipt",
        "ARC-Authentication-Results",
        "From",
        "Subject",
        "X-Note",
        "Received",
    ]
)
_EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])
_VALUES = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        name = draw(_NAMES).encode()
        line = name + b":" + draw(_VALUES) + draw(_EOLS)
        if draw(st.booleans()):
            line += b"\t" + draw(_VALUES) + draw(_EOLS)
        lines.append(line)
    return b"".join(lines) + b"X-End: 1\r\n\r\nAuthentication-Results: body\r\n"


@settings(max_examples=300, deadline=None)
@given(header_blocks())
def test_no_reader_finds_a_trace_field_after_stripping(raw: bytes) -> None:
    stripped, _ = strip_trace_fields(raw)
    assert stripped.endswith(b"Authentication-Results: body\r\n")  # the body is never touched
    python_names = shown_names(stripped)
    core_names = [f.key for f in split_message(stripped).fields]
    for names in (python_names, core_names):
        assert not any(
            n.strip() in ("authentication-results", "received-spf") or n.startswith("x-ses-") for n in names
        ), names


def test_a_fail_outranks_a_pass_of_the_same_method() -> None:
    """Review HIGH 1: a second, appended result must not turn our fail into a pass."""
    results = [
        MethodResult("dmarc", "fail", comments=("p=reject",)),
        MethodResult("dmarc", "pass"),
        MethodResult("spf", "pass"),
        MethodResult("spf", "fail"),
    ]
    verdicts = verdicts_from_results(results)
    assert (verdicts.dmarc, verdicts.dmarc_policy, verdicts.spf) == ("FAIL", "reject", "FAIL")


@pytest.mark.parametrize("lead", [b" ; dmarc=pass\r\n", b"\t; dmarc=pass\r\n \r\n", b" x\n"])
def test_leading_continuation_lines_are_stripped(lead: bytes) -> None:
    body = b"From: a@b.example\r\nSubject: s\r\n\r\nbody\r\n"
    stripped, removed = strip_trace_fields(lead + body)
    assert stripped == body and removed == 1
