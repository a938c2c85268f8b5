"""forwarder/adapters/inbound_auth/resolver.py against a small name server on loopback that counts the
queries it gets and can drop datagrams, as a busy or lossy network does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rrset
import pytest

from forwarder.adapters.inbound_auth.resolver import Resolver


class CountingServer:
    """Answers TXT for ``spf.example`` and NXDOMAIN for anything else; drops the first
    ``drop`` datagrams of every name."""

    def __init__(self, drop: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.drop = drop
        self.seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            self.seen[name] = self.seen.get(name, 0) + 1
            if self.seen[name] <= self.drop:
                continue
            response = dns.message.make_response(query)
            if name == "spf.example.":
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "TXT", '"v=spf1 -all"'))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(
                    dns.rrset.from_text("example.", 300, "IN", "SOA", "ns.example. host.example. 1 3600 600 86400 300")
                )
            self.sock.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    made = CountingServer()
    yield made
    made.stop()


def test_answers_and_nxdomain_are_cached_across_messages(server: CountingServer) -> None:
    resolver = Resolver.for_nameserver(f"127.0.0.1:{server.port}")
    for _ in range(5):  # five messages from the same domain
        lookup = resolver.lookup()
        assert lookup.txt("spf.example") == [b"v=spf1 -all"]
        assert lookup.txt("_dmarc.nowhere.example") == []
    assert server.seen == {"spf.example.": 1, "_dmarc.nowhere.example.": 1}


def test_a_lost_datagram_is_sent_again_within_the_querys_share() -> None:
    """One lost UDP datagram must not turn the lookup into temperror: the attempt is repeated
    well before the query's share of the budget (0.8 s) runs out."""
    server = CountingServer(drop=1)
    try:
        resolver = Resolver.for_nameserver(f"127.0.0.1:{server.port}")
        assert resolver.lookup().txt("spf.example") == [b"v=spf1 -all"]
        assert server.seen == {"spf.example.": 2}
    finally:
        server.stop()


def test_a_cached_answer_is_read_without_a_resolution(server: CountingServer) -> None:
    """dnspython's resolve() builds a resolution (and, for NXDOMAIN, an exception with its text)
    even to answer from its cache; a lookup reads the cache first, as resolve() itself would, and
    asks resolve() only for what is not there (issue 15.6: two to three lookups per message on
    the one box's listener)."""
    resolver = Resolver.for_nameserver(f"127.0.0.1:{server.port}")
    assert resolver.resolver is not None
    asked: list[str] = []
    real = resolver.resolver.resolve

    def counting(qname, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(str(qname))
        return real(qname, *args, **kwargs)

    resolver.resolver.resolve = counting  # type: ignore[method-assign]
    for _ in range(3):
        lookup = resolver.lookup()
        assert lookup.txt("spf.example") == [b"v=spf1 -all"]
        assert lookup.txt("_dmarc.nowhere.example") == []
        assert lookup.query("spf.example", "A") == []  # NXDOMAIN is for every type of the name
    assert asked == ["spf.example.", "_dmarc.nowhere.example.", "spf.example."]
    resolver.resolver.cache.flush()  # as when the answers' TTL runs out
    assert resolver.lookup().txt("spf.example") == [b"v=spf1 -all"]
    assert asked[-1] == "spf.example." and len(asked) == 4
    assert server.seen["spf.example."] == 3  # TXT twice (flushed between), A once
