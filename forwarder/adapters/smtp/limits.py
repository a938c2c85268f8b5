"""What one SMTP client may cost the listener: failed recipients and concurrent sessions.

Failed RCPTs (issue 12.13): without a limit a client could test ~2,600 guessed aliases a second on
one connection (550 for unknown, 250 for known). Each failed RCPT now

- counts against its session, its client IP (an IPv6 client's /64, :func:`client_key`) and its
  network (IPv4 /24, IPv6 /48, :func:`network_key`) in a sliding window (:class:`FailedRcpts`),
  and against a budget over all clients, past which every RCPT is answered slowly;
- is answered only after a delay that grows with the IP's misses (a tarpit: ``asyncio.sleep`` on
  the event loop, which keeps serving the other clients meanwhile);
- and the miss that reaches either cap is answered ``421`` and the connection is closed. While an IP
  is over its cap, every RCPT from it is answered ``421`` (temporary: a real server retries later).

Sessions (issue 12.14): :class:`SessionGate` counts open connections, in total and per client IP;
a connection over either cap is greeted ``421`` and closed, so a flood of idle or slow
connections cannot hold the listener's memory (each may buffer up to the size limit). Near the
total cap an IP that already holds sessions is refused, so the last slots stay for others; and
every session and DATA transfer has an absolute deadline (``session_seconds``, ``data_seconds``),
so slow clients cannot hold slots for ever.

All of it is plain state touched by the event loop's thread only; values come from
:class:`forwarder.settings.Settings` (docs/configuration.md).
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

#: Client addresses whose keys are remembered: every RCPT asks for both keys of its client, and
#: parsing the address each time cost ~20 us a message (issue 15.6).
KEYS_REMEMBERED = 4096


@lru_cache(maxsize=KEYS_REMEMBERED)
def client_key(ip: str) -> str:
    """What the per-IP caps count by: an IPv4 address, or an IPv6 address's /64 (one host commonly
    holds a whole /64, so counting single IPv6 addresses would be no cap at all)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@lru_cache(maxsize=KEYS_REMEMBERED)
def network_key(ip: str) -> str:
    """The network a per-network cap counts by: an IPv4 address's /24, an IPv6 address's /48."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if isinstance(address, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network((address, prefix), strict=False))


#: Keys (IPs, networks) each failed-RCPT window tracks at most; past that the least recently seen
#: are forgotten first.
MAX_TRACKED_IPS = 50_000


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    #: Failed RCPTs one session may have; the one that reaches it is answered 421 (0: no cap).
    failed_rcpt_per_session: int = 10
    #: Failed RCPTs one client IP may have within the window, over all its sessions (0: no cap).
    failed_rcpt_per_ip: int = 30
    failed_rcpt_window_seconds: int = 600
    #: ... per network (IPv4 /24, IPv6 /48) within the window (0: no cap) ...
    failed_rcpt_per_network: int = 100
    #: ... and over all clients: past it every RCPT waits ``tarpit_max_ms`` (0: no budget).
    failed_rcpt_global: int = 1000
    #: Delay before answering a failed RCPT: this much per miss of the IP in the window...
    tarpit_step_ms: int = 250
    #: ... but never more than this.
    tarpit_max_ms: int = 5000
    #: Open SMTP sessions in total and per client IP (0: no cap).
    max_sessions: int = 100
    max_sessions_per_ip: int = 10
    #: A DATA body over this many bytes goes to a file in the spool instead of staying in memory.
    spill_bytes: int = 1024 * 1024
    #: A session is closed (421) this long after it opened, busy or not; a DATA transfer this long
    #: after its 354. aiosmtpd's idle timeout restarts with every byte, so a client trickling a
    #: byte at a time would otherwise hold its slot for ever (0: no deadline).
    session_seconds: float = 600
    data_seconds: float = 300
    #: Past this share of ``max_sessions`` an IP already holding ``reserve_after`` sessions is
    #: refused, so the last slots stay for clients not yet connected.
    reserve_share: float = 0.8
    reserve_after: int = 2

    def tarpit_seconds(self, misses: int) -> float:
        return min(self.tarpit_step_ms * misses, self.tarpit_max_ms) / 1000.0


class _Window:
    """Miss times per key within the sliding window, at most ``keep`` per key; at ``MAX_TRACKED_IPS``
    keys the least recently seen is forgotten first (dicts keep insertion order, and a key seen
    again is moved to the end)."""

    def __init__(self, limits: SmtpLimits, keep: int, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.keep = max(keep, 1) + 1
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def recent(self, key: str) -> deque[float] | None:
        times = self._seen.get(key)
        if times is None:
            return None
        oldest = self._clock() - self.limits.failed_rcpt_window_seconds
        while times and times[0] <= oldest:
            times.popleft()
        if not times:
            del self._seen[key]
            return None
        return times

    def count(self, key: str) -> int:
        times = self.recent(key)
        return 0 if times is None else len(times)

    def add(self, key: str) -> int:
        times = self.recent(key)
        if times is None:
            if len(self._seen) >= MAX_TRACKED_IPS:
                del self._seen[next(iter(self._seen))]  # the least recently seen
            # never more than the cap (plus one) per key: that is all blocked() needs to know
            times = deque(maxlen=self.keep)
        else:
            del self._seen[key]  # re-inserted below: now the most recently seen
        self._seen[key] = times
        times.append(self._clock())
        return len(times)


class FailedRcpts:
    """Failed RCPTs within a sliding window of ``failed_rcpt_window_seconds``: per client IP (an
    IPv6 /64), per network (IPv4 /24, IPv6 /48: one operator's neighbouring addresses) and over
    all clients (past ``failed_rcpt_global``, every RCPT is answered after the longest tarpit
    delay, since a probe spread over many networks stays under every per-client cap)."""

    def __init__(self, limits: SmtpLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._ips = _Window(limits, limits.failed_rcpt_per_ip, clock)
        self._networks = _Window(limits, limits.failed_rcpt_per_network, clock)
        self._all: deque[float] = deque(maxlen=max(limits.failed_rcpt_global, 1) + 1)

    def count(self, ip: str) -> int:
        return self._ips.count(client_key(ip))

    def network_count(self, ip: str) -> int:
        return self._networks.count(network_key(ip))

    def global_count(self) -> int:
        oldest = self._clock() - self.limits.failed_rcpt_window_seconds
        while self._all and self._all[0] <= oldest:
            self._all.popleft()
        return len(self._all)

    def add(self, ip: str) -> int:
        """Record a miss; the IP's misses in the window, this one included."""
        self._networks.add(network_key(ip))
        self._all.append(self._clock())
        return self._ips.add(client_key(ip))

    def blocked(self, ip: str) -> bool:
        per_ip, per_network = self.limits.failed_rcpt_per_ip, self.limits.failed_rcpt_per_network
        return bool((per_ip and self.count(ip) >= per_ip) or (per_network and self.network_count(ip) >= per_network))

    def over_global(self) -> bool:
        budget = self.limits.failed_rcpt_global
        return bool(budget) and self.global_count() >= budget

    def delay(self, ip: str) -> float:
        """How long to wait before answering an RCPT from ``ip``."""
        if self.over_global():
            return self.limits.tarpit_max_ms / 1000.0
        return self.limits.tarpit_seconds(self.count(ip))


class SessionGate:
    """Open sessions, in total and per client IP."""

    def __init__(self, limits: SmtpLimits) -> None:
        self.limits = limits
        self.total = 0
        self._per_ip: dict[str, int] = {}

    def enter(self, ip: str) -> bool:
        """Count a new session in, or say no (and count nothing) when it is over a cap."""
        ip = client_key(ip)
        if self.limits.max_sessions and self.total >= self.limits.max_sessions:
            return False
        held = self._per_ip.get(ip, 0)
        if self.limits.max_sessions_per_ip and held >= self.limits.max_sessions_per_ip:
            return False
        if (
            self.limits.max_sessions
            and held >= self.limits.reserve_after
            and self.total >= self.limits.max_sessions * self.limits.reserve_share
        ):
            return False
        self.total += 1
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return True

    def leave(self, ip: str) -> None:
        ip = client_key(ip)
        self.total -= 1
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)

    def open_for(self, ip: str) -> int:
        return self._per_ip.get(client_key(ip), 0)
