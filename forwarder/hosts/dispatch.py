"""Forwards spooled messages on a few threads (or worker processes), and retries what failed for now.

A message leaves the spool only when :meth:`Forwarder.process` returned, that is when every
recipient's outcome is recorded. A retryable failure (relay down, database away) keeps it spooled
and tries again after an exponential backoff with jitter, for as long as it takes: an accepted
message is never given up on. An entry that can never be forwarded (its raw message is gone, its
envelope is unreadable) is moved aside under ``failed/`` with a logged, named reason.

With a :class:`~forwarder.hosts.workers.WorkerPool`, each thread hands the loaded message to a
worker process and waits for its outcomes (forwarder/hosts/workers.py): the spool, the retries and
the counts stay here, in the listener's process.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from forwarder.adapters.local.spool import Spool
from forwarder.core import Verdicts
from forwarder.errors import MessageNotFound, RetryableError
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.hosts.retry import backoff
from forwarder.hosts.workers import STOP_SECONDS, WorkerPool, outcome_keys

__all__ = ["Dispatcher", "backoff"]

logger = logging.getLogger("othermail.dispatch")


class Dispatcher:
    def __init__(
        self,
        spool: Spool,
        forwarder: Forwarder,
        workers: int = 4,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        verdicts: Callable[[bytes], Verdicts] | None = None,
        processes: WorkerPool | None = None,
    ) -> None:
        self.spool = spool
        #: Reads the inbound verdicts back from a spooled message (forwarder.adapters.inbound_auth stamps
        #: them before spooling); None: the pipeline's defaults.
        self.verdicts = verdicts
        self.forwarder = forwarder
        #: Worker processes that run the forwarding flow; None: it runs on this process's threads.
        #: The dispatcher owns it and closes it.
        self.processes = processes
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.counts: Counter[str] = Counter()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forward")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._delayed: list[tuple[float, int, str, int]] = []
        self._sequence = 0
        self._wake = threading.Event()
        self._closing = False
        self._timer = threading.Thread(target=self._run_timer, name="forward-retry", daemon=True)
        self._timer.start()

    def submit(self, spool_id: str, attempt: int = 0) -> None:
        with self._lock:
            if self._closing:
                return  # stays spooled; the next start forwards it
            self._active += 1
        self._pool.submit(self._forward, spool_id, attempt)

    def recover(self) -> int:
        """Queue every entry a previous process accepted but did not finish."""
        waiting = self.spool.pending()
        for spool_id in waiting:
            self.submit(spool_id)
        return len(waiting)

    def _forward(self, spool_id: str, attempt: int) -> None:
        try:
            self._forward_once(spool_id, attempt)
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def _forward_once(self, spool_id: str, attempt: int) -> None:
        try:
            raw, envelope = self.spool.load(spool_id)
        except MessageNotFound as exc:
            self._give_up(spool_id, "spool-entry-missing", str(exc))
            return
        except ValueError as exc:
            self._give_up(spool_id, "spool-entry-unreadable", str(exc))
            return
        except RetryableError as exc:
            self._retry(spool_id, attempt, exc)
            return
        received = datetime.fromtimestamp(envelope.received_at, UTC)
        inbound = Inbound(
            f"smtp-{spool_id}",
            envelope.recipients,
            mail_from=envelope.mail_from or None,
            received_at=received,
            raw_key=envelope.key,
        )
        if envelope.verdicts is not None:  # what the listener found, recorded beside the message
            inbound = replace(inbound, verdicts=envelope.verdicts)
        elif self.verdicts is not None:  # an entry spooled before verdicts were recorded
            inbound = replace(inbound, verdicts=self.verdicts(raw))
        try:
            if self.processes is not None:
                outcomes = self.processes.forward(raw, inbound)
            else:
                outcomes = outcome_keys(self.forwarder.process(raw, inbound))
        except RetryableError as exc:
            self._retry(spool_id, attempt, exc)
            return
        except Exception as exc:  # a bug: keep the message, say so, try again later
            logger.exception("forwarding spool entry %s failed unexpectedly", spool_id)
            self._retry(spool_id, attempt, exc)
            return
        self.spool.done(spool_id)
        with self._lock:
            self.counts.update(outcomes)

    def _retry(self, spool_id: str, attempt: int, exc: Exception) -> None:
        delay = backoff(attempt + 1, self.retry_base, self.retry_cap)
        logger.warning(
            json.dumps(
                {
                    "event": "retry",
                    "spool_id": spool_id,
                    "attempt": attempt + 1,
                    "delay_s": round(delay, 2),
                    "error": f"{exc.__class__.__name__}: {exc}",
                }
            )
        )
        with self._lock:
            self.counts["retry"] += 1
            if self._closing:
                return
            self._sequence += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._sequence, spool_id, attempt + 1))
        self._wake.set()

    def _give_up(self, spool_id: str, reason: str, detail: str) -> None:
        self.spool.set_aside(spool_id)
        logger.error(json.dumps({"event": "skipped", "reason": reason, "spool_id": spool_id, "detail": detail}))
        with self._lock:
            self.counts[f"skipped:{reason}"] += 1

    def _run_timer(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                due = []
                while self._delayed and self._delayed[0][0] <= now:
                    due.append(heapq.heappop(self._delayed))
                wait = self._delayed[0][0] - now if self._delayed else None
            for _, _, spool_id, attempt in due:
                self.submit(spool_id, attempt)
            self._wake.wait(timeout=wait if wait is not None else 1.0)
            self._wake.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is being forwarded right now (scheduled retries do not count)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def backlog(self) -> int:
        """Messages handed in and not finished yet (running or waiting for a thread); scheduled
        retries do not count. Read without the lock: a momentary figure for flow control."""
        return self._active

    def snapshot(self) -> Counter[str]:
        """A copy of ``counts`` taken under the lock (for /metrics, read while threads count)."""
        with self._lock:
            return Counter(self.counts)

    @property
    def scheduled(self) -> int:
        with self._lock:
            return len(self._delayed)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking work, let running forwards finish; what is left stays spooled. The worker
        processes then have what is left of ``timeout`` to stop (a worker still starting up too),
        never less than the pool's own :data:`~forwarder.hosts.workers.STOP_SECONDS`."""
        deadline = time.monotonic() + timeout
        finished = self.wait_idle(timeout)
        with self._lock:
            self._closing = True
            self._delayed.clear()
        self._wake.set()
        self._pool.shutdown(wait=finished, cancel_futures=True)
        self._timer.join(timeout=5)
        if self.processes is not None:
            self.processes.close(max(STOP_SECONDS, deadline - time.monotonic()))
        return finished
