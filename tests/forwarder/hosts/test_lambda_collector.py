"""A cold start runs with the cyclic garbage collector paused, then freezes what it built (issue 15,
point 7): the collector's passes over the objects a cold start makes were a sixth of its CPU.
Structural checks only; bench/coldstart.py shows the time."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from forwarder.hosts import lambda_handler


class FakeRuntime:
    """Records whether the collector ran during each invocation, and keeps an object each one made."""

    def __init__(self) -> None:
        self.collector: list[bool] = []
        self.made: list[list[int]] = []

    def invoke(self, event: Any, dimensions: Any = None, context: Any = None) -> dict[str, Any]:
        self.collector.append(gc.isenabled())
        self.made.append([len(self.made)])  # a list: always tracked
        return {"outcomes": {}}


def frozen(obj: object) -> bool:
    """Whether ``obj`` (tracked by the collector) is in the permanent generation: ``gc.get_objects()``
    lists the three collected generations only. (Not ``gc.get_freeze_count()``: that counts every
    frozen object of the process, and any other thread's or any other code's object that dies
    lowers it.)"""
    assert gc.is_tracked(obj)
    return not any(o is obj for o in gc.get_objects())


@pytest.fixture(autouse=True)
def collector_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts cold with the collector on, and leaves this process's collector as it was."""
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def cold_start_recording(monkeypatch: pytest.MonkeyPatch, seen: list[bool], runtime: Any) -> None:
    def fake_cold_start(environ: Mapping[str, str]) -> Any:
        seen.append(gc.isenabled())
        if runtime is None:
            raise RuntimeError("no database")
        return runtime

    monkeypatch.setattr(lambda_handler, "_cold_start", fake_cold_start)


def test_the_cold_start_and_first_invocation_run_without_the_collector_then_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, seen = FakeRuntime(), []
    cold_start_recording(monkeypatch, seen, runtime)
    gc.unfreeze()
    lambda_handler.handler({}, None)
    assert seen == [False]  # building the runtime
    assert runtime.collector == [False]  # the first invocation (the AWS clients, the first queries)
    assert gc.isenabled()
    # what the cold start built, and what the first invocation made, are out of the collector's reach
    assert frozen(runtime) and frozen(runtime.made[0])
    lambda_handler.handler({}, None)
    assert runtime.collector == [False, True]  # a warm invocation runs with the collector
    assert not frozen(runtime.made[1])  # and freezes nothing more
    assert seen == [False]


def test_a_failed_cold_start_turns_the_collector_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    cold_start_recording(monkeypatch, seen, None)
    with pytest.raises(RuntimeError):
        lambda_handler.handler({}, None)
    assert seen == [False]
    assert gc.isenabled()
    assert lambda_handler._runtime is None  # the next invocation starts cold again


def test_a_collector_the_host_turned_off_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, seen = FakeRuntime(), []
    cold_start_recording(monkeypatch, seen, runtime)
    gc.disable()
    lambda_handler.handler({}, None)
    assert not gc.isenabled()
