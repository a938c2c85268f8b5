"""FastSMTP's check that no DATA line is over the limit, without splitting the body into a list of
lines (~15 us of the listener's event loop for a 10 KB message, issue 15.6): lines_fit jumps from
a line start to the last CRLF within the next ``longest`` bytes, each stretch read once. It must
agree with the split it replaces on every body, the limits' edges included."""

from __future__ import annotations

import random

import pytest

from forwarder.adapters.smtp.server import lines_fit


def by_split(data: bytes, longest: int) -> bool:
    """What FastSMTP._data_state computed before: every line between the first and the last CRLF."""
    lines = bytes(data).split(b"\r\n")[1:-1]
    return max(map(len, lines), default=0) + 2 <= longest


def body(*lines: bytes) -> bytearray:
    return bytearray(b"\r\n" + b"".join(line + b"\r\n" for line in lines))


EDGES = [
    bytearray(b"\r\n"),
    body(b""),
    body(b"x" * 999),
    body(b"x" * 1000),
    body(b"short", b"x" * 999, b"short"),
    body(b"short", b"x" * 1000, b"short"),
    body(*[b"y" * 998] * 5),
    body(b"a\rb\nc" * 300),
    body(b"\r" * 999, b"z"),
    body(b"\r" * 1000),
    body(b"x" * 500, b"", b"", b"x" * 999),
]


@pytest.mark.parametrize("data", EDGES, ids=range(len(EDGES)))
def test_edges_agree_with_the_split(data: bytearray) -> None:
    assert lines_fit(data, 1001) is by_split(data, 1001)


def test_random_bodies_agree_with_the_split() -> None:
    rng = random.Random(156)
    for _ in range(3000):
        longest = rng.choice([5, 8, 50, 1001])
        pieces = [rng.choice([b"\r\n", b"\r", b"\n", b"x", b"x" * rng.randint(1, longest + 3)]) for _ in range(30)]
        data = bytearray(b"\r\n" + b"".join(pieces) + b"\r\n")
        assert lines_fit(data, longest) is by_split(data, longest), (longest, bytes(data))
