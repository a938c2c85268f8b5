"""bench/onebox.py --profile: a cProfile of every thread of every process of the box.

On ``PYTHONPATH`` only when ``--profile DIR`` is given (``ONEBOX_PROFILE=DIR`` in the box's
environment, which its worker processes inherit). Each thread gets its own profiler, timed with
the thread's own CPU clock (``time.thread_time``: user and system time, not time spent waiting),
and writes ``DIR/<pid>-<n>-<thread name>.prof`` when the process exits normally. cProfile slows Python
code down more than system calls, so read the shares, not the totals.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import sys
import threading
import time

_DIR = os.environ.get("ONEBOX_PROFILE")
_profiles: list[tuple[str, cProfile.Profile]] = []


def _start(name: str) -> None:
    profile = cProfile.Profile(time.thread_time)
    _profiles.append((name, profile))
    profile.enable()


def _thread_hook(*_: object) -> None:
    sys.setprofile(None)
    _start(threading.current_thread().name)


def _dump() -> None:
    for n, (name, profile) in enumerate(_profiles):
        profile.disable()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        profile.dump_stats(os.path.join(_DIR or ".", f"{os.getpid()}-{n}-{safe}.prof"))


if _DIR and ("-m" in sys.orig_argv or "-c" in sys.orig_argv):  # the box and its workers, not a helper
    threading.setprofile(_thread_hook)
    _start("main")
    atexit.register(_dump)
