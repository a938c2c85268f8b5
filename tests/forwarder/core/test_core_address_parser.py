"""forwarder.core.address_parser: the standard library's lenient reading, without recursion.

The stdlib reader (``email.utils.getaddresses`` on Python 3.11) is the oracle wherever it does not
recurse itself to death: both must give the same pairs for the same text. Deep nesting and huge
input are read in linear time and marked, never a RecursionError (issue 12.17).
"""

from __future__ import annotations

import email.utils
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.core.address_parser import MAX_NESTING, MAX_TEXT, read_address_pairs
from forwarder.core.addresses import parse_address_list, parse_mailbox, strict_address_list
from tests.forwarder.core import strategies as S

SAMPLES = [
    "",
    "a@example.com",
    "Jane Doe <jane@example.com>",
    '"Doe, Jane" <jane@example.com>, bob@example.org',
    "jane@example.com (Jane Doe)",
    "(c1) Jane (c2) <jane@example.com> (c3)",
    "(outer (inner) more) a@example.com",
    "<@route.example,@other.example:a@example.com>",
    "Friends: a@example.com, b@example.com;, c@example.com",
    "undisclosed-recipients:;",
    "g1: g2: a@example.com;; b@example.com",
    "group:",
    ";;;,,,",
    "a@evil.example@good.example",
    '"quoted local"@example.com',
    "a . b @ example . com",
    "a@[192.0.2.1]",
    "<a@example.com",
    "not an address",
    "a (unclosed comment",
    '"unclosed quote <a@example.com>',
    "a\\@b@example.com",
    "=?utf-8?q?J=C3=B6rg?= <j@example.com>",
    "Jörg <jörg@bücher.example>",
    "a@example.com\r\n b@example.com",
    "@",
    "<>",
    ".",
    "x@",
    "<<a@example.com>>",
    "a: (c) <b@example.com> ; d@example.com",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_same_pairs_as_the_standard_library(text: str) -> None:
    assert read_address_pairs(text).pairs == email.utils.getaddresses([text])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.address_lists())
def test_same_pairs_as_the_standard_library_on_generated_lists(tokens: list) -> None:
    text = b"".join(b"\r\n " if t is S.FOLD else t for t in tokens).decode("utf-8", "surrogateescape")
    assert read_address_pairs(text).pairs == email.utils.getaddresses([text])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='()<>@,:;."[]\\ \tabc\r\n=?é', max_size=40))
def test_same_pairs_as_the_standard_library_on_specials_soup(text: str) -> None:
    try:
        expected = email.utils.getaddresses([text])
    except RecursionError:  # pragma: no cover - needs deeper nesting than 40 characters
        return
    assert read_address_pairs(text).pairs == expected


@pytest.mark.parametrize(
    "text",
    [
        "(" * 50_000 + "x" + ")" * 50_000 + " a@example.com",
        "(" * 50_000 + "a@example.com",
        "g: " * 50_000 + "a@example.com" + ";" * 50_000,
        "a@example.com " + "(" * 50_000,
        "<" + "(" * 50_000 + "a@example.com>",
        "a@" + "(" * 50_000 + "example.com",
    ],
)
def test_deep_nesting_is_read_without_recursion(text: str) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # any recursion per nesting level would fail at once
    try:
        found = read_address_pairs(text)
        lenient = parse_address_list(text)
        strict = strict_address_list(text)
        first = parse_mailbox(text)
    finally:
        sys.setrecursionlimit(limit)
    assert found.too_deep and not found.complete
    assert strict is None  # rule 10 keeps such a field as text
    assert isinstance(lenient, tuple)
    assert first is None or first.address.endswith("example.com")


def test_the_address_behind_deep_comments_is_found() -> None:
    text = "(" * 5_000 + "x" + ")" * 5_000 + " a@example.com"
    assert [b.address for b in parse_address_list(text)] == ["a@example.com"]


def test_nesting_up_to_the_cap_is_complete() -> None:
    text = "(" * MAX_NESTING + "x" + ")" * MAX_NESTING + " <a@example.com>"
    found = read_address_pairs(text)
    assert found.complete
    assert found.pairs == email.utils.getaddresses([text])
    assert strict_address_list(text) is not None


def test_text_over_the_size_cap_is_not_read() -> None:
    text = "(c) " + "a@example.com, " * (MAX_TEXT // 15 + 1)
    found = read_address_pairs(text)
    assert found.too_big and found.pairs == []
    assert strict_address_list(text) is None


def test_many_encoded_words_are_one_display_name() -> None:
    text = " ".join(["=?utf-8?q?a?="] * 5_000) + " (c) <b@example.com>"
    (box,) = parse_address_list(text)
    assert box.address == "b@example.com"
