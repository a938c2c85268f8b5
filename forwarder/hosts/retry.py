"""Retrying what failed for now: backoff delays, and a retry loop bounded by a time budget.

Two delays, for two kinds of caller (after the AWS Architecture Blog's "Exponential Backoff And
Jitter"):

- :func:`backoff`, "equal jitter": half the exponential ceiling is fixed, half random. The one-box
  dispatcher retries a spooled message for as long as it takes; the fixed half keeps a relay that is
  down from being called again at once.
- :func:`full_jitter`: anywhere between 0 and the ceiling. Fewest calls in all when many workers
  failed together (Lambda invocations throttled by SES at the same moment), which is the case
  :class:`RetryPolicy` is for.

:meth:`RetryPolicy.call` runs one idempotent unit of work (the Lambda's: read the raw message, then
``Forwarder.process``) and retries it on :class:`RetryableError` while the time budget allows the
sleep, one more attempt as long as the longest one so far, and a reserve; then it raises the last
error, so that Lambda (or SQS) retries the event and finally dead-letters it. A missing raw message
(:class:`MessageNotFound`) is not retried here: SES writes the object before it invokes the Lambda,
so seconds of waiting cannot make it appear, and Lambda's own retries still happen.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from forwarder.errors import MessageNotFound, RetryableError

logger = logging.getLogger("othermail.retry")

T = TypeVar("T")

#: Seconds of budget when no Lambda context says how much is left (a direct call, ``othermail
#: replay``): enough for several backoffs, short enough that a stuck event does not hold a terminal.
DEFAULT_BUDGET_SECONDS = 30.0


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): equal jitter over an exponential ceiling."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def full_jitter(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): uniform between 0 and the exponential ceiling."""
    return rng() * min(cap, base * 2 ** min(attempt - 1, 60))


@dataclass(frozen=True)
class RetryPolicy:
    """How a unit of work is retried within a deadline (seconds on ``clock``).

    ``reserve`` is left after the last attempt for what follows it (the metrics line, Lambda
    returning the error); ``max_attempts`` bounds the attempts even with time to spare.
    """

    base: float = 0.1
    cap: float = 5.0
    reserve: float = 5.0
    max_attempts: int = 8
    default_budget: float = DEFAULT_BUDGET_SECONDS
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = random.random

    def deadline(self, context: Any = None) -> float:
        """When the budget ends: what the Lambda ``context`` has left, else ``default_budget``."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        budget = remaining() / 1000 if callable(remaining) else self.default_budget
        return self.clock() + budget

    def call(self, work: Callable[[], T], deadline: float, what: str = "") -> T:
        attempt = 0
        longest = 0.0
        while True:
            attempt += 1
            started = self.clock()
            try:
                return work()
            except MessageNotFound:
                raise
            except RetryableError as exc:
                now = self.clock()
                longest = max(longest, now - started)
                delay = full_jitter(attempt, self.base, self.cap, self.rng)
                left = deadline - now
                if attempt >= self.max_attempts or left - delay < longest + self.reserve:
                    logger.warning(
                        json.dumps(
                            {
                                "event": "retry-budget-spent",
                                "what": what,
                                "attempts": attempt,
                                "left_s": round(left, 3),
                                "error": f"{exc.__class__.__name__}: {exc}",
                            }
                        )
                    )
                    raise
                logger.info(
                    json.dumps(
                        {
                            "event": "retry",
                            "what": what,
                            "attempt": attempt + 1,
                            "delay_s": round(delay, 3),
                            "left_s": round(left, 3),
                            "error": f"{exc.__class__.__name__}: {exc}",
                        }
                    )
                )
                self.sleep(delay)
