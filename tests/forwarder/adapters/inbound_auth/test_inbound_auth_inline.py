"""Authenticator.authenticate checks a message on the listener's own thread when every DNS answer
it needs is cached (issue 15.6: the trip to a thread and back cost the listener more than the
checks), and on its threads otherwise, from the start: a name missing from the cache never turns
into a temperror verdict, and large messages never hold up the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from forwarder.adapters.inbound_auth import INLINE_BYTES, Authenticator, Client, Resolver
from forwarder.core import Verdicts
from tests.forwarder.adapters.inbound_auth.test_inbound_auth_resolver import CountingServer

AUTHSERV = "othermail.example"
IP = "192.0.2.1"  # not in spf.example's "v=spf1 -all": SPF fails


def message(body: bytes = b"Hello.\r\n") -> bytes:
    return b"From: someone@spf.example\r\nTo: shop@othermail.example\r\nSubject: hi\r\n\r\n" + body


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    made = CountingServer()
    yield made
    made.stop()


def authenticate(auth: Authenticator, raw: bytes) -> tuple[bytes, Verdicts]:
    return asyncio.run(auth.authenticate(raw, IP, "mx.spf.example", "bounce@spf.example"))


def test_cached_answers_are_checked_without_a_thread(server: CountingServer) -> None:
    auth = Authenticator("own", AUTHSERV, Resolver.for_nameserver(f"127.0.0.1:{server.port}"))
    pool = CountingPool()
    auth._pool = pool
    try:
        first = authenticate(auth, message())  # nothing cached yet: on the thread, asking the server
        assert pool.submitted == 1
        assert first[1].spf == "FAIL"  # the real answer, not the temperror of the cache-only pass
        second = authenticate(auth, message())
        assert pool.submitted == 1  # all cached now: checked on the caller's thread
        assert second == first
        expected = Authenticator("own", AUTHSERV, Resolver.for_nameserver(f"127.0.0.1:{server.port}"))
        assert second == expected.process_with_verdicts(message(), Client(IP, "mx.spf.example", "bounce@spf.example"))
    finally:
        auth.close()


def test_a_large_message_is_checked_on_a_thread_even_when_cached(server: CountingServer) -> None:
    auth = Authenticator("own", AUTHSERV, Resolver.for_nameserver(f"127.0.0.1:{server.port}"))
    pool = CountingPool()
    auth._pool = pool
    try:
        authenticate(auth, message())
        large = message(b"x" * 76 + b"\r\n") * (INLINE_BYTES // 78 + 1)
        assert len(large) > INLINE_BYTES
        _, verdicts = authenticate(auth, large)
        assert pool.submitted == 2 and verdicts.spf == "FAIL"
    finally:
        auth.close()


def test_without_any_name_server_the_verdict_is_still_no_verdict() -> None:
    auth = Authenticator("own", AUTHSERV, Resolver(None))
    pool = CountingPool()
    auth._pool = pool
    try:
        stamped, verdicts = authenticate(auth, message())
        assert (verdicts.spf, verdicts.dmarc) == ("PROCESSING_FAILED", "PROCESSING_FAILED")  # temperror
        assert (stamped, verdicts) == auth.process_with_verdicts(
            message(), Client(IP, "mx.spf.example", "bounce@spf.example")
        )
        assert pool.submitted == 0  # nothing to wait for: no name server to ask
    finally:
        auth.close()
