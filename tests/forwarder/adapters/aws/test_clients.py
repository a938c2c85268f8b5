"""Lazy AWS clients: made on the first call, once, then the client itself answers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from forwarder.adapters.aws.clients import LazyClient, LazySession


class FakeClient:
    def __init__(self, service: str) -> None:
        self.service = service

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        return {"service": self.service, **kwargs}


def test_nothing_is_made_until_the_first_call_and_then_never_again() -> None:
    made: list[str] = []

    def make(service: str) -> FakeClient:
        made.append(service)
        return FakeClient(service)

    session = LazySession(make)
    s3 = session.client("s3")
    assert session.client("s3") is s3 and made == [] and not s3.made and session.made() == []
    assert s3.get_object(Key="k") == {"service": "s3", "Key": "k"}
    assert s3.get_object(Key="j")["Key"] == "j"
    assert session.client("ses").service == "ses"  # the lazy client's own name; nothing made
    assert made == ["s3"] and s3.made and session.made() == ["s3"]


def test_threads_asking_at_once_share_one_client() -> None:
    made: list[int] = []

    def make() -> FakeClient:
        made.append(1)
        time.sleep(0.05)  # long enough for every thread to ask before the first client exists
        return FakeClient("s3")

    lazy = LazyClient(make, "s3")
    clients: list[object] = []
    threads = [threading.Thread(target=lambda: clients.append(lazy.client())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len({id(c) for c in clients}) == 1


def test_an_error_making_the_client_leaves_it_unmade_for_the_next_call() -> None:
    attempts: list[int] = []

    def make() -> FakeClient:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no credentials yet")
        return FakeClient("s3")

    lazy = LazyClient(make, "s3")
    with pytest.raises(RuntimeError, match="no credentials yet"):
        lazy.get_object()
    assert not lazy.made
    assert lazy.get_object()["service"] == "s3" and len(attempts) == 2
