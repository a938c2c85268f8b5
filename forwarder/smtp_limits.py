"""What one SMTP client may cost the listener: failed recipients and concurrent sessions.

Failed RCPTs (issue 12.13): without a limit a client could test ~2,600 guessed aliases a second on
one connection (550 for unknown, 250 for known). Each failed RCPT now

- counts against its session and against its client IP (an IPv6 client's /64,
  :func:`client_key`) in a sliding window (:class:`FailedRcpts`);
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
:class:`forwarder.settings.Settings` (README.md, "Configuration").
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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


#: IPs the failed-RCPT window tracks at most; past that the oldest entries are forgotten first.
MAX_TRACKED_IPS = 50_000


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    #: Failed RCPTs one session may have; the one that reaches it is answered 421 (0: no cap).
    failed_rcpt_per_session: int = 10
    #: Failed RCPTs one client IP may have within the window, over all its sessions (0: no cap).
    failed_rcpt_per_ip: int = 30
    failed_rcpt_window_seconds: int = 600
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


class FailedRcpts:
    """Failed RCPTs per client IP within a sliding window of ``failed_rcpt_window_seconds``."""

    def __init__(self, limits: SmtpLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, ip: str) -> deque[float] | None:
        times = self._seen.get(ip)
        if times is None:
            return None
        oldest = self._clock() - self.limits.failed_rcpt_window_seconds
        while times and times[0] <= oldest:
            times.popleft()
        if not times:
            del self._seen[ip]
            return None
        return times

    def count(self, ip: str) -> int:
        times = self._recent(client_key(ip))
        return 0 if times is None else len(times)

    def add(self, ip: str) -> int:
        """Record a miss; the IP's misses in the window, this one included."""
        ip = client_key(ip)
        times = self._recent(ip)
        if times is None:
            if len(self._seen) >= MAX_TRACKED_IPS:
                del self._seen[next(iter(self._seen))]  # dicts keep insertion order: the oldest IP
            # never more than the cap (plus one) per IP: that is all blocked() needs to know
            times = self._seen[ip] = deque(maxlen=max(self.limits.failed_rcpt_per_ip, 1) + 1)
        times.append(self._clock())
        return len(times)

    def blocked(self, ip: str) -> bool:
        cap = self.limits.failed_rcpt_per_ip
        return bool(cap) and self.count(ip) >= cap


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
        if (self.limits.max_sessions and held >= self.limits.reserve_after
                and self.total >= self.limits.max_sessions * self.limits.reserve_share):
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
