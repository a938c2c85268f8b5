"""forwarder/hosts/workers.py: the one box forwarding in worker processes fed by the spool."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.adapters.senders import MemorySender
from forwarder.errors import WorkerDied
from forwarder.flows.forward import Inbound
from forwarder.hosts import workers as workers_module
from forwarder.hosts.onebox import OneBox
from forwarder.hosts.workers import STOP_SECONDS, Worker, WorkerPool, WorkerSpec
from forwarder.settings import Settings
from models import Alias, make_session_factory, utcnow

ALIAS = "box@othermail.example"


def raw(n: int) -> bytes:
    return f"From: Jane <jane@example.net>\r\nSubject: hi {n}\r\nX-N: {n}\r\n\r\nbody {n}\r\n".encode()


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )


def box_with_alias(tmp_path: Path, workers: int) -> OneBox:
    box = OneBox(settings(tmp_path), web_port=None, smtp_port=None, workers=workers, processes=True)
    with make_session_factory(box.engine)() as db:
        user = ensure_user(db, "owner@owner.example")
        alias = Alias(address=ALIAS, user_id=user.id, created_at=utcnow())
        alias.destinations.append(ensure_destination(db, user, "me@real.example", verified_at=utcnow()))
        db.add(alias)
        db.commit()
    return box


def until_spool_empty(box: OneBox, bound: float = 60.0) -> None:
    """Waits (bounded, so a failure ends the test instead of hanging it); asserts nothing on time."""
    deadline = time.monotonic() + bound
    while box.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert box.spool.pending() == []


def outbox(box: OneBox) -> dict[int, int]:
    """X-N of each message in the outbox -> the pid of the process that wrote it (Maildir names
    hold the writer's pid: ``<time>.M<usec>P<pid>Q<n>.<host>``)."""
    found: dict[int, int] = {}
    for path in (box.settings.outbox / "new").iterdir():
        number = int(re.search(rb"^X-N: (\d+)", path.read_bytes(), re.M).group(1))  # type: ignore[union-attr]
        assert number not in found, f"message {number} forwarded twice"
        found[number] = int(re.search(r"P(\d+)", path.name).group(1))  # type: ignore[union-attr]
    return found


def pool(box: OneBox) -> WorkerPool:
    assert box.dispatcher.processes is not None
    return box.dispatcher.processes


def test_spooled_entries_are_forwarded_once_each_by_the_worker_processes_not_the_listener(tmp_path: Path) -> None:
    box = box_with_alias(tmp_path, workers=2)
    accepted = [box.spool.accept(raw(n), "jane@example.net", (ALIAS,)) for n in range(8)]
    started = box.start()  # recovery hands the 8 entries to the workers
    try:
        assert started.recovered == 8 and ("forwarder", "2 worker processes") in started.lines
        workers = pool(box).pids
        assert len(workers) == 2 and os.getpid() not in workers
        until_spool_empty(box)
        box.dispatcher.wait_idle(30)
        written = outbox(box)
        assert sorted(written) == list(range(8))
        assert set(written.values()) <= set(workers)  # the workers wrote them, each with its own runtime
        assert box.dispatcher.snapshot()["forwarded"] == 8
        assert box.metrics.snapshot()["forwarded"] == 8  # the workers' counters reach this process's /metrics
    finally:
        assert box.stop(timeout=30)
    assert all(box.spool.store.get(a.key) for a in accepted)  # the raw mail stays in the store


def test_a_worker_that_dies_leaves_its_message_spooled_and_another_worker_forwards_it_once(tmp_path: Path) -> None:
    box = box_with_alias(tmp_path, workers=1)
    box.start()
    try:
        box.dispatcher.retry_base = 0.01
        (dead,) = pool(box).pids
        os.kill(dead, signal.SIGSTOP)  # it holds the next message when it dies
        entry = box.spool.accept(raw(1), "jane@example.net", (ALIAS,))
        box.dispatcher.submit(entry.spool_id)
        os.kill(dead, signal.SIGKILL)
        until_spool_empty(box)
        box.dispatcher.wait_idle(30)
        (replacement,) = pool(box).pids
        assert replacement != dead
        assert outbox(box) == {1: replacement}
        counts = box.dispatcher.snapshot()
        assert counts["retry"] == 1 and counts["forwarded"] == 1
    finally:
        assert box.stop(timeout=30)


def test_stop_stops_every_worker_process(tmp_path: Path) -> None:
    box = box_with_alias(tmp_path, workers=3)
    box.start()
    workers: list[Worker] = list(pool(box)._workers)
    assert len(workers) == 3 and all(w.alive() for w in workers)
    # The workers may still be starting up (a fresh interpreter, its imports, its runtime: seconds on
    # a busy machine); the stop waits for each to exit, bounded by this timeout, asserting nothing on time.
    assert box.stop(timeout=120)
    assert [w.process.poll() for w in workers] == [0, 0, 0]  # each stopped on its own, none killed
    assert pool(box).pids == []


def test_the_worker_processes_have_the_stops_timeout_to_stop_not_only_the_pools_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker still starting up when the box stops (an import on a loaded machine) was killed once
    the pool's fixed STOP_SECONDS (10 s a worker) ran out, whatever time ``stop`` was given."""
    box = box_with_alias(tmp_path, workers=2)
    box.start()
    given: list[float] = []
    stop = Worker.stop

    def spy(worker: Worker, timeout: float = STOP_SECONDS) -> None:
        given.append(timeout)
        stop(worker, timeout)

    monkeypatch.setattr(Worker, "stop", spy)
    assert box.stop(timeout=120)
    assert len(given) == 2 and all(STOP_SECONDS < bound <= 120 for bound in given), given


def test_an_entry_accepted_while_workers_run_is_forwarded_and_the_box_restarts_with_what_was_left(
    tmp_path: Path,
) -> None:
    box = box_with_alias(tmp_path, workers=1)
    box.start()
    try:
        entry = box.spool.accept(raw(7), "jane@example.net", (ALIAS,))
        box.dispatcher.submit(entry.spool_id)
        until_spool_empty(box)
    finally:
        box.stop(timeout=30)
    left = box.spool.accept(raw(8), "jane@example.net", (ALIAS,))  # accepted, then the process "died"
    again = OneBox(box.settings, web_port=None, smtp_port=None, workers=1, processes=True)
    assert again.start().recovered == 1
    try:
        until_spool_empty(again)
        again.dispatcher.wait_idle(30)
    finally:
        again.stop(timeout=30)
    assert sorted(outbox(again)) == [7, 8] and again.spool.pending() == []
    assert (again.settings.store_dir / left.key).exists()


def test_a_sender_handed_in_cannot_be_used_with_worker_processes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker processes"):
        OneBox(settings(tmp_path), web_port=None, smtp_port=None, sender=MemorySender(), processes=True)


@pytest.mark.parametrize("close_timeout", [120.0, 0.0], ids=["close-waits-for-it", "close-gave-up-waiting"])
def test_a_worker_started_in_place_of_a_dead_one_while_the_pool_closes_is_stopped_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, close_timeout: float
) -> None:
    """The pool replaced a dead worker in two steps: it read ``_closed`` under the lock, then stopped
    the dead one (up to 1 s) and started the new one outside it. A ``close`` in between never saw
    the new worker, which ran on after the box stopped, until the parent process exited. Now close
    waits for the replacement (its timeout allowing) and stops the new worker; a replacement that
    outlasts close's wait stops the worker it started itself."""
    box = box_with_alias(tmp_path, workers=1)
    started: list[Worker] = []

    class Recorded(Worker):
        def __init__(self, spec: WorkerSpec) -> None:
            super().__init__(spec)
            started.append(self)

    monkeypatch.setattr(workers_module, "Worker", Recorded)
    processes = WorkerPool(WorkerSpec(box.settings), size=1)
    try:
        (dead,) = started
        in_the_gap, release = threading.Event(), threading.Event()
        stop = dead.stop

        def stop_in_the_gap(timeout: float = STOP_SECONDS) -> None:
            in_the_gap.set()  # _replace has decided to start another worker and let go of the lock
            assert release.wait(60)
            stop(timeout)

        dead.stop = stop_in_the_gap  # type: ignore[method-assign]
        dead.process.kill()
        dead.process.wait()
        errors: list[BaseException] = []

        def forward() -> None:
            try:
                with pytest.raises(WorkerDied):
                    processes.forward(raw(1), Inbound("m1", (ALIAS,)))
            except BaseException as exc:  # noqa: BLE001 - raised again on the test's thread
                errors.append(exc)

        forwarding = threading.Thread(target=forward, name="forward", daemon=True)
        forwarding.start()
        assert in_the_gap.wait(60)
        closing = threading.Thread(target=processes.close, kwargs={"timeout": close_timeout}, name="close", daemon=True)
        closing.start()
        deadline = time.monotonic() + 60  # a bounded wait for close to begin; nothing asserted on time
        while not processes._closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert processes._closed
        release.set()
        forwarding.join(120)
        closing.join(120)
        assert not forwarding.is_alive() and not closing.is_alive()
        if errors:
            raise errors[0]
        assert len(started) == 2  # the dead worker and the one started in its place
        statuses = [w.process.poll() for w in started]
        assert statuses[0] == -signal.SIGKILL and statuses[1] is not None  # none left running
        if close_timeout:
            assert statuses[1] == 0  # close stopped it, within its timeout, not killed
        assert processes.pids == [] and processes._workers == []
    finally:
        release.set()
        for worker in started:
            if worker.alive():
                worker.process.kill()
                worker.process.wait()
        box.engine.dispose()
