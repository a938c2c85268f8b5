"""Forwarding in worker processes fed by the spool (the one box's answer to the GIL).

The SMTP listener's process accepts, spools and answers 250; the forwarding flow (the core, the
database, the sender) runs in ``N`` worker processes, so the box uses every core and the listener's
event loop never waits for a forwarding thread to let go of the GIL.

- Each worker is a fresh interpreter (``python -c``, not a fork of a process that already runs
  threads and holds database connections) that builds its own :class:`Runtime` from the settings it
  is sent: its own engine, pool and relay connections, never shared.
- The listener's process keeps the spool. A :class:`~forwarder.hosts.dispatch.Dispatcher` thread
  loads an entry (from memory, just after its 250), sends the raw bytes and the envelope to an idle
  worker over a socket pair and waits for the outcomes; only then does it remove the entry from the
  spool. A worker that dies (killed, out of memory, a crash in C) closes its socket: the job it had
  raises :class:`WorkerDied`, a retryable error, so the entry stays spooled and the dispatcher hands
  it to a fresh worker after its backoff. The delivery claims in SQL make that second attempt send
  nothing the dead worker had already recorded as sent.
- :meth:`WorkerPool.close` asks every worker to stop, waits for them (one bound for all of them, the
  time the caller gives: a worker still starting up gets it too), and kills what does not stop. A
  worker being started in place of a dead one is waited for and stopped with the others (or, when
  that bound ran out first, stopped by the thread that started it): none runs on after the close.

The parent's metrics stay the one place ``/metrics`` reads: a worker returns, with each job's
outcomes, what its own counters gained, and the pool adds that to the parent's.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from forwarder.errors import RetryableError, WorkerDied, WorkerFailed
from forwarder.flows.forward import Inbound
from forwarder.ops.metrics import Metrics
from forwarder.settings import Settings

logger = logging.getLogger("othermail.workers")

#: Seconds :meth:`WorkerPool.close` waits for its workers to stop before it kills what is left, unless
#: its caller gives more (``OneBox.stop`` hands what is left of its timeout down through the dispatcher).
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its runtime: everything else it reads from these settings."""

    settings: Settings
    #: The web app's address, for links in notices and unsubscribe links, when OTHERMAIL_PUBLIC_URL
    #: is unset (the one box learns it only once the web app listens).
    public_url: str | None = None
    #: Logger name -> level, as the parent has them (the outcome lines on standard error).
    log_levels: tuple[tuple[str, int], ...] = ()


def outcome_keys(reports: list[Any]) -> list[str]:
    """What the dispatcher counts for each report: its outcome, or ``duplicate``."""
    return ["duplicate" if report.duplicate else report.outcome.value for report in reports]


class Worker:
    """One worker process and the parent's end of its socket pair; used by one thread at a time."""

    def __init__(self, spec: WorkerSpec) -> None:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from forwarder.hosts.workers import main; main()", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        self.connection.send(spec)  # read once the worker has imported what it needs

    @property
    def pid(self) -> int:
        return self.process.pid

    def forward(self, raw: bytes, inbound: Inbound) -> tuple[list[str], Counter[str]]:
        """The outcomes of forwarding ``raw`` and what the worker's metrics gained; raises
        :class:`WorkerDied` when the process ends first, :class:`WorkerFailed` for an error there."""
        try:
            self.connection.send((raw, inbound))
            answer = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"worker {self.pid} ended ({exc.__class__.__name__})") from None
        kind, value, gained = answer
        if kind == "done":
            return value, Counter(gained)
        if kind == "retry":
            raise WorkerFailed(value)
        raise WorkerFailed(f"worker {self.pid}: {value}")  # an unexpected error, logged by the worker

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("worker %d did not stop within %.0f s; killed", self.pid, timeout)
            self.process.kill()
            self.process.wait()
        self.connection.close()


class WorkerPool:
    """``size`` worker processes; :meth:`forward` borrows an idle one (replacing it if it died)."""

    def __init__(self, spec: WorkerSpec, size: int, metrics: Metrics | None = None) -> None:
        self.spec = spec
        self.metrics = metrics
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: Notified when a replacement ends (the worker added, or none started): ``close`` waits for it.
        self._replaced = threading.Condition(self._lock)
        self._workers: list[Worker] = []
        #: ``close`` has begun: no replacement begins after it.
        self._closed = False
        #: Replacements begun and not ended; ``close`` waits for them before it takes the workers.
        self._replacing = 0
        #: ``close`` has taken the workers to stop: a worker added after that it never sees.
        self._taken = False
        for _ in range(size):
            self._idle.put(self._start())

    def _start(self) -> Worker:
        worker = Worker(self.spec)
        with self._lock:
            self._workers.append(worker)
        return worker

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._workers if w.alive()]

    def forward(self, raw: bytes, inbound: Inbound) -> list[str]:
        """Forward in a worker; the same contract as :meth:`Forwarder.process`, with outcome names."""
        worker = self._idle.get()
        try:
            keys, gained = worker.forward(raw, inbound)
        except WorkerDied:
            self._replace(worker)
            raise
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        if self.metrics is not None:
            for key, amount in gained.items():
                self.metrics.count(key, amount)
        return keys

    def _replace(self, dead: Worker) -> None:
        """Stop ``dead`` and start another in its place, unless the pool is closing. The lock is not
        held meanwhile (stopping takes up to a second), so ``close`` waits for a replacement it finds
        begun; one that outlasts the wait stops the worker it started itself."""
        logger.error("forwarding worker %d ended (exit status %s); starting another", dead.pid, dead.process.poll())
        with self._lock:
            if dead in self._workers:
                self._workers.remove(dead)
            replacing = not self._closed
            self._replacing += replacing
        worker: Worker | None = None
        try:
            dead.stop(timeout=1.0)
            if replacing:
                worker = Worker(self.spec)
        finally:
            with self._lock:
                if replacing:
                    self._replacing -= 1
                    self._replaced.notify_all()
                late = self._taken  # close has taken the workers: this one is ours to stop
                if worker is not None and not late:
                    self._workers.append(worker)
                closed = self._closed
        if worker is None:
            return
        if late:
            worker.stop()
        elif not closed:
            self._idle.put(worker)

    def close(self, timeout: float = STOP_SECONDS) -> None:
        """Stop every worker (each finishes the message it holds, or its start-up, first); what has
        not stopped ``timeout`` seconds from now, all workers together, is killed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            # A worker being started in place of a dead one is not in the list yet: wait for it.
            while self._replacing and (left := deadline - time.monotonic()) > 0:
                self._replaced.wait(left)
            self._taken = True
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            try:
                worker.connection.send(None)
            except OSError:
                pass
        for worker in workers:
            worker.stop(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------- the worker process


def serve(connection: Connection) -> None:
    """Build a runtime from the spec the parent sends, then forward what it sends until ``None``."""
    from forwarder.runtime import Runtime

    spec: WorkerSpec = connection.recv()
    if spec.log_levels:
        logging.basicConfig(format="%(message)s", stream=sys.stderr)
        for name, level in spec.log_levels:
            logging.getLogger(name or None).setLevel(level)
    runtime = Runtime.build(spec.settings)
    forwarder = runtime.forwarder
    if spec.public_url:
        if forwarder.notifier is not None:
            forwarder.notifier.public_url = spec.public_url
        if forwarder.two_way is not None:
            forwarder.two_way.public_url = spec.public_url
    metrics = runtime.metrics
    try:
        while True:
            try:
                job = connection.recv()
            except EOFError:
                return  # the parent is gone
            if job is None:
                return
            raw, inbound = job
            before = metrics.snapshot()
            try:
                answer: tuple[str, Any, dict[str, int]] = ("done", outcome_keys(forwarder.process(raw, inbound)), {})
            except RetryableError as exc:
                answer = ("retry", f"{exc.__class__.__name__}: {exc}", {})
            except Exception as exc:  # a bug: keep the message, say so here, where the traceback is
                logger.exception("forwarding %s failed unexpectedly", inbound.message_id)
                answer = ("error", f"{exc.__class__.__name__}: {exc}", {})
            gained = metrics.snapshot()
            gained.subtract(before)
            try:
                connection.send((answer[0], answer[1], {k: v for k, v in gained.items() if v}))
            except OSError:
                return  # the parent is gone; the entry stays in its spool for the next start
    finally:
        runtime.close()


def main() -> None:
    """The worker process's entry point: ``python -c ... <fd of its end of the socket pair>``."""
    import signal

    # Ctrl-C and systemd's SIGTERM reach the whole group: the parent stops each worker once the
    # message it holds is forwarded (and a worker whose parent is gone stops at its next read).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(Connection(int(sys.argv[1])))
