"""Two-way forwarding (issue 14): participants(), the rewrite with a TwoWay, golden files, a property.

Golden pairs live in ``golden/two_way/`` (not picked up by ``test_core_golden.py``, whose cases are
the one-way rewrite). Each is forwarded for ``ALIAS`` with a contact for every participant (reverse
addresses made up here from a hash, as the contact book's random ones would be) and the one-click
unsubscribe pair below. Regenerate with ``OTHERMAIL_UPDATE_GOLDEN=1`` as for the one-way files.
"""

from __future__ import annotations

import email.header
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.core import AliasState, Outcome, Policy, Verdicts, forward, prepare, rewrite, validate_bytes
from forwarder.core.forward import Prepared
from forwarder.core.headers import loop_token
from forwarder.core.participants import MAX_PARTICIPANTS, Participant, participants
from forwarder.core.twoway import TwoWay, contact_key
from tests.forwarder.core import strategies as S
from tests.forwarder.core.test_core_golden import ALIAS, NOW, header_fields, original_body, short_diff, values

GOLDEN = Path(__file__).parent / "golden" / "two_way"
UPDATE = os.environ.get("OTHERMAIL_UPDATE_GOLDEN") == "1"
UNSUBSCRIBE = ("https://othermail.example/u/tok3n", "mailto:u+tok3n@othermail.example")
CASES = sorted(p.name[: -len("_incoming.eml")] for p in GOLDEN.glob("*_incoming.eml"))


def is_own(address: str) -> bool:
    return address.endswith("@othermail.example")


def reverse(address: str) -> str:
    return hashlib.sha256(b"test-reverse:" + address.encode()).hexdigest()[:16] + "@othermail.example"


def full_contacts(message: Prepared) -> dict[str, str]:
    return {p.address: reverse(p.address) for p in participants(message, is_own)}


def two_way_for(message: Prepared, unsubscribe: tuple[str, str] | None = None) -> TwoWay:
    return TwoWay(full_contacts(message), unsubscribe=unsubscribe, is_own=is_own)


def forward_two_way(
    raw: bytes,
    contacts: Mapping[str, str] | None = None,
    display_format: str = "name-and-address",
    unsubscribe: tuple[str, str] | None = None,
) -> tuple[bytes, tuple[str, ...]]:
    prepared = prepare(raw)
    chosen = full_contacts(prepared) if contacts is None else contacts
    two_way = TwoWay(chosen, display_format, unsubscribe, is_own)
    result = forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW, two_way=two_way)
    assert result.outcome is Outcome.FORWARDED, result.reason
    assert result.outgoing is not None
    return result.outgoing.as_bytes(), result.repairs


def head_of(out: bytes) -> bytes:
    return out[: out.index(b"\r\n\r\n") + 2] if b"\r\n\r\n" in out else out[: out.index(b"\n\n") + 1]


def decoded(value: bytes) -> str:
    return str(email.header.make_header(email.header.decode_header(value.decode("ascii"))))


def display_and_address(value: bytes) -> tuple[str, str]:
    """The display name (unquoted) and address of a single ``phrase <address>`` field value."""
    name, _, address = decoded(value).rpartition(" <")
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name, address.removesuffix(">")


def header_text(out: bytes) -> str:
    """The header block with every field's encoded words decoded, lowercase, for leak checks."""
    return "\n".join(f"{name}: {decoded(value)}" for name, value in header_fields(out)).lower()


def addresses_in(value: bytes) -> list[str]:
    return [a.lower() for a in re.findall(r"<([^<>]+)>", value.decode("ascii"))]


# --- participants -------------------------------------------------------------------------------


def test_participants_order_dedup_and_own_addresses() -> None:
    raw = (
        b"From: Jane <Jane@Example.com>\r\n"
        b"Reply-To: Team <team@example.com>, jane@example.com\r\n"
        b"Reply-To: second@example.com\r\n"
        b"To: " + ALIAS.encode() + b", =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\n"
        b"Cc: JOERG@example.de, other-alias@othermail.example, not an address, carl@example.net\r\n"
        b"Bcc: hidden@example.com\r\n\r\nx"
    )
    found = participants(prepare(raw), is_own)
    assert found == (
        Participant("jane@example.com", "Jane"),
        Participant("team@example.com", "Team"),
        Participant("joerg@example.de", "Jörg"),
        Participant("carl@example.net", ""),
    )


def test_participants_from_and_reply_to_are_not_asked_about() -> None:
    asked: list[str] = []

    def own(address: str) -> bool:
        asked.append(address)
        return True

    raw = b"From: a@example.com\r\nReply-To: b@example.com\r\nTo: c@example.com\r\nCc: d@example.com\r\n\r\nx"
    assert [p.address for p in participants(prepare(raw), own)] == ["a@example.com", "b@example.com"]
    assert asked == ["c@example.com", "d@example.com"]


def test_participants_skip_invalid_reply_to_and_unsendable_addresses() -> None:
    raw = "From: a@example.com\r\nReply-To: broken <<@>\r\nTo: jörg@example.de, ok@bücher.example\r\n\r\nx"
    found = participants(prepare(raw.encode()), is_own)
    assert [p.address for p in found] == ["a@example.com", "ok@xn--bcher-kva.example"]


def test_participants_are_at_most_fifty() -> None:
    cc = ", ".join(f"p{i}@crowd.example" for i in range(80))
    found = participants(prepare(f"From: o@crowd.example\r\nCc: {cc}\r\n\r\nx".encode()), is_own)
    assert len(found) == MAX_PARTICIPANTS == 50
    assert found[0].address == "o@crowd.example" and found[-1].address == "p48@crowd.example"


def test_contact_key() -> None:
    assert contact_key(" Jane@Example.COM ") == "jane@example.com"
    assert contact_key("jörg@example.de") is None
    assert contact_key("not an address") is None


# --- the rewrite ----------------------------------------------------------------------------------


def test_without_two_way_the_output_is_unchanged() -> None:
    raw = (GOLDEN.parent / "reply_to_kept_incoming.eml").read_bytes()
    expected = (GOLDEN.parent / "reply_to_kept_expected.eml").read_bytes()
    prepared = prepare(raw)
    assert forward(prepared, AliasState(ALIAS), Verdicts(), Policy(), NOW, two_way=None).outgoing is not None
    out = rewrite(prepared, ALIAS, now=NOW, two_way=None).outgoing
    assert out is not None and out.as_bytes() == expected


def test_missing_contacts_fall_back_to_one_way_and_are_reported() -> None:
    raw = b"From: Jane <jane@example.com>\r\nTo: " + ALIAS.encode() + b"\r\nCc: carl@example.net\r\n\r\nx"
    out, repairs = forward_two_way(raw, contacts={})
    assert values(out, "From") == [b'"Jane (jane at example.com)" <' + ALIAS.encode() + b">"]
    assert values(out, "X-Othermail-Original-From") == [b"Jane <jane@example.com>"]
    assert values(out, "Reply-To") == [b"Jane <jane@example.com>"]
    assert values(out, "Cc") == [b"carl@example.net"]
    assert "contact-missing" in repairs


def test_one_missing_contact_keeps_only_that_address() -> None:
    raw = b"From: jane@example.com\r\nTo: " + ALIAS.encode() + b"\r\nCc: carl@example.net, dora@example.net\r\n\r\nx"
    contacts = {"jane@example.com": reverse("jane@example.com"), "carl@example.net": reverse("carl@example.net")}
    out, repairs = forward_two_way(raw, contacts=contacts)
    assert addresses_in(values(out, "From")[0]) == [reverse("jane@example.com")]
    (cc,) = values(out, "Cc")
    assert b"<" + reverse("carl@example.net").encode() + b">" in cc and cc.endswith(b"dora@example.net")
    assert b"carl@example.net" not in out
    assert values(out, "X-Othermail-Original-From") == [] and values(out, "Reply-To") == []
    assert "contact-missing" in repairs


@pytest.mark.parametrize(
    ("display_format", "name", "shown"),
    [
        ("name-and-address", "Jane Doe", "Jane Doe (jane at example.com)"),
        ("name", "Jane Doe", "Jane Doe"),
        ("name", "", "jane at example.com"),
        ("name", "jane@example.com", "jane at example.com"),
        ("address", "Jane Doe", "jane at example.com"),
        ("unknown", "Jane Doe", "Jane Doe (jane at example.com)"),
    ],
)
def test_display_formats(display_format: str, name: str, shown: str) -> None:
    sender = f'"{name}" <jane@example.com>' if name else "jane@example.com"
    raw = f"From: {sender}\r\nTo: {ALIAS}\r\n\r\nx".encode()
    out, _ = forward_two_way(raw, display_format=display_format)
    (from_,) = values(out, "From")
    assert display_and_address(from_) == (shown, reverse("jane@example.com"))


def test_unsubscribe_is_set_and_the_senders_kept_under_another_name() -> None:
    raw = (GOLDEN / "plain_incoming.eml").read_bytes()
    out, _ = forward_two_way(raw, unsubscribe=UNSUBSCRIBE)
    assert values(out, "List-Unsubscribe") == [
        b"<https://othermail.example/u/tok3n>, <mailto:u+tok3n@othermail.example>"
    ]
    assert values(out, "List-Unsubscribe-Post") == [b"List-Unsubscribe=One-Click"]
    assert values(out, "X-Original-List-Unsubscribe") == [b"<mailto:leave@lists.example.com>"]
    assert values(out, "X-Original-List-Unsubscribe-Post") == [b"List-Unsubscribe=One-Click"]
    # without the pair the sender's own fields stay as they came
    out, _ = forward_two_way(raw)
    assert values(out, "List-Unsubscribe") == [b"<mailto:leave@lists.example.com>"]
    assert values(out, "X-Original-List-Unsubscribe") == []


def test_unsubscribe_mailto_scheme_is_added_when_missing() -> None:
    raw = f"From: jane@example.com\r\nTo: {ALIAS}\r\n\r\nx".encode()
    out, _ = forward_two_way(raw, unsubscribe=("https://h.example/u/t", "u+t@othermail.example"))
    assert values(out, "List-Unsubscribe") == [b"<https://h.example/u/t>, <mailto:u+t@othermail.example>"]


def test_invalid_reply_to_is_dropped_not_renamed() -> None:
    raw = f"From: jane@example.com\r\nReply-To: jane@@example.com <x\r\nTo: {ALIAS}\r\n\r\nx".encode()
    out, repairs = forward_two_way(raw)
    assert values(out, "Reply-To") == [] and values(out, "X-Original-Reply-To") == []
    assert "invalid-reply-to" in repairs
    assert b"jane@" not in out


def test_empty_group_to_gets_the_alias() -> None:
    raw = b"From: jane@example.com\r\nTo: undisclosed-recipients:;\r\nBcc: " + ALIAS.encode() + b"\r\n\r\nx"
    out, _ = forward_two_way(raw)
    assert values(out, "To") == [ALIAS.encode()]
    assert validate_bytes(out) == []


def test_alias_in_cc_is_not_added_to_to() -> None:
    raw = b"From: jane@example.com\r\nTo: undisclosed-recipients:;\r\nCc: " + ALIAS.encode() + b"\r\n\r\nx"
    out, _ = forward_two_way(raw)
    assert values(out, "To") == [b"undisclosed-recipients:;"]
    assert values(out, "Cc") == [ALIAS.encode()]


# --- golden files ---------------------------------------------------------------------------------


def _check_plain(out: bytes) -> None:
    (from_,) = values(out, "From")
    assert from_ == b'"Jane Doe (Jane.Doe at Example.com)" <' + reverse("jane.doe@example.com").encode() + b">"
    assert values(out, "To") == [ALIAS.encode()]
    assert values(out, "Reply-To") == []
    assert values(out, "X-Original-List-Unsubscribe") == [b"<mailto:leave@lists.example.com>"]


def _check_reply_to(out: bytes) -> None:
    (reply_to,) = values(out, "Reply-To")
    assert addresses_in(reply_to) == [reverse("team@example.org"), reverse("second@example.org")]
    assert decoded(reply_to).startswith('"Bob\'s Team" <') or decoded(reply_to).startswith("Bob's Team <")
    assert values(out, "Mail-Followup-To") == []
    assert b"ignored@example.org" not in out


def _check_reply_all_cc(out: bytes) -> None:
    (to,) = values(out, "To")
    assert addresses_in(to) == [reverse("friend@elsewhere.example")] and to.startswith(ALIAS.encode() + b", ")
    assert b'"Friend, Old" <' in to
    (cc,) = values(out, "Cc")
    assert addresses_in(cc) == [reverse("carl@example.net"), reverse("dora@example.net"), reverse("erin@example.net")]
    assert b"another-9zz1@othermail.example" in cc  # the service's own address stays
    assert b'"carl at example.net" <' in cc  # an empty name shows the spelled address
    assert values(out, "X-Original-To") == []


def _check_bcc_alias(out: bytes) -> None:
    (to,) = values(out, "To")
    assert (
        to
        == b'"subscribers at shop.example" <' + reverse("subscribers@shop.example").encode() + b">, " + ALIAS.encode()
    )
    assert values(out, "Bcc") == []


def _check_encoded_names(out: bytes) -> None:
    (from_,) = values(out, "From")
    assert display_and_address(from_) == ("Анна Ким (anna at example.ru)", reverse("anna@example.ru"))
    (cc,) = values(out, "Cc")
    shown = decoded(cc)
    assert "security at paypal.com" in shown and "\uff20" not in shown
    assert f'"ivan at example.ru" <{reverse("ivan@example.ru")}>' in shown
    assert f"Иван <{reverse('ivan2@example.ru')}>" in shown


def _check_many_cc(out: bytes) -> None:
    (to,) = values(out, "To")
    (cc,) = values(out, "Cc")
    assert to == ALIAS.encode()
    assert addresses_in(cc) == [reverse(f"p{i:02d}@crowd.example") for i in range(49)]
    assert values(out, "X-Othermail-Omitted-Recipients") == [b"11"]
    assert values(out, "X-Original-Cc") == []


CASE_CHECKS: dict[str, Callable[[bytes], None]] = {
    "plain": _check_plain,
    "reply_to": _check_reply_to,
    "reply_all_cc": _check_reply_all_cc,
    "bcc_alias": _check_bcc_alias,
    "encoded_names": _check_encoded_names,
    "many_cc": _check_many_cc,
}


def test_two_way_golden_inventory() -> None:
    assert set(CASES) == set(CASE_CHECKS)


@pytest.mark.parametrize("case", CASES)
def test_two_way_golden(case: str) -> None:
    raw = (GOLDEN / f"{case}_incoming.eml").read_bytes()
    expected_path, actual_path = GOLDEN / f"{case}_expected.eml", GOLDEN / f"{case}_actual.eml"
    prepared = prepare(raw)
    people = participants(prepared, is_own)
    out, repairs = forward_two_way(raw, unsubscribe=UNSUBSCRIBE)
    if UPDATE:
        expected_path.write_bytes(out)
    expected = expected_path.read_bytes()
    if out != expected:
        actual_path.write_bytes(out)
        pytest.fail(f"{case}: output differs from {expected_path.name}\n" + short_diff(expected, out), pytrace=False)
    actual_path.unlink(missing_ok=True)

    assert validate_bytes(out) == []
    assert out.endswith(original_body(case, raw))
    assert "contact-missing" not in repairs
    assert values(out, "X-Othermail-Loop") == [loop_token(ALIAS).encode()]
    assert values(out, "X-Othermail-Original-From") == []
    assert values(out, "List-Unsubscribe-Post") == [b"List-Unsubscribe=One-Click"]
    to_cc = [a for name in ("To", "Cc") for v in values(out, name) for a in v.split(b",")]
    assert len(to_cc) <= 50
    text = header_text(out)
    for person in people:
        assert person.address not in text, person.address
    CASE_CHECKS[case](out)


# --- property: with every contact known, no real external address is left in the header block ----

LOCALS = ["jane", "Bob", "x.y", "sales+tag", "o'neil", "info"]
DOMAINS = ["example.com", "Mail.Example.net", "shop.example", "example.org"]
NAMES = ["", "Jane", "Doe, John", "Ünïcode Näme", "security＠paypal.com", "=?utf-8?q?x?=", "a@b"]


@st.composite
def external_addresses(draw: st.DrawFn) -> str:
    return f"{draw(st.sampled_from(LOCALS))}{draw(st.integers(0, 3))}@{draw(st.sampled_from(DOMAINS))}"


@st.composite
def mailbox_texts(draw: st.DrawFn, address: str) -> str:
    name = draw(st.sampled_from([*NAMES, address, address.upper()]))
    style = draw(st.sampled_from(["bare", "quoted", "encoded"]))
    if not name or style == "bare":
        return address if not name else f"<{address}>"
    if style == "encoded":
        return f"{email.header.Header(name, 'utf-8').encode()} <{address}>"
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{address}>'


@st.composite
def two_way_messages(draw: st.DrawFn) -> tuple[bytes, list[str], str, bool]:
    everyone: list[str] = []

    def address_list(low: int, high: int) -> str:
        found = draw(st.lists(external_addresses(), min_size=low, max_size=high))
        everyone.extend(found)
        return ", ".join(draw(mailbox_texts(a)) for a in found)

    fields = [f"From: {address_list(1, 1)}"]
    if draw(st.booleans()):
        fields.append(f"Reply-To: {address_list(1, 3)}")
    to = address_list(0, 5)
    alias_in = draw(st.sampled_from(["to", "cc", "bcc"]))
    to = ", ".join(x for x in (to, ALIAS if alias_in == "to" else "") if x)
    if to:
        fields.append(f"To: {to}")
    cc = address_list(0, 5)
    cc = ", ".join(x for x in (cc, ALIAS if alias_in == "cc" else "", "other-1@othermail.example") if x)
    fields.append(f"Cc: {cc}")
    fields.append(f"Bcc: {address_list(0, 2)}{', ' + ALIAS if alias_in == 'bcc' else ''}")
    for name in draw(
        st.lists(
            st.sampled_from(
                ["Sender", "Return-Path", "Resent-To", "Mail-Followup-To", "X-Original-To", "Mail-Reply-To"]
            ),
            max_size=3,
        )
    ):
        fields.append(f"{name}: {address_list(1, 2)}")
    sender = everyone[0]
    fields += [
        f"Subject: hello from {sender.upper()}",
        "Date: Fri, 03 May 2024 09:00:00 +0000",
        "Message-ID: <p-1@msgid.test>",
        f"Received: from mx.example (mx.example [192.0.2.1]) (envelope-from <{sender}>) by mx.test",
        f"Authentication-Results: mx.test; spf=pass smtp.mailfrom={sender}",
    ]
    display_format = draw(st.sampled_from(["name-and-address", "name", "address"]))
    raw = ("\r\n".join(fields) + "\r\n\r\nbody\r\n").encode("utf-8")
    return raw, everyone, display_format, draw(st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way_messages())
def test_no_real_external_address_in_the_header_block(case: tuple[bytes, list[str], str, bool]) -> None:
    raw, everyone, display_format, unsubscribe = case
    out, repairs = forward_two_way(raw, display_format=display_format, unsubscribe=UNSUBSCRIBE if unsubscribe else None)
    assert validate_bytes(out) == []
    assert "contact-missing" not in repairs
    head = head_of(out).lower()
    text = header_text(out)
    for address in everyone:
        assert address.lower().encode() not in head, address
        assert address.lower() not in text, address
    # Reply-All reaches the alias and reverse addresses only
    shown = [a for name in ("From", "Reply-To", "To", "Cc") for v in values(out, name) for a in addresses_in(v)]
    assert all(a.endswith("@othermail.example") for a in shown), shown
    recipients = [v for name in ("To", "Cc") for v in values(out, name)]
    assert any(ALIAS.encode() in v for v in recipients)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(S.messages(), S.address_messages(), S.hostile_address_messages()))
def test_messy_input_in_two_way_mode_never_raises_and_what_is_sent_is_valid(case: S.Case) -> None:
    prepared = prepare(case.raw)
    result = rewrite(prepared, ALIAS, now=NOW, two_way=two_way_for(prepared, unsubscribe=UNSUBSCRIBE))
    if result.outgoing is None:
        assert result.outcome is not Outcome.FORWARDED
        return
    out = result.outgoing.as_bytes()
    assert validate_bytes(out) == []
    shown = [a for name in ("To", "Cc") for v in values(out, name) for a in addresses_in(v)]
    assert len([v for name in ("To", "Cc") for v in values(out, name)]) <= 2
    assert all(a.endswith("@othermail.example") or a.lower() not in full_contacts(prepared) for a in shown)
    if case.body is not None and not {"body-line-too-long", "long-boundary"} & set(result.repairs):
        assert out.endswith(case.body)


def test_other_fields_get_known_addresses_spelled_and_ids_are_left_alone() -> None:
    raw = (
        b"From: jane@example.com\r\nTo: " + ALIAS.encode() + b"\r\n"
        b"Subject: about Jane@Example.com and notjane@example.com\r\n"
        b"Received: from mx (envelope-from <jane@example.com>) by mx.test\r\n"
        b"Message-ID: <jane@example.com>\r\n\r\nx"
    )
    out, _ = forward_two_way(raw)
    assert values(out, "Subject") == [b"about Jane at Example.com and notjane@example.com"]
    assert values(out, "Received") == [b"from mx (envelope-from <jane at example.com>) by mx.test"]
    assert values(out, "Message-ID") == [b"<jane@example.com>"]


def test_an_address_without_a_seven_bit_form_is_left_out() -> None:
    raw = f"From: jane@example.com\r\nTo: {ALIAS}, Jörg <jörg@example.de>\r\n\r\nx".encode()
    out, repairs = forward_two_way(raw)
    assert values(out, "To") == [ALIAS.encode()]
    assert "dropped-unsendable-recipient" in repairs
    assert validate_bytes(out) == []


def test_over_the_limit_mapped_addresses_are_kept_before_missing_ones() -> None:
    unmapped = ", ".join(f"u{i}@crowd.example" for i in range(30))
    mapped = [f"m{i}@crowd.example" for i in range(30)]
    raw = f"From: o@crowd.example\r\nTo: {unmapped}\r\nCc: {', '.join(mapped)}\r\nBcc: {ALIAS}\r\n\r\nx".encode()
    contacts = {a: reverse(a) for a in ["o@crowd.example", *mapped]}
    out, repairs = forward_two_way(raw, contacts=contacts)
    (to,) = values(out, "To")
    (cc,) = values(out, "Cc")
    assert addresses_in(cc) == [reverse(a) for a in mapped]
    assert to.split(b", ")[-1] == ALIAS.encode() and len(to.split(b", ")) == 50 - 30
    assert values(out, "X-Othermail-Omitted-Recipients") == [b"11"]
    assert {"contact-missing", "too-many-recipients"} <= set(repairs)
    assert validate_bytes(out) == []
