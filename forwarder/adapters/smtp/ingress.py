"""The SMTP listener of one-box mode (aiosmtpd): the local twin of the SES receipt rule.

- RCPT: only addresses on the service's domains and on users' verified domains (anything else is
  550: never an open relay), and only aliases that exist or that a domain's catch-all would create
  (550 5.1.1 otherwise); an expired alias whose owner chose reject is 550 5.1.1 too
  (forwarder/flows/expired_reject.py); 451 when the database cannot say. Failed RCPTs are limited per
  session and client IP, and sessions per IP and in total (forwarder/adapters/smtp/limits.py).
- SIZE/DATA: aiosmtpd advertises the size limit and answers 552 above it.
- DATA: the raw message and its envelope are spooled (see :mod:`forwarder.adapters.local.spool`) before the 250;
  451 when that fails, so the sending server keeps the message and retries. A local store is
  written on the event loop itself (two small files in the page cache take less time than handing
  them to a thread and back); a remote one (S3) on a thread, so that a slow put never holds up the
  other clients.

Forwarding happens after the 250, on the dispatcher's threads.

Speed (one event loop serves every client, so its cost per message bounds the box): the RCPT check
remembers for :data:`KNOWN_CACHE_SECONDS` the addresses it found (except aliases that may yet
expire with reject: those are asked about every time), and :class:`forwarder.adapters.smtp.server.FastSMTP` reads DATA
in blocks and parses plain addresses with one regular expression instead of aiosmtpd's
line-by-line loop and RFC 5322 parser, with the same replies and content.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from forwarder.adapters.local.spool import Envelope, Spool
from forwarder.adapters.smtp.limits import FailedRcpts, SessionGate, SmtpLimits
from forwarder.adapters.smtp.server import FastSMTP, peer_ip
from forwarder.adapters.smtp.tls import TlsReloader
from forwarder.adapters.sql.directory import AddressStatus
from forwarder.core.decide import Verdicts
from forwarder.errors import RetryableError
from forwarder.ops.metrics import SMTP_EVENT, Metrics

logger = logging.getLogger("othermail.smtp")

MAX_RECIPIENTS = 100
#: How long the RCPT check trusts an "exists" answer. Aliases are never deleted (see models.Alias),
#: so for them this could be forever; what a domain's catch-all accepts may change, and is itself
#: read through a cache of the same age (forwarder.adapters.sql.user_domains.UserDomains).
KNOWN_CACHE_SECONDS = 30.0
#: Addresses the RCPT check remembers at most; the memory starts over when it is full.
KNOWN_CACHE_SIZE = 100_000


#: (raw message, client address, HELO name, MAIL FROM) -> the message to spool.
#: (raw, client IP, HELO, MAIL FROM) -> the message to spool, or it and the verdicts to record with it.
Authenticate = Callable[[bytes, str, str, str], Awaitable[bytes | tuple[bytes, Verdicts]]]


#: (raw, verdicts, MAIL FROM, recipients) -> an SMTP refusal, or None to accept.
Screen = Callable[[bytes, Verdicts | None, str, tuple[str, ...]], str | None]


class IngressHandler:
    def __init__(
        self,
        domains: tuple[str, ...],
        spool: Spool,
        known: Callable[[str], bool | AddressStatus],
        dispatch: Callable[[str], None],
        accepts_domain: Callable[[str], bool] | None = None,
        *,
        limits: SmtpLimits | None = None,
        metrics: Metrics | None = None,
        authenticate: Authenticate | None = None,
        screen: Screen | None = None,
        screens: Callable[[str], bool] | None = None,
        backlog: Callable[[], int] | None = None,
        backlog_limit: int = 0,
    ) -> None:
        self.domains = frozenset(d.lower() for d in domains)
        #: Inbound authentication (forwarder.adapters.inbound_auth): given the message, the client's address,
        #: HELO and MAIL FROM, it returns the message to spool (forged trace fields removed, our
        #: Authentication-Results on top). Never raises; its DNS runs on its own threads.
        self.authenticate = authenticate
        #: After authentication, a refusal for a message nobody may send (mail to reverse addresses
        #: of two-way aliases that is not from their owner: forwarder/flows/reply.py); asked off the loop.
        self.screen = screen
        #: Which recipients the screen may refuse (reverse addresses: forwarder.flows.reply.looks_reverse);
        #: a message to any other recipient is accepted without asking it, so ordinary mail costs no
        #: trip to a thread and back. None: the screen is asked about every message.
        self.screens = screens
        self.limits = limits or SmtpLimits()
        self.metrics = metrics
        self.failed_rcpts = FailedRcpts(self.limits)
        self.sessions = SessionGate(self.limits)
        #: DATA bodies over ``spill_bytes`` are received into files here (FastSMTP._spill), and at
        #: most LARGE_AT_ONCE of them are read back and spooled at a time: memory stays bounded
        #: however many clients send large messages at once.
        self.spill_bytes = self.limits.spill_bytes
        self.spill_dir = spool.root / "incoming"
        self._large = asyncio.Semaphore(LARGE_AT_ONCE)
        #: Other domains mail is accepted for (users' own verified domains); asked off the loop.
        self.accepts_domain = accepts_domain
        self.spool = spool
        self.known = known
        self.dispatch = dispatch
        #: In-flow delay (as Postfix's ``in_flow_delay``): while more than ``backlog_limit`` accepted
        #: messages wait to be forwarded, DATA waits (up to :data:`FLOW_DELAY_SECONDS`, then it is
        #: accepted anyway) before anything is spooled, so senders slow down to the pace the box
        #: forwards at instead of filling the spool; no message is refused for it.
        self.backlog = backlog
        self.backlog_limit = backlog_limit
        self.flow_delay_seconds = FLOW_DELAY_SECONDS
        # address -> when it was found to exist. Only "exists" answers are kept: an unknown address
        # may be created any second. Touched by the event loop's thread only.
        self._known_cache: dict[str, float] = {}
        self._clock = time.monotonic

    def forget_partial_bodies(self) -> int:
        """Delete bodies a previous process was receiving when it stopped (never answered 250)."""
        removed = 0
        for stale in self.spill_dir.glob("data-*.eml") if self.spill_dir.is_dir() else ():
            stale.unlink(missing_ok=True)
            removed += 1
        return removed

    def count(self, event: str) -> None:
        if self.metrics is not None:
            self.metrics.count(SMTP_EVENT + event)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        ip = peer_ip(session)
        if self.failed_rcpts.blocked(ip):
            self.count("rcpt-throttled")
            session.close_after_reply = True
            return "421 4.7.0 Too many unknown recipients from your address, try again later"
        reply, event = await self._check_rcpt(envelope, address)
        if event is None:
            if self.failed_rcpts.over_global():
                # a probe spread over many networks: every answer is slow, so a quick 250 tells nothing
                self.count("rcpt-tarpit-global")
                await asyncio.sleep(self.failed_rcpts.delay(ip))
            return reply
        return await self._refused(session, ip, reply, event)

    async def _refused(self, session: Any, ip: str, reply: str, event: str) -> str:
        """A failed RCPT: counted, answered after the tarpit's delay, or 421 at a cap."""
        self.count(event)
        misses = getattr(session, "failed_rcpts", 0) + 1
        session.failed_rcpts = misses
        ip_misses = self.failed_rcpts.add(ip)
        per_session, per_ip = self.limits.failed_rcpt_per_session, self.limits.failed_rcpt_per_ip
        per_network = self.limits.failed_rcpt_per_network
        if (
            (per_session and misses >= per_session)
            or (per_ip and ip_misses >= per_ip)
            or (per_network and self.failed_rcpts.network_count(ip) >= per_network)
        ):
            self.count("rcpt-disconnected")
            logger.warning(
                "RCPT from %s: %d failed recipients (%d from the address), disconnected", ip, misses, ip_misses
            )
            session.close_after_reply = True
            return "421 4.7.0 Too many unknown recipients, closing connection"
        if self.failed_rcpts.over_global():
            self.count("rcpt-tarpit-global")
        delay = self.failed_rcpts.delay(ip)
        if delay:
            await asyncio.sleep(delay)
        return reply

    async def _check_rcpt(self, envelope: Any, address: str) -> tuple[str, str | None]:
        """The reply to an RCPT, and the event to count when it failed."""
        local, at, domain = address.rpartition("@")
        if not at or not local or (domain.lower() not in self.domains and self.accepts_domain is None):
            return RELAY_DENIED, "rcpt-relay-denied"
        if domain.lower() not in self.domains:  # a user's own domain?
            try:
                accepted = await asyncio.get_running_loop().run_in_executor(None, self.accepts_domain, domain)  # type: ignore[arg-type]  # not None: checked above
            except Exception as exc:
                logger.warning("RCPT %s: domain lookup failed: %s", address, exc)
                return "451 4.3.0 Temporary lookup failure, please try again later", None
            if not accepted:
                return RELAY_DENIED, "rcpt-relay-denied"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients", None
        normalized = address.strip().lower()
        now = self._clock()
        remembered = self._known_cache.get(normalized)
        if remembered is None or now - remembered >= KNOWN_CACHE_SECONDS:
            try:
                found = await asyncio.get_running_loop().run_in_executor(None, self.known, address)
            except Exception as exc:
                logger.warning("RCPT %s: lookup failed: %s", address, exc)
                return "451 4.3.0 Temporary lookup failure, please try again later", None
            if found is AddressStatus.REJECTS_EXPIRED:  # never cached: its owner may extend it
                return f"550 5.1.1 <{address}>: this address has expired", "rcpt-expired-reject"
            if not found or found is AddressStatus.UNKNOWN:
                return f"550 5.1.1 <{address}>: no such address here", "rcpt-unknown"
            if found is not AddressStatus.ACCEPTS_UNCACHED:  # it may expire with reject any message now
                if len(self._known_cache) >= KNOWN_CACHE_SIZE:
                    self._known_cache.clear()
                self._known_cache[normalized] = now
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK", None

    async def _in_flow_delay(self) -> None:
        if self.backlog is None or self.backlog() <= self.backlog_limit:
            return
        self.count("data-flow-delayed")
        deadline = self._clock() + self.flow_delay_seconds
        while self.backlog() > self.backlog_limit and self._clock() < deadline:
            await asyncio.sleep(FLOW_DELAY_STEP)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._in_flow_delay()
        spilled: Path | None = getattr(envelope, "spill_path", None)
        if spilled is not None:
            self.count("data-spilled")
            try:
                async with self._large:
                    try:
                        raw = await asyncio.get_running_loop().run_in_executor(None, spilled.read_bytes)
                    except OSError as exc:
                        logger.error("DATA from %s: could not read the received body back: %s", peer_ip(session), exc)
                        return "451 4.3.0 Temporary local problem, please try again later"
                    return await self._accept(raw, session, envelope, off_loop=True)
            finally:
                spilled.unlink(missing_ok=True)
        raw = envelope.original_content or envelope.content or b""
        return await self._accept(raw, session, envelope, off_loop=not self.spool.writes_locally)

    async def _accept(self, raw: bytes | str, session: Any, envelope: Any, off_loop: bool) -> str:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = peer_ip(session)
        verdicts: Verdicts | None = None
        if self.authenticate is not None:
            authenticated = await self.authenticate(raw, peer, session.host_name or "", envelope.mail_from or "")
            raw, verdicts = authenticated if isinstance(authenticated, tuple) else (authenticated, None)
        if self.screen is not None and (self.screens is None or all(map(self.screens, envelope.rcpt_tos))):
            try:
                refusal = await asyncio.get_running_loop().run_in_executor(
                    None, self.screen, raw, verdicts, envelope.mail_from or "", tuple(envelope.rcpt_tos)
                )
            except Exception as exc:
                logger.warning("DATA from %s: the reply check failed: %s", peer, exc)
                return "451 4.3.0 Temporary local problem, please try again later"
            if refusal is not None:
                self.count("data-reply-refused")
                return refusal
        try:
            if not off_loop:
                accepted: Envelope = self.spool.accept(
                    raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), peer, verdicts
                )
            else:
                accepted = await asyncio.get_running_loop().run_in_executor(
                    None, self.spool.accept, raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), peer, verdicts
                )
        except (RetryableError, OSError) as exc:
            logger.error("DATA from %s: could not spool: %s", peer, exc)
            return "451 4.3.0 Temporary local problem, please try again later"
        self.dispatch(accepted.spool_id)
        return f"250 2.0.0 OK: queued as {accepted.spool_id}"


RELAY_DENIED = "550 5.7.1 Relaying denied: this server only receives mail for its own domains"
#: Spilled (large) DATA bodies read back and spooled at the same time, at most.
LARGE_AT_ONCE = 2
#: The longest a DATA waits for the forwarding backlog to shrink (Postfix's in_flow_delay default).
FLOW_DELAY_SECONDS = 1.0
#: How often a waiting DATA looks at the backlog again.
FLOW_DELAY_STEP = 0.005


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Controller(Controller):
    tls_source: TlsReloader | None = None

    def factory(self) -> SMTP:
        if self.tls_source is None:
            return FastSMTP(self.handler, **self.SMTP_kwargs)
        # a new connection: the certificate as it is on disk now
        server = FastSMTP(self.handler, tls_context=self.tls_source.context(), **self.SMTP_kwargs)
        server.tls_source = self.tls_source
        return server


class SmtpListener:
    """An aiosmtpd controller on its own thread; ``port=0`` picks a free one."""

    def __init__(
        self,
        handler: IngressHandler,
        host: str,
        port: int,
        max_bytes: int,
        hostname: str | None = None,
        tls: TlsReloader | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._controller = _Controller(
            handler,
            hostname=host,
            port=self.port,
            data_size_limit=max_bytes,
            server_hostname=hostname or "localhost",
            ready_timeout=10.0,
        )
        #: STARTTLS, offered in EHLO when set (never required: a public MX must take plain text too)
        self._controller.tls_source = tls

    def start(self) -> None:
        forget = getattr(self._controller.handler, "forget_partial_bodies", None)
        if forget is not None:
            forget()
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
