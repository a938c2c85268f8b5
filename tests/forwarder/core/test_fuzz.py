"""Fuzzing the forwarding core with hostile headers and MIME trees (strategies in ``strategies.py``).

For every generated message, with an active alias:

- ``prepare()``, ``forward()`` and the log fields (``Prepared.subject``, ``.sender``) never raise
  nor warn (a warning is an exception under ``python -W error``), and the outcome is a named
  :class:`Outcome` an active alias can have;
- the rewritten header block alone always passes the SES pre-flight validator (rule 10 of
  ``headers.py``: a field that breaks a rule is rewritten, never sent broken);
- a FORWARDED message passes the validator as a whole, and its body, the bytes after the first
  blank line, is exactly the input body; when the generator knows where the sender's header block
  ends (RFC 5322's grammar, ``strategies.block_is_plain``), also that body;
- unless ``body-line-too-long`` is among the repairs: then the input had a line over 998 bytes and
  every MIME leaf decodes to the same content as before (``body.py``'s promise), read with the
  standard library's parser;
- a message that is not forwarded carries no bytes and a reason; DROPPED_INVALID happens only for a
  body line too long to repair;
- a multipart boundary too long for a line is replaced (``long-boundary`` among the repairs): then
  every MIME leaf reads the same as in the input, and the body is otherwise the input's;
- a FORWARDED message has exactly one Date, none of the read-receipt or bounce-address requests
  rule 4 removes, and no ``@`` (nor a look-alike) in the display name of its From.

Example counts are bounded (``fuzz()`` below; ``OTHERMAIL_FUZZ_SCALE=10`` runs ten times as many).
With ``CI`` set the runs are derandomized and use no example database, so CI is reproducible.
Speed is not asserted here: ``bench/fuzz_linear.py`` measures the growth with input size.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import email.header
import os
import re
import warnings
from datetime import UTC, datetime

from hypothesis import HealthCheck, currently_in_test_context, example, given, note, settings
from hypothesis import strategies as st

from forwarder.core import (
    SESV1_MAX_BYTES,
    SESV2_MAX_BYTES,
    AliasState,
    Outcome,
    Policy,
    Result,
    Verdicts,
    forward,
    prepare,
    validate,
    validate_bytes,
)
from forwarder.core.boundaries import REPAIR as LONG_BOUNDARY
from forwarder.core.forward import assemble
from forwarder.core.message import first_long_line, split_message
from tests.forwarder.core import strategies as S

ALIAS = S.ALIAS
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
CI = bool(os.environ.get("CI"))
SCALE = max(1, int(os.environ.get("OTHERMAIL_FUZZ_SCALE", "1") or 1))

#: Outcomes an enabled, unexpired alias with a destination can have.
ACTIVE_ALIAS_OUTCOMES = {
    Outcome.FORWARDED,
    Outcome.DROPPED_LOOP,
    Outcome.DROPPED_BOUNCE,
    Outcome.DROPPED_AUTO_REPLY,
    Outcome.DROPPED_SPAM,
    Outcome.DROPPED_VIRUS,
    Outcome.DROPPED_DMARC,
    Outcome.DROPPED_INVALID,
    Outcome.DROPPED_TOO_LARGE,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DELIVERY_STATUS = re.compile(rb"(?i)message/delivery-status")


def fuzz(examples: int) -> settings:
    """The fuzz profile: bounded examples, no deadline, reproducible under CI."""
    options: dict = {
        "max_examples": examples * SCALE,
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "print_blob": True,
    }
    if CI:
        options.update(derandomize=True, database=None)
    return settings(**options)


policies = st.sampled_from(
    [
        Policy(drop_bounces=False, drop_auto_replies=False),  # lets most messages reach the rewrite
        Policy(drop_bounces=False, drop_auto_replies=False),
        Policy(),
    ]
)
verdicts = st.one_of(
    st.just(Verdicts()),
    st.builds(
        Verdicts,
        spam=st.sampled_from(["PASS", "FAIL", "GRAY", "processing_failed", ""]),
        virus=st.sampled_from(["PASS", "FAIL", "DISABLED"]),
        dmarc=st.sampled_from(["PASS", "FAIL"]),
        dmarc_policy=st.sampled_from([None, "reject", "none", "REJECT"]),
    ),
)
envelope_senders = st.sampled_from(
    [None, None, "sender@example.com", "<>", "", "not an address", "j\xf6rg@example.com"]
)
limits = st.sampled_from([SESV2_MAX_BYTES, SESV2_MAX_BYTES, SESV1_MAX_BYTES, 4_000, 20_000])


# --- the oracle -----------------------------------------------------------------------------------


def body_of(data: bytes) -> bytes:
    """The bytes after the first blank line (CRLF or LF), as SES and validate_bytes read them."""
    found = [(pos, width) for pos, width in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if pos >= 0]
    assert found, "no blank line in a forwarded message"
    pos, width = min(found)
    return data[pos + width :]


def _canonical(cte: str, raw: bytes) -> tuple[str, bytes]:
    """A leaf's content as body.py must keep it: decoded, or its base64 characters if undecodable."""
    if cte == "base64":
        chars = re.sub(rb"\s+", b"", raw)
        try:
            return "data", base64.b64decode(chars, validate=True)
        except (binascii.Error, ValueError):
            return "base64", chars
    if cte == "quoted-printable":
        return "data", binascii.a2b_qp(raw)
    return "data", raw


def leaf_contents(head: bytes, body: bytes) -> list[tuple[str, bytes]]:
    """Every MIME leaf of ``head + body``, read with the standard library's parser."""
    contents = []
    # The standard library parses message/delivery-status into header blocks; body.py (like RFC
    # 3464's 7-bit text) treats it as a leaf, so the oracle reads it as one too.
    data = _DELIVERY_STATUS.sub(b"application/x-delivery-status", head + body)
    for part in email.message_from_bytes(data).walk():
        # the payload as parsed, before get_payload() decodes 8-bit text with the part's charset
        payload = part._payload  # noqa: SLF001
        if not isinstance(payload, str):
            continue  # multipart, or an attached message: its leaves follow in walk()
        if part.get_content_maintype() == "multipart":
            # no opening delimiter: the standard library keeps the whole text, while body.py
            # reads what precedes a closing delimiter as the preamble (and may drop its long lines)
            contents.append(("multipart-without-parts", b""))
            continue
        ctes = part.get_all("content-transfer-encoding") or ["7bit"]
        cte = str(ctes[0]).encode("ascii", "surrogateescape").strip().lower()
        kind, content = _canonical(cte.decode("ascii", "replace"), payload.encode("ascii", "surrogateescape"))
        # the same renaming inside content that was encoded on one side only
        contents.append((kind, _DELIVERY_STATUS.sub(b"application/x-delivery-status", content)))
    return contents


def check(
    case: S.Case,
    policy: Policy = Policy(drop_bounces=False, drop_auto_replies=False),
    verdict: Verdicts = Verdicts(),
    envelope_from: str | None = None,
    max_bytes: int = SESV2_MAX_BYTES,
    twice: bool = True,
) -> Result:
    """Run the core on ``case`` and check every promise above; a warning counts as an exception."""
    if currently_in_test_context():
        note(repr(case))  # pytest shows Hypothesis's own print of the arguments blank here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return _check(case, policy, verdict, envelope_from, max_bytes, twice)


def _check(
    case: S.Case, policy: Policy, verdict: Verdicts, envelope_from: str | None, max_bytes: int, twice: bool
) -> Result:
    raw = case.raw
    prepared = prepare(raw, envelope_from)
    # the delivery log's fields: never raise, one clean line each, bounded
    subject, sender = prepared.subject, prepared.sender
    assert isinstance(subject, str) and len(subject) <= 255 and not _CONTROL.search(subject)
    assert isinstance(sender, str) and len(sender) <= 254 and not _CONTROL.search(sender)

    split_body = bytes(prepared.split.body)
    reboundaried = LONG_BOUNDARY in prepared.split.repairs
    if reboundaried:
        # only the boundaries changed: every leaf reads as the sender's did (each body read under
        # its Content-Type alone, so odd header lines cannot make the two readings differ)
        sender = split_message(raw)
        assert leaf_contents(_mime_head(prepared.split.fields), split_body) == leaf_contents(
            _mime_head(sender.fields), bytes(sender.body)
        )
        assert first_long_line(split_body) < 0 or first_long_line(bytes(sender.body)) >= 0
    else:
        assert raw.endswith(split_body)
        if case.body is not None:
            assert split_body == case.body, "the core's header block does not end where the sender's does"

    # Rule 10: whatever came in, the rewritten header block passes the pre-flight on its own.
    head = assemble(prepared, ALIAS, NOW)[0].head
    assert validate(head, b"") == []

    result = forward(prepared, AliasState(ALIAS), verdict, policy, NOW, max_bytes)
    assert isinstance(result.outcome, Outcome)
    assert result.outcome in ACTIVE_ALIAS_OUTCOMES
    # forwarding is a function of its input: a second run gives the same bytes
    again = forward(prepared, AliasState(ALIAS), verdict, policy, NOW, max_bytes) if twice else result
    assert again.outcome is result.outcome

    if result.outcome is not Outcome.FORWARDED:
        assert result.outgoing is None
        assert result.reason.strip()
        if result.outcome is Outcome.DROPPED_INVALID:
            assert first_long_line(split_body) >= 0, "only a body line too long may make a message invalid"
        return result

    assert result.outgoing is not None and again.outgoing is not None
    out = result.outgoing.as_bytes()
    assert out == again.outgoing.as_bytes()
    assert len(out) <= max_bytes
    assert validate_bytes(out, max_bytes) == []
    out_body = body_of(out)
    assert out_body == bytes(result.outgoing.body)
    if "body-line-too-long" in result.repairs:
        # body.py may re-encode a top-level single part, and then says so in the header block
        assert first_long_line(split_body) >= 0
        assert leaf_contents(result.outgoing.head, out_body) == leaf_contents(head, split_body)
    else:
        assert out.startswith(head)
        assert out_body == split_body
        if case.body is not None and not reboundaried:
            assert out_body == case.body
    _check_head(result.outgoing.head)
    return result


def _mime_head(fields: list) -> bytes:
    found = [f for f in fields if f.key == "content-type"][:1]
    return b"".join(line + b"\r\n" for f in found for line in f.lines) + b"\r\n"


_AT_SIGNS = re.compile("[@\uff20\ufe6b]")


def _check_head(head: bytes) -> None:
    """Rules 1, 4 and 11 on a forwarded header block, read without the code under test."""
    unfolded = re.sub(rb"\r?\n[ \t]", b" ", head)
    names = [line.split(b":", 1)[0].strip().lower() for line in re.split(rb"\r?\n", unfolded) if b":" in line]
    assert names.count(b"date") == 1, "exactly one Date (rule 11)"
    assert not set(names) & {n.lower().encode() for n in S.RECEIPT_NAMES}, "rule 4: receipt requests"
    (from_,) = [line for line in re.split(rb"\r?\n", unfolded) if line.lower().startswith(b"from:")]
    value = from_[5:].strip().decode("ascii")
    assert value.endswith(f"<{ALIAS}>")
    name = value[: -len(ALIAS) - 2]
    try:
        shown = str(email.header.make_header(email.header.decode_header(name)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        shown = name  # a sender's undecodable word, kept as written inside the quoted name
    assert not _AT_SIGNS.search(shown), f"an @ in the display name: {shown!r}"


# --- property tests -------------------------------------------------------------------------------


@fuzz(200)
@given(S.messages(), policies, verdicts, envelope_senders, limits)
@example(
    S.Case(b"From: a@example.com\r\nSubject: s\x00\r\n \r\n\r\nbody", b"body"),
    Policy(),
    Verdicts(),
    None,
    SESV2_MAX_BYTES,
)
def test_messages(case: S.Case, policy: Policy, verdict: Verdicts, envelope_from: str | None, max_bytes: int) -> None:
    check(case, policy, verdict, envelope_from, max_bytes)


@fuzz(150)
@given(S.header_fields, S.endings(), st.sampled_from(["blank", "missing", "none", "none-open"]))
def test_one_field(field: S.Field, eol: S.Endings, separator: str) -> None:
    """One field of every kind after a valid From: small inputs, short counterexamples."""
    fields = [b"From: Jane <jane@example.com>", field.render(eol)]
    check(S.assemble_message(fields, b"body" + eol(), eol, separator))


@fuzz(150)
@given(S.address_messages())
def test_address_headers(case: S.Case) -> None:
    """Address fields, quoted, grouped, broken, duplicated: the From is always the alias alone."""
    result = check(case)
    if result.outgoing is not None:
        head = result.outgoing.head.replace(b"\r\n", b"\n").replace(b"\n ", b" ").replace(b"\n\t", b"\t")
        froms = [line for line in head.split(b"\n") if line.lower().startswith(b"from:")]
        assert len(froms) == 1 and froms[0].endswith(b"<" + ALIAS.encode() + b">")


@fuzz(200)
@given(S.mime_messages())
def test_mime_trees(case: S.Case) -> None:
    """Nested multiparts, lost boundaries, 8-bit, base64 and quoted-printable parts, long lines."""
    check(case)


@fuzz(100)
@given(S.duplicated_fields(), S.endings())
def test_duplicated_once_only_fields(group: list[S.Field], eol: S.Endings) -> None:
    fields = [b"From: Jane <jane@example.com>", *(f.render(eol) for f in group)]
    check(S.assemble_message(fields, b"body" + eol(), eol, "blank"))


@fuzz(60)
@given(S.hostile_address_messages())
def test_hostile_address_fields(case: S.Case) -> None:
    """Thousands of nested comments or groups, thousands of encoded words, names with an @: never a
    RecursionError (issue 12.17), never an @ in the From's display name (12.16)."""
    result = check(case)
    assert result.outcome is Outcome.FORWARDED, result.reason


@fuzz(60)
@given(S.long_boundary_messages())
def test_long_boundaries(case: S.Case) -> None:
    """A boundary too long for a line, at the top, nested or both: replaced, the parts kept."""
    result = check(case)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert LONG_BOUNDARY in result.repairs
    assert result.outgoing is not None and first_long_line(result.outgoing.as_bytes()) < 0


@fuzz(20)
@given(S.huge_header_blocks())
def test_huge_header_blocks(case: S.Case) -> None:
    check(case, twice=False)


# --- big inputs (correctness only; bench/fuzz_linear.py measures their time) -----------------------


def _message(fields: list[bytes], body: bytes, eol: bytes = S.CRLF) -> S.Case:
    return S.Case(eol.join(fields) + eol + eol + body, body)


def test_sixteen_thousand_fields() -> None:
    fields = [b"From: Jane <jane@example.com>"]
    for i in range(16_000):
        fields.append(
            [
                b"Received: from relay%d.example.net by mx.example.com; Mon, 23 Nov 2026 11:00:00 +0100" % i,
                b"Subject: duplicate %d" % i,
                b"X-Latin: J\xf6rg %d" % i,
                b"To: user%d@example.com" % i,
                b"X-Folded: a%d\r\n continued" % i,
            ][i % 5]
        )
    result = check(_message(fields, b"body\r\n"), twice=False)
    assert result.outcome is Outcome.FORWARDED


def test_sixteen_thousand_fields_without_blank_line() -> None:
    fields = [b"From: Jane <jane@example.com>", *(b"X-F%d: v" % i for i in range(16_000))]
    result = check(S.Case(b"\n".join(fields), b""), twice=False)
    assert result.outcome is Outcome.FORWARDED


def test_body_of_a_million_lines() -> None:
    body = b"a line of the body\r\n" * 1_000_000
    result = check(_message([b"From: a@example.com", b"Subject: big"], body), twice=False)
    assert result.outcome is Outcome.FORWARDED and result.repairs == ("missing-date",)


def test_body_of_many_lines_and_a_long_one() -> None:
    body = b"a line of the body\r\n" * 200_000 + b"L" * 5_000 + b"\r\n"
    result = check(_message([b"From: a@example.com", b"Content-Type: text/plain; charset=utf-8"], body), twice=False)
    assert result.outcome is Outcome.FORWARDED and "body-line-too-long" in result.repairs


def test_header_of_a_hundred_thousand_continuation_lines() -> None:
    subject = b"Subject: start" + b"".join(b"\r\n part %d" % i for i in range(100_000))
    result = check(_message([b"From: a@example.com", subject], b"body"), twice=False)
    assert result.outcome is Outcome.FORWARDED


def test_dirty_header_of_a_hundred_thousand_continuation_lines() -> None:
    subject = b"Subject: J\xf6rg" + b"".join(b"\r\n\tpart\x00 %d" % i for i in range(100_000))
    to = b"To: " + b",\r\n ".join(b"u%d@example.com" % i for i in range(100_000))
    result = check(_message([b"From: a@example.com", subject, to], b"body"), twice=False)
    assert result.outcome is Outcome.FORWARDED
