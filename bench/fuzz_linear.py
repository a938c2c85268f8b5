"""Does the forwarding core stay linear on hostile input? Time per input size, ratio per 4x size.

    .venv/bin/python bench/fuzz_linear.py [--quick] [--only NAME]

For each family of inputs (many header fields, many body lines, one field folded over many lines,
one very long line...) the whole core runs on sizes growing by a factor of 4:
``forward(prepare(raw), ...)`` for an active alias, then ``Outgoing.as_bytes()``. Each time is
the fastest of several interleaved rounds after a warm-up run. A linear cost gives a ratio near 4 per
step (less at small sizes, where fixed costs dominate); quadratic gives 16. A step passes when its
ratio is under ``LIMIT`` (6). Every figure is measured in the run that prints it; the test suite
never asserts a time (tests/forwarder/core/test_fuzz.py checks these inputs for correctness).

The quoted-printable family found a quadratic repair (``body._soft_wrap`` copied the rest of a long
line at every soft break: ratio 16 per 4x, 49 s for one 10 MB line); it is linear since the fix.

Exit status 1 when a step fails, so the script can gate a manual check; it does not run in CI.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.dont_write_bytecode = True  # leave no bench/__pycache__ behind
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from forwarder.core import AliasState, Policy, Verdicts, forward, prepare  # noqa: E402

ALIAS = "shop-7hq2@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
LIMIT = 6.0
HEAD = b"From: Jane Doe <jane@example.com>\r\nTo: " + ALIAS.encode() + b"\r\nSubject: linear\r\n"


# --- input families: size -> raw message ------------------------------------------------------------


def many_fields(n: int) -> bytes:
    """n header fields of mixed kinds: clean trace fields, duplicated Subjects, raw 8-bit (encoded
    by rule 10), recipients (merged, then over the limit of 50), folded fields."""
    kinds = (
        b"Received: from relay%d.example.net by mx.example.com; Mon, 23 Nov 2026 11:00:00 +0100",
        b"Subject: duplicate %d",
        b"X-Latin: J\xf6rg %d",
        b"To: user%d@example.com",
        b"X-Folded: a%d\r\n continued",
    )
    return HEAD + b"\r\n".join(kinds[i % 5] % i for i in range(n)) + b"\r\n\r\nbody\r\n"


def many_fields_no_blank_line(n: int) -> bytes:
    return HEAD + b"\n".join(b"X-F%d: v" % i for i in range(n))


def body_lines(n: int) -> bytes:
    return HEAD + b"\r\n" + b"a line of the body\r\n" * n


def body_lines_and_a_long_one(n: int) -> bytes:
    """n body lines and one over 998 bytes: the body repair re-encodes the text part."""
    body = b"a line of the body \xc3\xa9\r\n" * n + b"L" * 5_000 + b"\r\n"
    return HEAD + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body


def multipart_long_parts(n: int) -> bytes:
    """n parts, each with a line over 998 bytes: every part is repaired."""
    part = b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + b"p" * 1_200 + b"\r\n"
    return HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + part * n + b"--b--\r\n"


def qp_long_line(n: int) -> bytes:
    """A quoted-printable part whose text is one line of n*10 bytes: soft line breaks are added."""
    return (
        HEAD
        + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"0123456=3D" * n
        + b"\r\n"
    )


def base64_long_line(n: int) -> bytes:
    """A base64 part written as one line of n*4 characters: it is re-wrapped."""
    return (
        HEAD
        + b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"QUJD" * n
        + b"\r\n"
    )


def folded_subject(n: int) -> bytes:
    """A clean Subject folded over n continuation lines: kept as it is."""
    return (
        HEAD.replace(b"Subject: linear", b"Subject: start" + b"".join(b"\r\n part %d" % i for i in range(n))) + b"\r\nb"
    )


def folded_dirty_subject(n: int) -> bytes:
    """A Subject with raw 8-bit text and NUL over n continuation lines: RFC 2047-encoded."""
    value = b"J\xf6rg" + b"".join(b"\r\n\tpart\x00 %d" % i for i in range(n))
    return HEAD.replace(b"Subject: linear", b"Subject: " + value) + b"\r\nb"


def folded_to(n: int) -> bytes:
    """To with n addresses, one per continuation line (over 50: renamed X-Original-To)."""
    to = b"To: " + b",\r\n ".join(b"u%d@example.com" % i for i in range(n))
    return HEAD.replace(b"To: " + ALIAS.encode(), to) + b"\r\nb"


def folded_odd_to(n: int) -> bytes:
    """To with n addresses in forms the fast reader refuses (comments, groups): the full parser."""
    to = b"To: group: " + b",\r\n ".join(b"u%d@example.com (c%d)" % (i, i) for i in range(n)) + b";"
    return HEAD.replace(b"To: " + ALIAS.encode(), to) + b"\r\nb"


def to_spaces_then_words(n: int) -> bytes:
    """To: an address, then n lines of 900 spaces and n lines of 450 words: the fast address
    reader's leading white space once backtracked over the phrase (80 KB: 128 s; review HIGH 3)."""
    spaces = b"\r\n".join([b" " * 900] * n)
    words = b"\r\n".join([b" " + b"a " * 450] * n)
    return (
        b"From: Jane Doe <jane@example.com>\r\nTo: a@b.example,\r\n"
        + spaces
        + b"\r\n"
        + words
        + b"\r\nSubject: linear\r\n\r\nbody\r\n"
    )


def long_subject_line(n: int) -> bytes:
    """One Subject line of n*10 bytes of 8-bit text, no folding: RFC 2047-encoded."""
    return HEAD.replace(b"Subject: linear", b"Subject: " + "Grüße aus".encode() * n) + b"\r\nb"


def many_encoded_words(n: int) -> bytes:
    """A Subject of n encoded words, every other one broken."""
    word = b"=?utf-8?b?" + base64.b64encode("Grüße".encode()) + b"?= =?x-bad?q?=ZZ?= "
    return HEAD.replace(b"Subject: linear", b"Subject: " + word * n) + b"\r\nb"


FAMILIES: list[tuple[str, Callable[[int], bytes], list[int]]] = [
    ("header fields", many_fields, [1_000, 4_000, 16_000, 64_000]),
    ("header fields, no blank line", many_fields_no_blank_line, [1_000, 4_000, 16_000, 64_000]),
    ("body lines", body_lines, [15_625, 62_500, 250_000, 1_000_000]),  # 20 MB at 10^6 lines
    ("body lines + one long line", body_lines_and_a_long_one, [15_625, 62_500, 250_000, 1_000_000]),
    ("multipart, every part long", multipart_long_parts, [250, 1_000, 4_000, 16_000]),
    ("quoted-printable, one long line (x10 B)", qp_long_line, [4_000, 16_000, 64_000, 256_000, 1_024_000]),
    ("base64, one long line (x4 B)", base64_long_line, [10_000, 40_000, 160_000, 640_000, 2_560_000]),
    ("folded Subject, continuation lines", folded_subject, [1_562, 6_250, 25_000, 100_000]),
    ("folded 8-bit Subject, continuation lines", folded_dirty_subject, [1_562, 6_250, 25_000, 100_000]),
    ("folded To, addresses", folded_to, [1_562, 6_250, 25_000, 100_000]),
    ("folded To, comments and a group", folded_odd_to, [390, 1_562, 6_250, 25_000]),
    ("To: spaces, then phrase words (x1.8 KB)", to_spaces_then_words, [16, 64, 256, 1_024]),
    ("one 8-bit Subject line (x10 B)", long_subject_line, [1_000, 4_000, 16_000, 64_000, 256_000]),
    ("encoded words in a Subject", many_encoded_words, [250, 1_000, 4_000, 16_000, 64_000]),
]


# --- timing -----------------------------------------------------------------------------------------


def run_core(raw: bytes) -> str:
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    if result.outgoing is not None:
        result.outgoing.as_bytes()
    return result.outcome.value


def time_family(raws: list[bytes], rounds: int) -> tuple[list[float], list[str]]:
    """The fastest run of each input over ``rounds`` interleaved rounds, after a warm-up run each.

    Every round runs every size once, in a rotated order, so a burst of load on a shared machine
    hits all sizes alike; the minimum, not the median, because noise only ever adds time.
    """
    outcomes = [run_core(raw) for raw in raws]  # warm-up, discarded
    best = [float("inf")] * len(raws)
    for r in range(rounds):
        order = list(range(len(raws)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            gc.collect()
            start = time.perf_counter()
            run_core(raws[i])
            best[i] = min(best[i], time.perf_counter() - start)
    return best, outcomes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    parser.add_argument("--only", help="run the families whose name contains this text")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 9

    print("othermail core: growth of the time with the input size (forward + as_bytes)")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f}; fastest of {rounds} interleaved rounds after a warm-up; "
        f"a step passes when time(4n)/time(n) < {LIMIT}"
    )
    failed: list[str] = []
    started = time.perf_counter()
    for name, build, sizes in FAMILIES:
        if args.only and args.only.lower() not in name.lower():
            continue
        raws = [build(n) for n in sizes]
        seconds, outcomes = time_family(raws, rounds)
        print(f"\n{name}")
        print(f"  {'n':>10} {'bytes':>12} {'seconds':>10} {'ratio':>7}  verdict  outcome")
        for i, n in enumerate(sizes):
            ratio_text, verdict = "", ""
            if i:
                ratio = seconds[i] / seconds[i - 1]
                ratio_text = f"{ratio:7.2f}"
                verdict = "PASS" if ratio < LIMIT else "FAIL"
                if verdict == "FAIL":
                    failed.append(f"{name}: {n:,}")
            print(f"  {n:>10,} {len(raws[i]):>12,} {seconds[i]:>10.4f} {ratio_text:>7}  {verdict:<7}  {outcomes[i]}")
        growth = (seconds[-1] / seconds[0]) ** (1 / (len(sizes) - 1))
        print(
            f"  whole range: x{sizes[-1] // sizes[0]:,} in size, x{seconds[-1] / seconds[0]:,.1f} in time "
            f"(geometric mean {growth:.2f} per 4x)"
        )
        del raws
    print(
        f"\n{'FAIL: ' + '; '.join(failed) if failed else 'PASS: every step under ' + str(LIMIT)}"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
