"""forwarder.core.headers: one group of tests per rule in the module's docstring (rules 1-10)."""

from __future__ import annotations

import base64
import email.header
import email.utils
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core import AliasState, Outcome, Policy, Verdicts, forward, prepare, validate_bytes
from forwarder.core.headers import (
    _COMMON_DATE,
    LOOP,
    MAX_HEADER_RECIPIENTS,
    MAX_HOPS,
    ONCE_ONLY,
    ORIGINAL_FROM,
    REMOVED,
    _readable_date,
    loop_token,
    read_origin,
    rewrite_headers,
)
from forwarder.core.message import split_message
from forwarder.core.validator import validate

ALIAS = "shop-7hq2@othermail.example"
OTHER_ALIAS = "news-x1@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)


def message(*header_lines: str | bytes, body: bytes = b"Body.\r\n") -> bytes:
    encoded = [h.encode("utf-8") if isinstance(h, str) else h for h in header_lines]
    return b"".join(h + b"\r\n" for h in encoded) + b"\r\n" + body


def run(raw: bytes, alias: str = ALIAS) -> bytes:
    result = forward(prepare(raw), AliasState(alias), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert result.outgoing is not None
    out = result.outgoing.as_bytes()
    assert validate_bytes(out) == []
    return out


def fields(out: bytes) -> list[tuple[str, bytes]]:
    """(name, unfolded value) of every header field, parsed independently of the code under test."""
    head = out[: out.index(b"\r\n\r\n")] if b"\r\n\r\n" in out else out[: out.index(b"\n\n")]
    result: list[tuple[str, bytes]] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            name, value = result[-1]
            result[-1] = (name, (value + line).strip())
        else:
            name, _, value = line.partition(b":")
            result.append((name.decode("ascii"), value.strip()))
    return result


def values(out: bytes, name: str) -> list[bytes]:
    return [v for n, v in fields(out) if n.lower() == name.lower()]


def physical_lines(out: bytes) -> list[bytes]:
    return out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def decode(value: bytes) -> str:
    return str(email.header.make_header(email.header.decode_header(value.decode("ascii"))))


# --- Rule 1: From becomes the alias with a display name naming the sender ----------------------


def test_rule1_from_is_the_alias_with_sender_in_display_name() -> None:
    out = run(message("From: Jane Doe <jane@example.com>", "Subject: s"))
    assert values(out, "From") == [b'"Jane Doe (jane at example.com)" <' + ALIAS.encode() + b">"]


def test_rule1_sender_without_name() -> None:
    out = run(message("From: jane@example.com"))
    assert values(out, "From") == [b'"jane at example.com" <' + ALIAS.encode() + b">"]


def test_rule1_display_name_with_at_is_spelled_like_the_address() -> None:
    # Issue 12.16: "ceo@bank.example" in the name read as an address in many clients.
    out = run(message('From: "ceo@bank.example" <x@evil.example>'))
    (from_,) = values(out, "From")
    assert from_ == b'"ceo at bank.example (x at evil.example)" <' + ALIAS.encode() + b">"


AT_SIGNS = ("@", "\uff20", "\ufe6b")  # @, FULLWIDTH and SMALL COMMERCIAL AT (NFKC "@")


def display_name(out: bytes) -> str:
    (from_,) = values(out, "From")
    text = decode(from_)
    assert text.endswith(f" <{ALIAS}>"), text
    return text[: -len(f" <{ALIAS}>")]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('From: "security@paypal.com" <attacker@evil.example>', '"security at paypal.com (attacker at evil.example)"'),
        ("From: security@paypal.com <attacker@evil.example>", '"security at paypal.com (attacker at evil.example)"'),
        ("From: attacker@evil.example (security@paypal.com)", '"security at paypal.com (attacker at evil.example)"'),
        (
            'From: "PayPal <service@paypal.com>" <attacker@evil.example>',
            '"PayPal <service at paypal.com> (attacker at evil.example)"',
        ),
        (
            'From: "a @ b.example, c@d.example" <attacker@evil.example>',
            '"a at b.example, c at d.example (attacker at evil.example)"',
        ),
        (
            "From: =?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQ==?= <attacker@evil.example>",
            '"security at paypal.com (attacker at evil.example)"',
        ),
        (
            "From: =?utf-8?q?security=40paypal.com?= <attacker@evil.example>",
            '"security at paypal.com (attacker at evil.example)"',
        ),
        (
            "From: =?utf-8?b?c2VjdXJpdHnvvKBwYXlwYWwuY29t?= <attacker@evil.example>",  # fullwidth, encoded
            '"security at paypal.com (attacker at evil.example)"',
        ),
        (
            'From: "security\uff20paypal.com" <attacker@evil.example>',  # fullwidth, raw UTF-8
            '"security at paypal.com (attacker at evil.example)"',
        ),
        (
            'From: "security\ufe6bpaypal.com" <attacker@evil.example>',
            '"security at paypal.com (attacker at evil.example)"',
        ),
        (
            'From: "J\u00f6rg\uff20bank.example" <attacker@evil.example>',
            "J\u00f6rg at bank.example (attacker at evil.example)",
        ),
    ],
)
def test_rule1_no_address_like_token_survives_in_the_display_name(header: str, name: str) -> None:
    out = run(message(header))
    shown = display_name(out)
    assert not any(at in shown for at in AT_SIGNS), shown
    assert shown == name


def test_rule1_from_without_an_address_is_spelled_too() -> None:
    out = run(message("From: Support \uff20 paypal.com"))
    assert display_name(out) == '"Support at paypal.com"'


def test_rule1_at_sign_in_the_sender_address_is_spelled_whatever_its_form() -> None:
    out = run(message('From: "x@y" <"a@b"@evil.example>'))
    shown = display_name(out)
    assert not any(at in shown for at in AT_SIGNS), shown
    assert "evil.example" in shown


def test_sender_display_name_never_holds_an_at_sign() -> None:
    from forwarder.core.addresses import Mailbox, sender_display_name

    for name in ("a@b", "a\uff20b", "a\ufe6bb", "@@@", "x (y@z)", "a" * 80 + "@b.example"):
        shown = sender_display_name(Mailbox(name, "s@evil.example"))
        assert not any(at in shown for at in AT_SIGNS), shown
        assert shown.endswith("(s at evil.example)")
    assert sender_display_name(Mailbox("", "s\uff20x@evil.example")) == "s at x at evil.example"


def test_rule1_encoded_crlf_in_name_never_becomes_a_line_break() -> None:
    word = base64.b64encode(b"Eve\r\nBcc: victim@example.com\r\n\r\nbody").decode()
    out = run(message(f"From: =?utf-8?b?{word}?= <eve@example.com>", "To: " + ALIAS))
    assert values(out, "Bcc") == []
    assert [n for n, _ in fields(out)].count("From") == 1
    (from_,) = values(out, "From")
    assert b"\r" not in from_ and b"\n" not in from_
    assert from_.startswith(b'"Eve') and from_.endswith(b"<" + ALIAS.encode() + b">")


def test_rule1_non_ascii_name_is_rfc2047() -> None:
    out = run(message("From: =?utf-8?q?J=C3=A9r=C3=B4me?= <j@example.fr>"))
    (from_,) = values(out, "From")
    assert from_.isascii()
    assert decode(from_) == f"Jérôme (j at example.fr) <{ALIAS}>"


def test_rule1_long_display_name_is_shortened() -> None:
    out = run(message("From: " + "N" * 200 + " <n@example.com>"))
    (from_,) = values(out, "From")
    assert from_.isascii()
    assert decode(from_) == "N" * 63 + f"… (n at example.com) <{ALIAS}>"


def test_rule1_name_with_unquoted_comma_is_kept_whole() -> None:
    out = run(message("From: Norton I., Emperor <norton@example.com>"))
    assert values(out, ORIGINAL_FROM) == [b'"Norton I., Emperor" <norton@example.com>']


def test_rule1_missing_from_is_added_first() -> None:
    raw = message("Subject: no from", "To: " + ALIAS)
    split = split_message(raw)
    rewritten = rewrite_headers(split, read_origin(split, None), ALIAS)
    assert rewritten.lines[0] == b"From: unknown sender <" + ALIAS.encode() + b">"
    assert "missing-from" in rewritten.repairs


def test_rule1_missing_from_uses_envelope_sender() -> None:
    raw = message("Subject: no from")
    result = forward(prepare(raw, "bounce@list.example"), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outgoing is not None
    out = result.outgoing.as_bytes()
    assert values(out, "From") == [b'"bounce at list.example" <' + ALIAS.encode() + b">"]
    assert values(out, "Reply-To") == [b"bounce@list.example"]


def test_rule1_from_without_address_falls_back_to_sender_field() -> None:
    out = run(message("From: Just A Name", "Sender: robot@list.example"))
    assert values(out, "From") == [b'"robot at list.example" <' + ALIAS.encode() + b">"]
    assert values(out, "Sender") == []


# --- Rule 2: X-Othermail-Original-From, and no forged X-Othermail-* ----------------------------


def test_rule2_original_from_is_written() -> None:
    out = run(message("From: Jane Doe <jane@example.com>"))
    assert values(out, ORIGINAL_FROM) == [b"Jane Doe <jane@example.com>"]


def test_rule2_forged_othermail_fields_are_removed() -> None:
    out = run(
        message(
            "X-Othermail-Original-From: Bank <security@bank.example>",
            "From: Jane Doe <jane@example.com>",
            "x-othermail-verdict: clean",
            "X-OTHERMAIL-ORIGINAL-FROM: another@forged.example",
        )
    )
    assert values(out, ORIGINAL_FROM) == [b"Jane Doe <jane@example.com>"]
    assert values(out, "X-Othermail-Verdict") == []
    assert b"bank.example" not in out and b"forged.example" not in out


def test_rule2_loop_field_is_kept() -> None:
    out = run(message("From: a@example.com", f"{LOOP}: 0123456789abcdef0123"))
    assert values(out, LOOP) == [b"0123456789abcdef0123", loop_token(ALIAS).encode()]


def test_rule2_sender_without_7bit_form_is_kept_as_encoded_text() -> None:
    out = run(message("From: Jörg <jörg@beispiel.de>"))
    (original,) = values(out, ORIGINAL_FROM)
    assert original.isascii()
    assert decode(original) == "Jörg <jörg@beispiel.de>"
    assert values(out, "Reply-To") == []  # no 7-bit address to reply to


# --- Rule 3: replies reach the real sender ------------------------------------------------------


def test_rule3_first_reply_to_is_kept() -> None:
    out = run(message("From: a@example.com", "Reply-To: List <list@example.com>", "Reply-To: b@example.com"))
    assert values(out, "Reply-To") == [b"List <list@example.com>"]


def test_rule3_reply_to_added_from_sender() -> None:
    out = run(message('From: "Doe, Jane" <jane@example.com>'))
    assert values(out, "Reply-To") == [b'"Doe, Jane" <jane@example.com>']


def test_rule3_no_reply_to_without_a_sender() -> None:
    out = run(message("Subject: anonymous"))
    assert values(out, "Reply-To") == []


# --- Rule 4: removed fields ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REMOVED))
def test_rule4_removed_field(name: str) -> None:
    value = "<someone@example.org>" if name != "dkim-signature" else "v=1; a=rsa-sha256; d=x; b=abc"
    out = run(message("From: a@example.com", f"{name.title()}: {value}", f"{name.upper()}: {value}", "Subject: kept"))
    assert values(out, name) == []
    assert values(out, "Subject") == [b"kept"]


RECEIPT_FIELDS = [
    "Disposition-Notification-To",
    "Disposition-Notification-Options",
    "Return-Receipt-To",
    "Read-Receipt-To",
    "X-Confirm-Reading-To",
    "Errors-To",
    "Generate-Delivery-Report",
    "X-PMRQC",
]


@pytest.mark.parametrize("name", RECEIPT_FIELDS)
def test_rule4_read_receipt_and_bounce_address_fields_are_removed(name: str) -> None:
    # Issue 12.15: an MDN or a bounce sent on request leaves from the destination's real mailbox.
    value = "Jane <jane@example.com>" if name.endswith("-To") else "1"
    out = run(message("From: Jane <jane@example.com>", f"{name}: {value}", f"{name.lower()}: {value}", "Subject: kept"))
    assert values(out, name) == []
    assert values(out, "Subject") == [b"kept"]
    assert [n for n, _ in fields(out)] == ["From", ORIGINAL_FROM, "Subject", "Reply-To", LOOP, "Date"]


@pytest.mark.parametrize(
    "name",
    [
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "X-SES-Spam-Verdict",
        "X-SES-Virus-Verdict",
        "X-SES-RECEIPT",
        "X-SES-DKIM-SIGNATURE",
        "X-Othermail-Anything",
    ],
)
def test_rule4_removed_prefixes(name: str) -> None:
    out = run(message("From: a@example.com", f"{name}: i=1;", " continued=yes", "X-Kept: yes"))
    assert values(out, name) == []
    assert b"continued=yes" not in out
    assert values(out, "X-Kept") == [b"yes"]


def test_rule4_folded_removed_fields_leave_no_continuation_behind() -> None:
    out = run(
        message(
            "Return-Path:", " <b@example.com>", "Sender: S", "\t<s@example.com>", "From: a@example.com", "Subject: s"
        )
    )
    lines = physical_lines(out)
    assert not any(b"b@example.com" in line or b"s@example.com" in line for line in lines)
    assert values(out, "Subject") == [b"s"]


# --- Rule 5: Authentication-Results is renamed ------------------------------------------------


def test_rule5_authentication_results_renamed_with_continuations() -> None:
    out = run(message("From: a@example.com", "Authentication-Results: mx.example;", " spf=pass;", " dkim=pass"))
    assert values(out, "Authentication-Results") == []
    assert values(out, "X-Original-Authentication-Results") == [b"mx.example; spf=pass; dkim=pass"]
    assert b"X-Original-Authentication-Results: mx.example;\r\n spf=pass;\r\n dkim=pass\r\n" in out


def test_rule5_forged_original_authentication_results_removed() -> None:
    out = run(
        message(
            "X-Original-Authentication-Results: forged; dmarc=pass",
            "From: a@example.com",
            "Authentication-Results: real; dmarc=fail",
        )
    )
    assert values(out, "X-Original-Authentication-Results") == [b"real; dmarc=fail"]


# --- Rule 6: fields SES accepts once ------------------------------------------------------------

ONCE_VALUES = {
    "reply-to": ("first@example.com", "second@example.com"),
    "content-type": ("text/plain; charset=utf-8", "text/html"),
    "date": ("Thu, 2 May 2024 08:00:00 -0700", "Fri, 3 May 2024 08:00:00 -0700"),  # an unreadable one is replaced
}
ONCE_KEPT = sorted(ONCE_ONLY - set(REMOVED) - {"from", "to", "cc", "references"})


@pytest.mark.parametrize("key", ONCE_KEPT)
def test_rule6_first_occurrence_kept(key: str) -> None:
    first, second = ONCE_VALUES.get(key, ("first-value", "second-value"))
    name = "-".join(part.capitalize() for part in key.split("-"))
    out = run(message("From: a@example.com", f"{name}: {first}", "X-Between: 1", f"{key.upper()}: {second}"))
    assert values(out, key) == [first.encode()]


def test_rule6_to_cc_references_are_merged() -> None:
    out = run(
        message(
            "From: a@example.com",
            f"To: {ALIAS}",
            "Cc: c1@example.com",
            "To: t2@example.com",
            "References: <r1@example.com>",
            "cc: c2@example.com",
            "REFERENCES: <r2@example.com>",
        )
    )
    assert values(out, "To") == [ALIAS.encode() + b", t2@example.com"]
    assert values(out, "Cc") == [b"c1@example.com, c2@example.com"]
    assert values(out, "References") == [b"<r1@example.com> <r2@example.com>"]


def test_rule6_duplicate_mime_version_is_recorded() -> None:
    raw = message("MIME-Version: 1.0", "From: a@example.com", "MIME-Version: 1.0")
    split = split_message(raw)
    rewritten = rewrite_headers(split, read_origin(split, None), ALIAS)
    assert rewritten.lines.count(b"MIME-Version: 1.0") == 1
    assert "duplicate-mime-version" in rewritten.repairs


def test_rule6_two_froms_give_one_from() -> None:
    out = run(message("From: first@example.com", "From: second@example.com"))
    assert len(values(out, "From")) == 1
    assert values(out, ORIGINAL_FROM) == [b"first@example.com"]


# --- Rule 7: threading --------------------------------------------------------------------------


def test_rule7_message_id_appended_to_references_once() -> None:
    out = run(
        message(
            "From: a@example.com",
            "Message-ID: <m1@example.com>",
            "In-Reply-To: <p@example.com>",
            "References: <s@example.com> <p@example.com>",
        )
    )
    assert values(out, "Message-ID") == [b"<m1@example.com>"]
    assert values(out, "In-Reply-To") == [b"<p@example.com>"]
    assert values(out, "References") == [b"<s@example.com> <p@example.com> <m1@example.com>"]


def test_rule7_references_created_when_missing() -> None:
    out = run(message("From: a@example.com", "Message-ID: <m1@example.com>"))
    assert values(out, "References") == [b"<m1@example.com>"]


def test_rule7_not_appended_twice() -> None:
    out = run(message("From: a@example.com", "Message-ID: <m1@example.com>", "References: <m1@example.com>"))
    assert values(out, "References") == [b"<m1@example.com>"]


def test_rule7_no_message_id_no_references() -> None:
    out = run(message("From: a@example.com", "Message-ID: not-a-message-id"))
    assert values(out, "References") == []


def test_rule7_forwarding_twice_appends_once() -> None:
    first = run(message("From: a@example.com", "Message-ID: <m1@example.com>"))
    second = run(first, alias=OTHER_ALIAS)
    assert values(second, "References") == [b"<m1@example.com>"]


# --- Rule 8: header recipients ------------------------------------------------------------------


def addresses(prefix: str, count: int) -> str:
    return ", ".join(f"{prefix}{i}@example.com" for i in range(count))


def test_rule8_fifty_recipients_are_left_alone() -> None:
    out = run(message("From: a@example.com", "To: " + addresses("t", 25), "Cc: " + addresses("c", 25)))
    assert len(values(out, "To")[0].split(b",")) == 25
    assert len(values(out, "Cc")[0].split(b",")) == 25
    assert values(out, "X-Original-Cc") == []


def test_rule8_cc_renamed_first() -> None:
    out = run(message("From: a@example.com", "To: " + addresses("t", 25), "Cc: " + addresses("c", 26)))
    assert values(out, "Cc") == []
    assert values(out, "X-Original-Cc") == [addresses("c", 26).encode()]
    assert values(out, "To") == [addresses("t", 25).encode()]
    assert values(out, "X-Original-To") == []


def test_rule8_to_renamed_when_still_over_and_to_becomes_alias() -> None:
    out = run(message("From: a@example.com", "To: " + addresses("t", 55), "Cc: " + addresses("c", 5)))
    assert values(out, "X-Original-To") == [addresses("t", 55).encode()]
    assert values(out, "X-Original-Cc") == [addresses("c", 5).encode()]
    assert values(out, "To") == [ALIAS.encode()]
    assert values(out, "Cc") == []


def test_rule8_cc_only_gets_alias_as_to() -> None:
    out = run(message("From: a@example.com", "Cc: " + addresses("c", MAX_HEADER_RECIPIENTS + 1)))
    assert values(out, "To") == [ALIAS.encode()]
    assert values(out, "Cc") == []


def test_rule8_counts_merged_fields() -> None:
    out = run(message("From: a@example.com", "To: " + addresses("t", 30), "To: " + addresses("u", 30)))
    assert values(out, "To") == [ALIAS.encode()]
    assert len(values(out, "X-Original-To")[0].split(b",")) == 60


def test_validator_counts_to_cc_bcc_of_a_header_block() -> None:
    head = (
        b"From: a@example.com\r\nTo: t1@example.com,\r\n t2@example.com\r\nCc: c@example.com\r\n"
        b"Bcc: " + b", ".join(b"b%d@example.com" % i for i in range(48)) + b"\r\nReply-To: r@example.com\r\n\r\n"
    )
    assert [v.code for v in validate(head, b"")] == ["too-many-recipients"]
    assert validate(head.replace(b"b46@example.com, ", b""), b"") == []


# --- Rule 9: loop guard -------------------------------------------------------------------------


def test_rule9_loop_token_is_added_and_stable() -> None:
    out = run(message("From: a@example.com"))
    assert values(out, LOOP) == [loop_token(ALIAS).encode()]
    assert loop_token(ALIAS) == loop_token(ALIAS.upper())
    assert loop_token(ALIAS) != loop_token(OTHER_ALIAS)
    assert ALIAS.split("@")[0] not in loop_token(ALIAS)


def test_rule9_own_token_drops_the_message() -> None:
    forwarded = run(message("From: a@example.com", "Subject: once"))
    result = forward(prepare(forwarded), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.DROPPED_LOOP
    assert result.outgoing is None


def test_rule9_another_alias_forwards_once_more() -> None:
    forwarded = run(message("From: a@example.com"))
    again = run(forwarded, alias=OTHER_ALIAS)
    assert values(again, LOOP) == [loop_token(ALIAS).encode(), loop_token(OTHER_ALIAS).encode()]


def test_rule9_max_hops_tokens_from_other_aliases_drop_it() -> None:
    tokens = [f"{LOOP}: {loop_token(f'a{i}@othermail.example')}" for i in range(MAX_HOPS)]
    result = forward(prepare(message("From: a@example.com", *tokens)), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.DROPPED_LOOP


def test_rule9_fewer_than_max_hops_tokens_forward() -> None:
    tokens = [f"{LOOP}: {loop_token(f'a{i}@othermail.example')}" for i in range(MAX_HOPS - 1)]
    out = run(message("From: a@example.com", *tokens))
    assert len(values(out, LOOP)) == MAX_HOPS


# --- Rule 10: 7-bit, well-formed lines ----------------------------------------------------------


def test_rule10_raw_utf8_subject_is_encoded() -> None:
    out = run(message("From: a@example.com", "Subject: Grüße ☕"))
    (subject,) = values(out, "Subject")
    assert subject.isascii() and decode(subject) == "Grüße ☕"


def test_rule10_undeclared_8bit_uses_body_charset() -> None:
    raw = message(b"From: a@example.com", b"Subject: caf\xe9", b"Content-Type: text/plain; charset=iso-8859-1")
    (subject,) = values(run(raw), "Subject")
    assert decode(subject) == "café"


def test_rule10_addresses_rewritten_one_by_one() -> None:
    out = run(
        message("From: a@example.com", 'To: Jörg <joerg@bücher.example>, plain@example.org, "Doe, J" <j@example.org>')
    )
    (to,) = values(out, "To")
    assert to.isascii()
    assert b"<joerg@xn--bcher-kva.example>" in to
    assert b", plain@example.org, " in to
    assert to.endswith(b'"Doe, J" <j@example.org>')
    assert decode(to.split(b",")[0]).startswith("Jörg")


def test_rule10_mime_parameters_use_rfc2231() -> None:
    out = run(message("From: a@example.com", 'Content-Disposition: attachment; filename="Grüße.pdf"'))
    assert values(out, "Content-Disposition") == [b"attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.pdf"]


def test_rule10_nul_and_bare_cr_removed() -> None:
    out = run(message(b"From: a@example.com", b"X-Note: a\x00b\rc"))
    (note,) = values(out, "X-Note")
    assert b"\x00" not in note and b"\r" not in note
    assert note.replace(b" ", b"") == b"abc"


def test_rule10_whitespace_only_continuation_dropped() -> None:
    out = run(message("From: a@example.com", "Subject: hello", " ", "\t", " world"))
    assert values(out, "Subject") == [b"hello world"]
    assert all(line.strip() for line in physical_lines(out))


def test_rule10_strict_field_without_valid_form_is_renamed() -> None:
    out = run(message(b"From: a@example.com", b"Message-ID: <caf\xc3\xa9@example.com>"))
    assert values(out, "Message-ID") == []
    (original,) = values(out, "X-Original-Message-ID")
    assert decode(original) == "<café@example.com>"


def test_rule10_overlong_strict_ascii_field_is_folded() -> None:
    refs = " ".join(f"<ref-{i:04d}@example.com>" for i in range(60))
    out = run(message("From: a@example.com", "References: " + refs))
    assert values(out, "References") == [refs.encode()]
    assert all(len(line) <= 998 for line in physical_lines(out))


def test_rule10_renamed_field_is_not_prefixed_twice() -> None:
    out = run(message(b"From: a@example.com", b"X-Original-Date: caf\xe9 \x00"))
    assert values(out, "X-Original-X-Original-Date") == []
    assert len(values(out, "X-Original-Date")) == 1


def test_rule10_clean_fields_are_left_exactly_as_they_were() -> None:
    odd = [
        b"Subject:  two  spaces and\ta tab",
        b"\tfolded with a tab",
        b"X-Custom:value-without-space",
        b"Date: Fri, 3 May 2024 08:00:00 +0200 (CEST)",
        b"Keywords: a,  b",
    ]
    out = run(message(b"From: a@example.com", *odd))
    lines = physical_lines(out)
    for line in odd:
        assert line in lines


# --- Rule 11: a Date is always there -------------------------------------------------------------


def forward_result(raw: bytes, now: datetime = NOW):
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), now)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert result.outgoing is not None and validate_bytes(result.outgoing.as_bytes()) == []
    return result


def test_rule11_missing_date_is_added_from_now_in_utc() -> None:
    # Issue 12.20: SES adds a Date, the one box and the SMTP relay do not.
    result = forward_result(message("From: a@example.com", "Subject: no date"))
    out = result.outgoing.as_bytes()
    assert values(out, "Date") == [b"Fri, 03 May 2024 16:00:00 +0000"]
    assert "missing-date" in result.repairs
    assert email.utils.parsedate_to_datetime(values(out, "Date")[0].decode()) == NOW


def test_rule11_now_in_another_zone_or_naive_is_written_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    aware = forward_result(message("From: a@example.com"), datetime(2024, 5, 3, 18, 0, tzinfo=paris))
    naive = forward_result(message("From: a@example.com"), datetime(2024, 5, 3, 16, 0))
    for result in (aware, naive):
        assert values(result.outgoing.as_bytes(), "Date") == [b"Fri, 03 May 2024 16:00:00 +0000"]


def test_rule11_existing_date_is_kept_as_it_was() -> None:
    result = forward_result(message("From: a@example.com", "Date: Thu, 2 May 2024 08:00:00 -0700 (PDT)"))
    assert values(result.outgoing.as_bytes(), "Date") == [b"Thu, 2 May 2024 08:00:00 -0700 (PDT)"]
    assert "missing-date" not in result.repairs


def test_rule11_a_date_renamed_by_rule10_is_replaced() -> None:
    result = forward_result(message(b"From: a@example.com", b"Date: Fr, 3 Mai 2024 \xb1 0200"))
    out = result.outgoing.as_bytes()
    assert values(out, "Date") == [b"Fri, 03 May 2024 16:00:00 +0000"]
    assert len(values(out, "X-Original-Date")) == 1


# --- Reading fields for display (the web app's message page, issue 12.10 and 12.17) -------------


def test_display_fields_decode_without_parsing_addresses() -> None:
    from forwarder.core.headers import display_fields

    nested = b"(" * 5_000 + b"x" + b")" * 5_000
    raw = (
        b"From: "
        + nested
        + b" <a@example.com>\r\nTo: "
        + b" ".join([b"=?utf-8?q?a?="] * 3_000)
        + b" <b@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n =?utf-8?q?_aus_K=C3=B6ln?=\r\n"
        + b"Subject: J\xf6rg\r\n\r\nbody"
    )
    shown = display_fields(raw, ["From", "To", "Subject"])
    assert [n for n, _ in shown] == ["From", "To", "Subject", "Subject"]
    assert shown[0][1].endswith("x" + ")" * 5_000 + " <a@example.com>")
    assert shown[1][1] == "a" * 3_000 + " <b@example.com>"
    assert shown[2][1] == "Grüße aus Köln"
    assert shown[3][1] == "Jörg"  # 8-bit, not UTF-8: read as cp1252
    assert all("\r" not in text and "\n" not in text for _, text in shown)


@pytest.mark.parametrize(
    "date", [b"Date:", b"Date: ", b"Date: =?utf-8?q?x?=", b"Date: yesterday", b"Date: Fri, 31 Feb 2024 08:00:00 +0000"]
)
def test_rule11_an_empty_or_unparsable_date_is_renamed_and_replaced(date: bytes) -> None:
    """Review LOW 8: such a Date counted as present, so the message left with no valid one."""
    result = forward_result(message(b"From: a@example.com", date))
    out = result.outgoing.as_bytes()
    assert values(out, "Date") == [b"Fri, 03 May 2024 16:00:00 +0000"]
    assert len(values(out, "X-Original-Date")) == 1
    assert "missing-date" in result.repairs


def test_rule11_a_folded_valid_date_is_kept() -> None:
    result = forward_result(message(b"From: a@example.com", b"Date: Thu, 2 May 2024\r\n 08:00:00 -0700"))
    assert values(result.outgoing.as_bytes(), "Date") == [b"Thu, 2 May 2024 08:00:00 -0700"]
    assert "missing-date" not in result.repairs


# --- Date readability: the plain form read without the stdlib, with the stdlib's answer -----------

_DAY_NAMES = st.sampled_from(["", "Mon, ", "Sun, ", "Xyz, "])


@given(
    _DAY_NAMES,
    st.integers(0, 39),
    st.sampled_from(["Jan", "Feb", "Apr", "Jun", "Sep", "Nov", "Dec", "Foo"]),
    st.integers(0, 9999),
    st.integers(0, 30),
    st.integers(0, 70),
    st.integers(0, 70),
    st.sampled_from("+-"),
    st.integers(0, 30),
    st.integers(0, 99),
)
@settings(max_examples=500, deadline=None)
def test_readable_date_gives_the_stdlib_answer(
    day_name: str, day: int, month: str, year: int, hh: int, mm: int, ss: int, sign: str, tzh: int, tzm: int
) -> None:
    value = f"{day_name}{day:02d} {month} {year:04d} {hh:02d}:{mm:02d}:{ss:02d} {sign}{tzh:02d}{tzm:02d}"
    try:
        email.utils.parsedate_to_datetime(value)
        expected = True
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = False
    assert _readable_date([b"Date: " + value.encode()]) is expected, value


@given(
    _DAY_NAMES,
    st.integers(0, 39),
    st.sampled_from(["Jan", "Feb", "Apr", "Jun", "Sep", "Nov", "Dec", "Foo"]),
    st.integers(0, 9999),
    st.integers(0, 30),
    st.integers(0, 70),
    st.integers(0, 70),
    st.sampled_from("+-"),
    st.integers(0, 30),
    st.integers(0, 99),
    st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_a_common_date_is_one_the_stdlib_reads(
    day_name: str, day: int, month: str, year: int, hh: int, mm: int, ss: int, sign: str, tzh: int, tzm: int, pad: bool
) -> None:
    """What the shortcut of ``_readable_date`` accepts without converting a number, the stdlib reads."""
    value = f"{day_name}{day:02d} {month} {year:04d} {hh:02d}:{mm:02d}:{ss:02d} {sign}{tzh:02d}{tzm:02d}"
    if not pad and value[len(day_name)] == "0":
        value = value[: len(day_name)] + value[len(day_name) + 1 :]
    if _COMMON_DATE.fullmatch(value.encode()) is not None:
        email.utils.parsedate_to_datetime(value)  # raises if the shortcut accepted too much


@pytest.mark.parametrize(
    "value",
    ["28 Feb 2023 00:00:00 +2259", "Sun, 1 Jan 0100 23:59:59 -2359", "09 Dec 9999 10:00:00 +0099"],
)
def test_the_common_date_form_takes_its_edges(value: str) -> None:
    assert _COMMON_DATE.fullmatch(value.encode()) is not None
    assert _readable_date([b"Date: " + value.encode()]) is True
    email.utils.parsedate_to_datetime(value)


@pytest.mark.parametrize(
    "value",
    [
        "29 Feb 2023 00:00:00 +0000",
        "30 Feb 2024 00:00:00 +0000",
        "1 Jan 0099 00:00:00 +0000",
        "1 Jan 2024 24:00:00 +0000",
        "1 Jan 2024 00:00:00 +2360",
    ],
)
def test_the_common_date_form_leaves_the_rest_to_the_full_check(value: str) -> None:
    assert _COMMON_DATE.fullmatch(value.encode()) is None
    try:
        email.utils.parsedate_to_datetime(value)
        expected = True
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = False
    assert _readable_date([b"Date: " + value.encode()]) is expected, value


@pytest.mark.parametrize("offset", ["+2359", "-2359", "+2360", "+2400", "-2400", "+0099", "-9999", "+0000"])
def test_readable_date_offsets_at_a_day_give_the_stdlib_answer(offset: str) -> None:
    """The plain form's offset check (no timezone object built) at the edge of a day."""
    value = f"Mon, 23 Nov 2026 11:00:00 {offset}"
    try:
        email.utils.parsedate_to_datetime(value)
        expected = True
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = False
    assert _readable_date([b"Date: " + value.encode()]) is expected, value
