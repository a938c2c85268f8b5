"""tests/support/races.py: the racing threads start together, a thread's exception fails the test as
itself, and a thread that does not finish fails it by name instead of hanging it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.support.races import StillRunning, race


def test_every_thread_is_running_before_any_call_starts_and_results_keep_their_order() -> None:
    count = 4
    before = set(threading.enumerate())
    together = threading.Barrier(count)  # no call returns before all have begun: all live meanwhile
    seen: list[int] = []

    def call(n: int) -> Callable[[], int]:
        def run() -> int:
            seen.append(len([t for t in threading.enumerate() if t not in before]))
            together.wait(timeout=10)
            return n

        return run

    assert race([call(n) for n in range(count)], within=30) == [0, 1, 2, 3]
    assert seen == [count] * count


def test_the_exception_a_thread_raised_is_raised_again_with_its_traceback() -> None:
    def boom() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread") as raised:
        race([lambda: None, boom, lambda: None], within=30)
    assert raised.traceback[-1].name == "boom"


def test_a_thread_still_running_at_the_bound_fails_the_race() -> None:
    release = threading.Event()
    try:
        with pytest.raises(StillRunning, match=r"1 of 2 threads still running after 1 s: race-1"):
            race([lambda: None, lambda: release.wait(60)], within=1)
    finally:
        release.set()
