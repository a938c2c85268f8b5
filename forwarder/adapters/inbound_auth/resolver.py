"""DNS for inbound authentication: one resolver, and a time budget per message.

Every lookup of SPF, DKIM and DMARC for one message goes through one :class:`Lookup`, which
gives each query only what is left of the message's budget (:data:`BUDGET_SECONDS` in all). A
lookup that cannot be answered in time, a name server that does not answer or answers SERVFAIL
or REFUSED, and a system without any resolver configured all raise :class:`DnsUnavailable`:
the checks turn that into ``temperror``, which the decision reads as no verdict. NXDOMAIN and an
empty answer are answers (no record).

One query gets at most :data:`QUERY_SHARE` of the budget, so that a name server a sender controls
(and makes slow on purpose) cannot spend the whole budget on one name; the checks also ask for
the names a sender cannot control first (see ``forwarder.adapters.inbound_auth.Authenticator.results``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from forwarder.errors import DnsUnavailable

#: Seconds of DNS one message may use across SPF, DKIM and DMARC (issue 12: "about 2 s").
BUDGET_SECONDS = 2.0
#: The largest part of the budget one query may take.
QUERY_SHARE = 0.4
#: How long one UDP attempt waits before it is sent again, within the query's share: a lost
#: datagram costs this, not the whole share.
ATTEMPT_SECONDS = 0.25
#: Answers kept (by their TTL, NXDOMAIN included): mail comes from the same few domains again
#: and again, and every message would otherwise ask for the same SPF and DMARC records.
CACHE_ENTRIES = 10_000


class Lookup:
    """The DNS of one message: every query shares the deadline."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver | None,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        per_query: float | None = None,
    ) -> None:
        self._resolver = resolver
        self.deadline = deadline
        self._clock = clock
        self.per_query = per_query

    def remaining(self) -> float:
        return max(0.0, self.deadline - self._clock())

    def query(self, name: str, rdtype: str) -> list[object]:
        """The records of ``rdtype`` at ``name`` ([] for none); raises :class:`DnsUnavailable`."""
        if self._resolver is None:
            raise DnsUnavailable("no name server is configured")
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return []  # not a usable name (empty or over-long label, bad IDNA): nothing can be there
        left = self.remaining()
        if self.per_query is not None:
            left = min(left, self.per_query)
        if left <= 0.0:
            raise DnsUnavailable("the DNS time budget of this message is spent")
        cached = _from_cache(self._resolver, qname, rdtype)
        if cached is not None:
            return cached
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False, lifetime=left, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            raise DnsUnavailable(f"{name} {rdtype}: timed out") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsUnavailable(f"{name} {rdtype}: no name server answered") from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsUnavailable(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record at ``name``, its strings joined."""
        return [b"".join(r.strings) for r in self.query(name, "TXT")]  # type: ignore[attr-defined]  # a TXT rdata; dnspython types it as Rdata


def _from_cache(resolver: dns.resolver.Resolver, qname: dns.name.Name, rdtype: str) -> list[object] | None:
    """What ``resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)`` would answer
    from its cache, read as it reads it (the records, an empty answer, a cached NXDOMAIN of the
    name); None when it would ask a name server. resolve() builds a resolution, and for NXDOMAIN an
    exception with its text, even for an answer it finds there: most of a message's DNS cost on
    the one box, where mail comes from the same domains again and again."""
    cache = getattr(resolver, "cache", None)  # a stand-in resolver (tests) may have none
    if cache is None:
        return None
    kind = dns.rdatatype.RdataType.make(rdtype)
    answer = cache.get((qname, kind, dns.rdataclass.IN))
    if answer is not None:
        return list(answer.rrset) if answer.rrset is not None else []
    missing = cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
    if missing is not None and missing.response.rcode() == dns.rcode.NXDOMAIN:
        return []
    return None


class Resolver:
    """A dnspython resolver (or none: every lookup is then unavailable) and the per-message budget."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver | None,
        budget: float = BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.budget = budget
        self._clock = clock

    @classmethod
    def for_nameserver(cls, nameserver: str = "", budget: float = BUDGET_SECONDS) -> Resolver:
        """Asking ``HOST[:PORT]``, or the system's name servers; ValueError for an unusable one.

        A system without resolver configuration gets a resolver that answers nothing (every check
        a temperror), so that the one box still runs with no network.
        """
        from forwarder.ops.dns_doctor import make_resolver

        try:
            resolver = make_resolver(nameserver or None, timeout=budget)
        except ValueError:
            if nameserver:
                raise
            resolver = None
        if resolver is not None:
            resolver.timeout = min(ATTEMPT_SECONDS, budget)
            resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
        return cls(resolver, budget)

    def lookup(self) -> Lookup:
        return Lookup(self.resolver, self._clock() + self.budget, self._clock, self.budget * QUERY_SHARE)
