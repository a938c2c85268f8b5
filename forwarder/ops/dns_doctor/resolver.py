"""Asking DNS: a resolver for a given name server (or the system's), and :class:`Asker`, which turns
what it answers, or why it could not, into an :class:`Answer`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver


def make_resolver(nameserver: str | None = None, timeout: float = 3.0) -> dns.resolver.Resolver:
    """A resolver asking ``HOST[:PORT]`` (``[v6]:PORT``) or, without one, the system's resolvers.

    Raises ValueError for an unusable name server and for a system without resolver configuration.
    """
    if nameserver:
        host, port = parse_nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError(f"this system has no name server configured ({exc}); use --nameserver") from None
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or ``V6`` -> (address, port); names are looked up."""
    import ipaddress
    import socket

    text = text.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    else:
        host = text
    if not host:
        raise ValueError(f"{text!r}: no host")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"the name server {host!r} cannot be found: {exc}") from None
    return str(infos[0][4][0]), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def describe_servers(resolver: dns.resolver.Resolver) -> str:
    servers = []
    for ns in resolver.nameservers:
        address = getattr(ns, "address", None)
        if address is None:
            address = str(ns)
            port = resolver.nameserver_ports.get(address, resolver.port)
        else:
            port = getattr(ns, "port", resolver.port)
        if isinstance(port, int):
            servers.append(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
        else:  # DNS over HTTPS or another kind: its own text says it
            servers.append(str(ns))
    return ", ".join(servers) or "no name server"


@dataclass(frozen=True)
class Answer:
    rdatas: tuple[Any, ...] = ()
    nxdomain: bool = False
    error: str = ""  # why the name server gave no usable answer
    fatal: bool = False  # no answer at all (timeout): asking again cannot help in this run


class Asker:
    """Asks one resolver; after a timeout, stops asking and repeats that error."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.server = describe_servers(resolver)
        self.fatal: Answer | None = None
        self.hints: dict[str, None] = {}  # explanations of the errors met, once each

    def __call__(self, name: str, rdtype: str) -> Answer:
        if self.fatal is not None:
            return self.fatal
        what = f"{name} {rdtype}"
        try:
            answer = self.resolver.resolve(dns.name.from_text(name), rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except dns.resolver.NoAnswer:
            return Answer()
        except dns.resolver.LifetimeTimeout:
            servers = self.server
            noun = "name servers" if "," in servers else "name server"
            self.fatal = Answer(
                error=f"the {noun} {servers} did not answer within {self.resolver.lifetime:g} s", fatal=True
            )
            return self.fatal
        except dns.resolver.NoNameservers as exc:
            message, hints = _no_nameservers(exc, self.server)
            self.hints.update(dict.fromkeys(hints))
            return Answer(error=message)
        except dns.resolver.YXDOMAIN:
            return Answer(error=f"the name {name} is too long after a DNAME substitution")
        except dns.exception.DNSException as exc:
            return Answer(error=f"asking {self.server} for {what} failed: {exc}")
        except OSError as exc:  # e.g. network unreachable, raised outside dnspython's retry loop
            self.fatal = Answer(error=f"the name server {self.server} cannot be reached: {exc}", fatal=True)
            return self.fatal
        rrset = answer.rrset
        wanted = dns.rdatatype.from_text(rdtype)
        if rrset is None or rrset.rdtype != wanted:
            return Answer()
        return Answer(rdatas=tuple(rrset))


HINTS = {
    "SERVFAIL": "SERVFAIL: the name server could not get an answer (a zone that failed to load, a DNSSEC "
    "failure or unreachable authoritative servers); try again later or ask another name server "
    "with --nameserver",
    "REFUSED": "REFUSED: the name server does not serve this zone and does not resolve names for you; ask "
    "one that does with --nameserver",
}


def _no_nameservers(exc: dns.resolver.NoNameservers, server: str) -> tuple[str, list[str]]:
    """The message for a query no server answered usefully, and the hints that explain it."""
    reasons, hints = [], []
    for _nameserver, _tcp, _port, detail, _response in exc.kwargs.get("errors") or []:
        text = str(detail)
        if text == "REFUSED":
            reasons.append(f"the name server {server} refused to answer (REFUSED)")
        elif isinstance(detail, dns.exception.Timeout):
            reasons.append(f"the name server {server} did not answer in time")
        elif isinstance(detail, OSError):
            reasons.append(f"the name server {server} cannot be reached: {detail.strerror or detail}")
        else:
            reasons.append(f"the name server {server} answered {text}")
        if text in HINTS:
            hints.append(HINTS[text])
    return "; ".join(dict.fromkeys(reasons)) or f"no name server among {server} answered", hints


def txt(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", errors="replace")
