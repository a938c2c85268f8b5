"""Retries inside one Lambda invocation: transient SES, S3 and database errors are retried within the
time the context has left, then raised for Lambda to retry; ``handle`` alone tries once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.errors import DatabaseUnavailable, SendRetryable
from forwarder.hosts import lambda_handler
from forwarder.hosts.retry import RetryPolicy
from models import Delivery, make_engine, make_session_factory
from tests.forwarder.hosts.lambda_env import PREFIX, Env, ses_event

ALIAS = "shop-7hq2@othermail.example"
MESSAGE = b"From: jane@example.net\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Throttled(MemorySender):
    """Throttled ``fail`` times, then accepts."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.calls = 0

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        self.calls += 1
        if self.calls <= self.fail:
            raise SendRetryable("SES TooManyRequestsException: Maximum sending rate exceeded.")
        return super().send(raw, sender=sender, recipient=recipient)


def context(seconds_left: float, time: FakeTime) -> SimpleNamespace:
    deadline = time.now + seconds_left
    return SimpleNamespace(
        function_name="othermail-forwarder", get_remaining_time_in_millis=lambda: int((deadline - time.now) * 1000)
    )


def runtime_with(env: Env, sender: Any, time: FakeTime) -> lambda_handler.LambdaRuntime:
    runtime = env.runtime(sender=sender)
    runtime.retry = RetryPolicy(sleep=time.sleep, clock=time.clock, rng=lambda: 1.0)
    return runtime


def rows(env: Env) -> list[Delivery]:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(Delivery)))
    finally:
        engine.dispose()


def test_a_throttled_send_is_retried_within_the_invocation_and_sent_once(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), Throttled(fail=2)
    lines: list[str] = []
    summary = runtime_with(env, sender, time).invoke(
        ses_event("m1", ALIAS), emit=lines.append, context=context(60, time)
    )
    assert summary["outcomes"] == {"forwarded": 1}
    assert len(sender.sent) == 1
    assert time.sleeps == pytest.approx([0.1, 0.2])  # full jitter at its ceiling (rng 1.0)
    (row,) = rows(env)
    assert (row.outcome, row.attempts) == ("forwarded", 3)
    assert '"retry"' not in lines[0]  # the invocation did not fail


def test_without_time_for_another_attempt_the_error_is_raised_for_lambda(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), Throttled(fail=100)
    runtime = runtime_with(env, sender, time)
    lines: list[str] = []
    with pytest.raises(SendRetryable):
        runtime.invoke(ses_event("m1", ALIAS), emit=lines.append, context=context(5.05, time))  # reserve: 5 s
    assert sender.calls == 1
    assert '"retry"' in lines[0]
    # Lambda's own retry, later, with time: it takes the released claim over and sends once
    sender.fail = 0
    assert runtime.invoke(ses_event("m1", ALIAS), emit=lines.append, context=context(60, time))["outcomes"] == {
        "forwarded": 1
    }
    assert len(sender.sent) == 1


def test_a_transient_s3_error_is_retried(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), MemorySender()
    runtime = runtime_with(env, sender, time)
    client = runtime.store._client
    real_get = client.get_object
    calls = {"n": 0}

    def flaky_get(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "slow down"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "GetObject",
            )
        return real_get(**kwargs)

    runtime.store._client = SimpleNamespace(get_object=flaky_get)
    summary = runtime.invoke(ses_event("m1", ALIAS), emit=lambda _: None, context=context(60, time))
    assert summary["outcomes"] == {"forwarded": 1}
    assert calls["n"] == 2 and len(sender.sent) == 1


def test_a_database_outage_is_retried_then_raised(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), MemorySender()
    runtime = runtime_with(env, sender, time)
    begins = {"n": 0}

    def down(*args: Any) -> Any:
        begins["n"] += 1
        raise DatabaseUnavailable("database error: OperationalError")

    runtime.forwarder.directory.begin = down  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable):
        runtime.invoke(ses_event("m1", ALIAS), emit=lambda _: None, context=context(30, time))
    assert begins["n"] == runtime.retry.max_attempts
    assert sender.sent == []


def test_handle_alone_tries_once_as_the_queue_worker_expects(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), Throttled(fail=1)
    with pytest.raises(SendRetryable):
        runtime_with(env, sender, time).handle(ses_event("m1", ALIAS))
    assert sender.calls == 1 and time.sleeps == []


def test_the_handler_hands_its_context_down(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    time, sender = FakeTime(), Throttled(fail=100)
    monkeypatch.setattr(lambda_handler, "_runtime", runtime_with(env, sender, time))
    monkeypatch.setattr(lambda_handler, "_print_line", lambda _line: None)
    with pytest.raises(SendRetryable):
        lambda_handler.handler(ses_event("m1", ALIAS), context(8, time))
    # 8 s left, a 5 s reserve: one retry after 0.1 s fits, the next (0.2 s) still does, ...
    assert 1 < sender.calls < RetryPolicy().max_attempts
    assert time.now <= 8 - 5
