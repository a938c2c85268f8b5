"""The budgeted retry loop: backoff with full jitter, within the time left, then the last error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from forwarder.errors import DatabaseUnavailable, MessageNotFound, PermanentSendError, SendRetryable
from forwarder.hosts.retry import DEFAULT_BUDGET_SECONDS, RetryPolicy, backoff, full_jitter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(time: FakeTime, rng: float = 1.0, **options: float) -> RetryPolicy:
    return RetryPolicy(sleep=time.sleep, clock=time.clock, rng=lambda: rng, **options)  # type: ignore[arg-type]


def failing(times: int, error: Exception, took: float = 0.0, time: FakeTime | None = None):
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        if time is not None:
            time.now += took
        if calls["n"] <= times:
            raise error
        return "done"

    return work, calls


def test_full_jitter_is_between_zero_and_a_capped_exponential_ceiling() -> None:
    assert full_jitter(1, 0.1, 5.0, rng=lambda: 1.0) == pytest.approx(0.1)
    assert full_jitter(4, 0.1, 5.0, rng=lambda: 1.0) == pytest.approx(0.8)
    assert full_jitter(20, 0.1, 5.0, rng=lambda: 1.0) == 5.0
    assert full_jitter(3, 0.1, 5.0, rng=lambda: 0.0) == 0.0
    assert full_jitter(10_000, 0.1, 5.0, rng=lambda: 0.5) == 2.5  # no overflow on a huge attempt


def test_backoff_keeps_its_equal_jitter_for_the_dispatcher() -> None:
    assert backoff(1, 1.0, 300.0, rng=lambda: 0.0) == 0.5
    assert backoff(4, 1.0, 300.0, rng=lambda: 1.0) == 8.0


def test_a_transient_error_is_retried_with_growing_sleeps_until_it_succeeds() -> None:
    time = FakeTime()
    work, calls = failing(3, SendRetryable("SES TooManyRequestsException"))
    assert policy(time).call(work, deadline=time.now + 60) == "done"
    assert calls["n"] == 4
    assert time.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_the_last_error_is_raised_when_the_budget_cannot_hold_another_attempt() -> None:
    time = FakeTime()
    # each attempt takes 2 s; 10 s of budget minus a 5 s reserve leaves room for few of them
    work, calls = failing(100, DatabaseUnavailable("gone"), took=2.0, time=time)
    with pytest.raises(DatabaseUnavailable):
        policy(time, base=1.0).call(work, deadline=time.now + 10)
    assert calls["n"] == 2
    assert time.now <= 1000.0 + 10 - 5  # stopped with the reserve left


def test_attempts_are_bounded_even_with_time_to_spare() -> None:
    time = FakeTime()
    work, calls = failing(100, SendRetryable("throttled"))
    with pytest.raises(SendRetryable):
        policy(time, max_attempts=3).call(work, deadline=time.now + 3600)
    assert calls["n"] == 3


@pytest.mark.parametrize("error", [MessageNotFound("no object"), PermanentSendError("rejected"), KeyError("bug")])
def test_a_missing_message_a_permanent_error_and_a_bug_are_not_retried(error: Exception) -> None:
    time = FakeTime()
    work, calls = failing(1, error)
    with pytest.raises(type(error)):
        policy(time).call(work, deadline=time.now + 60)
    assert calls["n"] == 1
    assert time.sleeps == []


def test_the_deadline_comes_from_the_lambda_context_or_the_default_budget() -> None:
    time = FakeTime()
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 42_500)
    assert policy(time).deadline(context) == 1000.0 + 42.5
    assert policy(time).deadline(None) == 1000.0 + DEFAULT_BUDGET_SECONDS
    assert policy(time).deadline(SimpleNamespace(function_name="f")) == 1000.0 + DEFAULT_BUDGET_SECONDS
