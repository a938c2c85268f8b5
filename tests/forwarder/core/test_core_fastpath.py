"""The fast path of a clean header block (``fastpath``) gives the general path's bytes, always.

``forward.rewrite`` takes ``fastpath.fast_assemble`` when it answers and the general path
(``forward.rewrite_general``: every field through ``headers``, then ``validator.validate``)
otherwise. What makes the shortcut safe is that whenever it answers, the Result (outcome, reason,
repairs and every byte) is the general path's. Checked here over the fuzz strategies of
``strategies.py`` (mostly dirty blocks, which must fall back), over clean blocks drawn to reach
every rule the fast path applies itself (removed, renamed, kept, duplicated, folded, at the line
limit, many recipients, Reply-To valid or not, References, Date readable, unreadable or missing),
and over the shared corpus. The split of a clean block a field at a time
(``message._whole_fields``) and the lazy splits (``message._clean_split``, one search over a clean
block, and ``message._lazy_pieces``: one piece per field, objects built on demand) are checked the
same way against the line loop they shortcut.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.core import message
from forwarder.core.fastpath import fast_assemble
from forwarder.core.forward import Prepared, Result, prepare, rewrite, rewrite_general
from forwarder.core.message import split_message
from tests.forwarder.core import strategies as S

ALIAS = S.ALIAS
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
SCALE = max(1, int(os.environ.get("OTHERMAIL_FUZZ_SCALE", "1") or 1))
LIMITS = st.sampled_from([40 * 1024 * 1024, 10 * 1024 * 1024, 600, 2_000])


def profile(examples: int) -> settings:
    options: dict = {
        "max_examples": examples * SCALE,
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    if os.environ.get("CI"):
        options.update(derandomize=True, database=None)
    return settings(**options)


def _summary(result: Result) -> tuple:
    out = None if result.outgoing is None else result.outgoing.as_bytes()
    return result.decision, result.repairs, out


def takes_fast_path(message: Prepared, now: datetime | None) -> bool:
    split = message.split
    return split.long_body_line() < 0 and fast_assemble(split, message.origin, ALIAS, now) is not None


def check_same(raw: bytes, now: datetime | None, max_bytes: int = 40 * 1024 * 1024) -> bool:
    """Asserts ``rewrite`` (fast path where it answers) equals ``rewrite_general``; returns whether
    the fast path answered."""
    message = prepare(raw)
    assert _summary(rewrite(message, ALIAS, max_bytes, now)) == _summary(
        rewrite_general(message, ALIAS, max_bytes, now)
    )
    return takes_fast_path(message, now)


# --- clean header blocks, drawn to reach the fast path ---------------------------------------------

_WORDS = st.sampled_from(["alpha", "beta", "report", "Q3", "re:", "(note)", "x=1;", "[tag]", "ok"])
_DOMAINS = st.sampled_from(["example.net", "mail.example.org", "othermail.example", "ex.co"])
_LOCALS = st.sampled_from(["jane.doe", "bob", "a+b", "shop-7hq2", "x_y", "info"])
_NAMES = st.sampled_from(["", "Jane Doe", '"Doe, Jane"', "Bob", '"Ann \\"A\\" B"', "Norton I., Emperor"])


@st.composite
def _addresses(draw: st.DrawFn) -> bytes:
    address = f"{draw(_LOCALS)}@{draw(_DOMAINS)}"
    name = draw(_NAMES)
    return (f"{name} <{address}>" if name else address).encode()


@st.composite
def _address_list(draw: st.DrawFn, max_size: int = 4) -> bytes:
    many = draw(st.sampled_from([1, 1, 2, 3, max_size, 20, 26, 31, 51]))
    boxes = [draw(_addresses()) for _ in range(many)]
    if many <= max_size:
        return b", ".join(boxes)
    return b",\r\n ".join(b", ".join(boxes[i : i + 4]) for i in range(0, many, 4))  # folded


def _text(draw: st.DrawFn) -> bytes:
    return " ".join(draw(st.lists(_WORDS, min_size=0, max_size=6))).encode()


_DATES = st.sampled_from(
    [
        b"Mon, 23 Nov 2026 11:00:00 +0100",
        b"Mon, 23 Nov 2026 11:00:00 +0100",
        b"23 Nov 2026 11:00 -0800",
        b"not a date",
        b"",
        b"Fri, 31 Feb 2026 10:00:00 +0000",
    ]
)
_IDS = st.sampled_from([b"<CA+1@mail.example.net>", b"<a.b@c>", b"<CA+1@mail.example.net> <z@y>", b"no id", b""])


_KINDS = (
    "from from to cc reply-to subject date message-id references in-reply-to authentication-results "
    "dkim-signature arc-seal x-ses-spam-verdict x-othermail-loop x-othermail-original-from received "
    "mime-version content-type sender bcc return-path x-mailer list-id resent-to long long"
).split()


@st.composite
def clean_fields(draw: st.DrawFn) -> tuple[str, bytes]:
    """One field's kind and line (and its continuations), 7-bit and short, without line ending."""
    kind = draw(st.sampled_from(_KINDS))
    if kind == "long":
        name = draw(st.sampled_from(["X-Long", "Authentication-Results", "References", "X-Othermail-Loop"]))
    else:
        name = draw(S._case_variants([kind]))
    if kind in ("from", "to", "cc", "reply-to", "sender", "bcc", "resent-to"):
        value = draw(_address_list()) if draw(st.integers(0, 9)) else draw(st.sampled_from([b"", b"not an address"]))
    elif kind == "date":
        value = draw(_DATES)
    elif kind in ("message-id", "references", "in-reply-to"):
        value = draw(_IDS)
    elif kind == "long":
        value = b"y" * draw(st.sampled_from([900, 980, 983, 986, 990, 992]))
    else:
        value = _text(draw)
    line = name.encode() + b":" + (b" " + value if value else b"")
    if len(line) > 998:
        line = line[:998]
    if draw(S.rarely) and b", " in line and b"\r\n" not in line:
        line = line.replace(b", ", b",\r\n\t" if draw(st.booleans()) else b",\r\n ", 1)
    return kind, line


@st.composite
def clean_messages(draw: st.DrawFn) -> bytes:
    # mostly one field of a kind (a duplicated once-only field is a repair, left to the general path)
    unique = draw(st.integers(0, 4)) > 0
    drawn = draw(st.lists(clean_fields(), max_size=14, unique_by=(lambda kl: kl[0]) if unique else None))
    fields = [line for _, line in drawn]
    if draw(st.integers(0, 3)):
        fields.insert(draw(st.integers(0, len(fields))), b"From: Jane Doe <jane.doe@example.net>")
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    block = eol.join(line.replace(b"\r\n", eol) for line in fields)
    body = draw(st.sampled_from([b"Hello.\r\n", b"", b"x" * 1200 + b"\r\n", b"a\nb\n"]))
    return block + eol + eol + body


@profile(300)
@given(clean_messages(), st.sampled_from([NOW, None]), LIMITS)
def test_clean_blocks(raw: bytes, now: datetime | None, max_bytes: int) -> None:
    check_same(raw, now, max_bytes)


@profile(150)
@given(S.messages(), st.sampled_from([NOW, None]), LIMITS)
def test_fuzzed_messages(case: S.Case, now: datetime | None, max_bytes: int) -> None:
    check_same(case.raw, now, max_bytes)


@profile(60)
@given(S.address_messages())
def test_address_messages(case: S.Case) -> None:
    check_same(case.raw, NOW)


@profile(60)
@given(S.duplicated_fields(), S.endings())
def test_duplicated_fields(group: list[S.Field], eol: S.Endings) -> None:
    raw = b"From: a@example.net\r\n" + b"".join(f.render(eol) for f in group) + b"\r\nbody\r\n"
    check_same(raw, NOW)


@profile(40)
@given(S.mime_messages())
def test_mime_messages(case: S.Case) -> None:
    check_same(case.raw, NOW)


@profile(40)
@given(S.hostile_address_messages())
def test_hostile_address_messages(case: S.Case) -> None:
    check_same(case.raw, NOW)


def test_clean_blocks_reach_the_fast_path() -> None:
    """The common shape takes the fast path (so the tests above compare something), and each
    repair the fast path leaves to the general path does fall back."""
    clean = (
        b"Received: by mx.example.net; Mon, 23 Nov 2026 02:00:00 -0800\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n"
        b"From: Jane Doe <jane.doe@example.net>\r\n"
        b"To: shop-7hq2@othermail.example\r\n"
        b"Message-ID: <CA+1@mail.example.net>\r\n"
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    assert check_same(clean, NOW)
    assert check_same(clean.replace(b"\r\n", b"\n"), None)
    assert check_same(clean.replace(b"Subject: hi", b"References: <CA+1@mail.example.net>"), NOW)  # has the id
    assert check_same(clean.replace(b"Subject: hi", b"References: <z@y>\r\n <w@v>"), NOW)  # gets the id
    assert check_same(clean.replace(b"Subject: hi", b"Authentication-Results: mx; spf=pass"), NOW)  # renamed
    assert not check_same(clean.replace(b"Subject: hi", b"Subject: hi\r\nTo: b@example.net"), NOW)  # merged
    assert not check_same(clean.replace(b"Subject: hi", b"Subject: h\xc3\xa9"), NOW)  # 8-bit
    assert not check_same(clean.replace(b"To:", b"To :"), NOW)  # space before the colon
    assert not check_same(clean.replace(b"From: Jane Doe <jane.doe@example.net>\r\n", b""), NOW)  # no From
    assert not check_same(clean.replace(b"Subject: hi", b"Date: someday"), NOW)  # unreadable Date
    assert not check_same(clean.replace(b"Subject: hi", b"Reply-To: nobody"), NOW)  # broken Reply-To
    assert not check_same(clean + b"x" * 1000 + b"\r\n", NOW)  # a body line too long


def _corpus() -> list[Path]:
    path = Path(os.environ.get("OTHERMAIL_CORPUS") or Path(__file__).parents[4] / "shared" / "corpus")
    if not path.is_dir():
        pytest.skip(f"the shared corpus is not at {path} (set OTHERMAIL_CORPUS)")
    return sorted(path.rglob("*.eml"))


def test_corpus() -> None:
    files = _corpus()
    fast = 0
    for path in files:
        raw = path.read_bytes()
        for now in (NOW, None):
            fast += check_same(raw, now)
    assert fast > 0  # the corpus reaches the fast path, so this compared something


# --- the split of a clean block, a field at a time ---------------------------------------------------


def _split_summary(raw: bytes) -> tuple:
    split = split_message(raw)
    fields = [(f.name, f.key, f.lines, f.checked) for f in split.fields]
    index = {key: [id(f) for f in split.get_all(key)] for key in dict.fromkeys(f.key for f in split.fields)}
    order = {id(f): i for i, f in enumerate(split.fields)}
    positions = {key: [order[i] for i in ids] for key, ids in index.items()}
    return fields, positions, bytes(split.body), split.eol, split.had_separator, split.repairs, split.size


def _lazy_then_all(raw: bytes) -> tuple:
    """:func:`_split_summary` of a lazy split whose fields are asked for by key before all are built
    (the order ``prepare`` asks in): the objects a look-up built are those ``fields`` gives."""
    split = split_message(raw)
    looked_up = {key: split.get_all(key) for key in ("content-type", "from", "x-none")}
    assert all(found == [f for f in split.fields if f.key == key] for key, found in looked_up.items())
    assert all(any(f is g for g in split.fields) for found in looked_up.values() for f in found)
    return _split_summary(raw)


def _first_values_agree(raw: bytes) -> None:
    """``first_value`` (read from the field's piece in the lazy form, no field built) is
    ``first(key).value`` for every key, asked before any field is built; ``has_any`` agrees."""
    split = split_message(raw)
    keys = [*dict.fromkeys(f.key for f in split_message(raw).fields), "x-none"]
    values = [split.first_value(key) for key in keys]
    assert not split._built or split.pieces is None
    firsts = [split.first(key) for key in keys]
    assert values == [None if f is None else f.value for f in firsts]
    for key, f in zip(keys, firsts):
        assert split.has_any(frozenset({key, "x-none"})) is (f is not None)


def check_same_split(raw: bytes) -> bool:
    """Asserts ``split_message`` gives the same fields, index, body and repairs with each of its
    shortcuts as with the line loop alone: the one-search split of a clean block
    (``message._clean_split``), the lazy pieces (``message._lazy_pieces``) and the whole-field
    reader (``message._whole_fields``), each tried with the ones before it switched off; returns
    whether one of the shortcuts answered."""
    off = {"_clean_split": lambda *args: None, "_lazy_pieces": lambda *args: None, "_whole_fields": lambda *args: False}
    summaries = []
    answered = []
    for first_on in range(len(off) + 1):
        with contextlib.ExitStack() as stack:
            for name in list(off)[:first_on]:
                stack.enter_context(mock.patch.object(message, name, off[name]))
            summaries.append(_split_summary(raw))
            if first_on < len(off):
                _lazy_then_all(raw)
            _first_values_agree(raw)
            split = split_message(raw)
            answered.append(split.pieces is not None or (first_on == 2 and split.repairs == [] and _answers_whole(raw)))
    assert all(summary == summaries[-1] for summary in summaries)
    return any(answered)


def _answers_whole(raw: bytes) -> bool:
    answered: list[bool] = []
    real = message._whole_fields

    def spy(*args: object) -> bool:
        answered.append(real(*args))  # type: ignore[arg-type]
        return answered[-1]

    with mock.patch.object(message, "_whole_fields", spy):
        split_message(raw)
    return any(answered)


@profile(300)
@given(st.one_of(clean_messages(), S.messages().map(lambda case: case.raw)))
def test_split_whole_fields(raw: bytes) -> None:
    check_same_split(raw)


@profile(60)
@given(S.huge_header_blocks().map(lambda case: case.raw))
def test_split_whole_fields_huge_blocks(raw: bytes) -> None:
    check_same_split(raw)


def test_split_whole_fields_examples() -> None:
    clean = b"A: 1\r\nB: 2\r\n 3\r\nC : 4\r\n\r\nbody"
    assert check_same_split(clean)
    assert check_same_split(clean.replace(b"\r\n", b"\n"))
    assert check_same_split(b"A: 1\r\nB: 2")  # no blank line, no final line ending
    assert check_same_split(b"\r\nbody")  # no header block
    assert not check_same_split(b" lead\r\n" + clean)  # a continuation first: the line loop repairs it
    assert not check_same_split(clean.replace(b"C : 4", b"not a field"))  # missing separator
    assert not check_same_split(clean.replace(b"C : 4", b": 4"))  # empty field name


def test_split_corpus() -> None:
    assert sum(check_same_split(path.read_bytes()) for path in _corpus()) > 0


def test_clean_split_examples() -> None:
    """The one-search split answers for a clean block with one line ending and a blank line, and
    leaves every other block to the readers after it (which give the same fields either way)."""
    clean = b"A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\nbody\r\n"
    for raw in (clean, clean.replace(b"\r\n", b"\n")):
        assert message._clean_split(raw) is not None
        assert check_same_split(raw)
    for dirty in (
        clean.replace(b"B: 2\r\n", b"B: 2\n"),  # a bare LF in a CRLF block
        clean.replace(b"B: 2\r\n", b"B: 2\r\n\n"),  # an LF blank line before the CRLF one
        clean.replace(b" 3", b" \t"),  # a white-space-only continuation
        clean.replace(b"C: 4", b"C : 4"),  # white space before the colon
        clean.replace(b"C: 4", b"C: \xc3\xa9"),  # 8-bit
        clean.replace(b"C: 4", b"C: 4\x00"),  # NUL
        clean.replace(b"C: 4", b"C: 4\r5"),  # bare CR
        clean.replace(b"C: 4", b"C: " + b"x" * 996),  # a line over 998
        clean.replace(b"C: 4", b"not a field"),
        b" lead\r\n" + clean,
        b"From x@y Mon Nov 23 10:00:00 2026\r\n" + clean,
        b"A: 1\r\nB: 2",  # no blank line
    ):
        assert message._clean_split(dirty) is None, dirty
        check_same_split(dirty)
    assert message._clean_split(clean.replace(b"C: 4", b"C: " + b"x" * 995)) is not None  # 998 exactly
