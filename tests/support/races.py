"""Racing threads in a test: start them all at the same instant, wait a bounded time, and fail the
test with a thread's own exception or with the threads still running.

    results = race([lambda: claim("m1"), lambda: claim("m2")], within=60)

Each callable runs on its own thread; the threads wait on one barrier, so none starts its work
before the last has started. What would be prepared first on each thread (an engine, a directory)
is prepared by the caller before ``race`` and handed to the callables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class StillRunning(AssertionError):
    """Threads of a race had not finished when its bound was reached (a hang, a deadlock)."""


def race(runs: Sequence[Callable[[], T]], *, within: float) -> list[T]:
    """Run each of ``runs`` on its own thread, all released together, and return what each returned,
    in the order of ``runs``. The first exception a thread raised is raised again here (with its own
    traceback); a thread still running ``within`` seconds after the release fails with
    ``StillRunning``. The threads are daemons: one that hangs does not keep the test run alive."""
    start = threading.Barrier(len(runs))
    results: dict[int, T] = {}
    errors: list[BaseException] = []  # in the order they were raised
    lock = threading.Lock()

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            start.wait(timeout=within)
            result = call()
        except BaseException as exc:  # noqa: BLE001 - raised again by the caller's thread
            with lock:
                errors.append(exc)
        else:
            with lock:
                results[index] = result

    threads = [
        threading.Thread(target=run, args=(index, call), name=f"race-{index}", daemon=True)
        for index, call in enumerate(runs)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [thread.name for thread in threads if thread.is_alive()]
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.add_note(f"race: {len(errors) - 1} other thread(s) raised too: {errors[1:]!r}")
        if running:
            first.add_note(f"race: still running after {within} s: {', '.join(running)}")
        raise first
    if running:
        raise StillRunning(
            f"{len(running)} of {len(threads)} threads still running after {within} s: {', '.join(running)}"
        )
    return [results[index] for index in range(len(runs))]
