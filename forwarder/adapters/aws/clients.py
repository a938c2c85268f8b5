"""boto3 clients made on their first call, then kept for the life of the process.

Making a client is the costly part of boto3 after its import: botocore loads and parses the
service's model (S3's is the largest, about 100 ms of a Lambda cold start on this machine).
The composition root (forwarder/runtime.py) hands adapters a :class:`LazyClient` per service, made
once per runtime, which the Lambda keeps for the life of its container. So an event that never
reads S3 or never bounces (an SES notification, an SNS subscription confirmation, a forward that
bounces nothing) never pays for those clients, or for importing boto3 at all, and warm invocations
reuse the clients the first one made (tests/forwarder/hosts/test_lambda_imports.py counts them).

The runtime makes them with botocore alone (:class:`BotocoreClients`): boto3's ``Session.client``
adds nothing the adapters call, only the import of boto3 and s3transfer on a cold start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyClient:
    """Stands for the client ``make()`` returns; the first attribute asked of it makes that client
    (once, even when threads ask at the same time), every later one is the client's own."""

    def __init__(self, make: Callable[[], Any], service: str = "") -> None:
        self._make = make
        self._lock = threading.Lock()
        self._client: Any = None
        self.service = service

    @property
    def made(self) -> bool:
        """Whether the client has been made."""
        return self._client is not None

    def client(self) -> Any:
        """The client, made now if it was not yet."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        # only for names this class lacks: the client's methods, ``meta``, ``exceptions``
        if name.startswith("__") or name in ("_make", "_lock", "_client"):
            raise AttributeError(name)  # copy/pickle probing, or an instance not yet initialised
        return getattr(self.client(), name)

    def __repr__(self) -> str:
        return f"<LazyClient {self.service or '?'}{' (made)' if self.made else ''}>"


class LazySession:
    """What the adapters ask of a boto3 session (``client(name)``), answered with lazy clients:
    one per service, made by ``make(name)`` when first called."""

    def __init__(self, make: Callable[[str], Any]) -> None:
        self._make = make
        self._clients: dict[str, LazyClient] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> LazyClient:
        with self._lock:
            lazy = self._clients.get(service)
            if lazy is None:
                lazy = self._clients[service] = LazyClient(lambda: self._make(service), service)
            return lazy

    def made(self) -> list[str]:
        """The services whose clients have been made, in the order they were first asked for."""
        return [name for name, lazy in self._clients.items() if lazy.made]


class BotocoreClients:
    """``make(service)`` for :class:`LazySession`: clients from one botocore session (made with the
    first client, then shared, so botocore loads its endpoint and partition data once), for
    ``region`` (empty: botocore's own chain, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``)."""

    def __init__(self, region: str = "") -> None:
        self.region = region
        self._session: Any = None
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        with self._lock:
            if self._session is None:
                import botocore.session

                self._session = botocore.session.get_session()
            session = self._session
        return session.create_client(service, region_name=self.region or None)
