"""The SMTP listener of one-box mode (aiosmtpd): the local twin of the SES receipt rule.

- RCPT: only addresses on the service's domains and on users' verified domains (anything else is
  550: never an open relay), and only aliases that exist or that a domain's catch-all would create
  (550 5.1.1 otherwise); an expired alias whose owner chose reject is 550 5.1.1 too
  (forwarder/expired_reject.py); 451 when the database cannot say. Failed RCPTs are limited per
  session and client IP, and sessions per IP and in total (forwarder/smtp_limits.py).
- SIZE/DATA: aiosmtpd advertises the size limit and answers 552 above it.
- DATA: the raw message and its envelope are spooled (see :mod:`forwarder.spool`) before the 250;
  451 when that fails, so the sending server keeps the message and retries. A local store is
  written on the event loop itself (two small files in the page cache take less time than handing
  them to a thread and back); a remote one (S3) on a thread, so that a slow put never holds up the
  other clients.

Forwarding happens after the 250, on the dispatcher's threads.

Speed (one event loop serves every client, so its cost per message bounds the box): the RCPT check
remembers for :data:`KNOWN_CACHE_SECONDS` the addresses it found (except aliases that may yet
expire with reject: those are asked about every time), and :class:`FastSMTP` reads DATA
in blocks and parses plain addresses with one regular expression instead of aiosmtpd's
line-by-line loop and RFC 5322 parser, with the same replies and content.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, syntax

from forwarder.core.decide import Verdicts
from forwarder.directory import AddressStatus
from forwarder.errors import RetryableError
from forwarder.metrics import SMTP_EVENT, Metrics
from forwarder.smtp_limits import FailedRcpts, SessionGate, SmtpLimits
from forwarder.smtp_tls import TlsReloader
from forwarder.spool import Envelope, Spool

logger = logging.getLogger("othermail.smtp")

MAX_RECIPIENTS = 100
#: How long the RCPT check trusts an "exists" answer. Aliases are never deleted (see models.Alias),
#: so for them this could be forever; what a domain's catch-all accepts may change, and is itself
#: read through a cache of the same age (forwarder.user_domains.UserDomains).
KNOWN_CACHE_SECONDS = 30.0
#: Addresses the RCPT check remembers at most; the memory starts over when it is full.
KNOWN_CACHE_SIZE = 100_000


#: (raw message, client address, HELO name, MAIL FROM) -> the message to spool.
#: (raw, client IP, HELO, MAIL FROM) -> the message to spool, or it and the verdicts to record with it.
Authenticate = Callable[[bytes, str, str, str], Awaitable[bytes | tuple[bytes, Verdicts]]]


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
    ) -> None:
        self.domains = frozenset(d.lower() for d in domains)
        #: Inbound authentication (forwarder.inbound_auth): given the message, the client's address,
        #: HELO and MAIL FROM, it returns the message to spool (forged trace fields removed, our
        #: Authentication-Results on top). Never raises; its DNS runs on its own threads.
        self.authenticate = authenticate
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

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
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
        if ((per_session and misses >= per_session) or (per_ip and ip_misses >= per_ip)
                or (per_network and self.failed_rcpts.network_count(ip) >= per_network)):
            self.count("rcpt-disconnected")
            logger.warning("RCPT from %s: %d failed recipients (%d from the address), disconnected",
                           ip, misses, ip_misses)
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

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
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
        try:
            if not off_loop:
                accepted: Envelope = self.spool.accept(raw, envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                                       peer, verdicts)
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


def peer_ip(session: Any) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
#: ``<local@domain>`` with dot-atoms on both sides: what nearly every MAIL and RCPT carries.
_PLAIN_ADDRESS = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>")
_END_OF_DATA = b"\r\n.\r\n"
_NOMINAL, _TOO_LONG, _TOO_MUCH = "nominal", "too-long", "too-much"


class FastSMTP(SMTP):
    """aiosmtpd's SMTP server with DATA read in blocks and plain addresses parsed by a regex.

    aiosmtpd reads DATA one line at a time (a coroutine step, a log call and a copy per line: about
    130 per 10 KB message) and parses every address with the RFC 5322 header parser; together that
    was most of the listener's CPU. Both give exactly what aiosmtpd gives:

    - DATA: the body is taken from the stream's buffer as it arrives, up to the first
      ``CRLF.CRLF`` (whatever follows stays for the next command), then dot-unstuffed in one
      ``replace``. A line over ``line_length_limit`` (answered 500) and a body over
      ``data_size_limit`` (answered 552) are told apart in the order aiosmtpd's loop would meet
      them. A body that grows past the size limit before its end is handed to aiosmtpd's own
      line loop (a copy of it), which reads on without keeping what it reads.
    - addresses: a plain ``<local@domain>`` is taken as is; anything else (a quoted local part, a
      comment, a source route, an address literal...) goes to aiosmtpd's parser.

    It uses the stream reader's buffer (``_buffer``, ``_wait_for_data``), as aiosmtpd itself does;
    tests/forwarder/test_smtp_fast_data.py compares both on the edge cases.
    """

    _gate: SessionGate | None = None
    _gate_ip = ""
    _deadline: asyncio.TimerHandle | None = None
    #: Gives the STARTTLS context, reloaded when the certificate files change (forwarder/smtp_tls.py).
    tls_source: TlsReloader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        starting_tls = self._original_transport is not None
        super().connection_made(transport)
        if starting_tls:
            return
        gate = getattr(self.event_handler, "sessions", None)
        ip = peer_ip(self.session)
        if gate is not None and gate.enter(ip):
            self._gate, self._gate_ip = gate, ip
        elif gate is not None:
            self.session.refused = True  # type: ignore[union-attr]  # our attribute; aiosmtpd made the session before this
        limits = getattr(self.event_handler, "limits", None)
        if limits is not None and limits.session_seconds:
            self._deadline = self.loop.call_later(limits.session_seconds, self._time_is_up, "session")

    def _time_is_up(self, what: str) -> None:
        """The session or its DATA ran past its deadline: say so and close (aiosmtpd then cancels
        the session's task)."""
        if what == "session":
            self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        self.event_handler.count("session-timeout")
        logger.warning("SMTP from %s: %s deadline reached, closed", peer_ip(self.session), what)
        self.transport.write(b"421 4.4.2 %s time limit reached, closing connection\r\n"  # type: ignore[attr-defined]  # a TCP transport
                             % what.capitalize().encode("ascii"))
        self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._gate is not None:
            self._gate.leave(self._gate_ip)
            self._gate = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if getattr(self.session, "refused", False):
            self.event_handler.count("session-refused")
            logger.warning("SMTP from %s: too many sessions, refused", peer_ip(self.session))
            await self.push("421 4.7.0 Too many connections, try again later")
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    # AUTH: the listener is an MX with no accounts. aiosmtpd lists its built-in LOGIN and PLAIN
    # mechanisms once TLS is up even with no authenticator to check them; neither is offered nor
    # taken here unless one is configured.
    _hiding_auth = False

    def _has_authenticator(self) -> bool:
        return self._authenticator is not None or "AUTH" in self._handle_hooks

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._hiding_auth = not self._has_authenticator()
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._hiding_auth = False

    async def push(self, status: AnyStr) -> None:
        if self._hiding_auth and (status if isinstance(status, str) else status.decode("ascii", "replace")
                                  ).startswith("250-AUTH"):
            return
        await super().push(status)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        if not self._has_authenticator():
            await self.push("502 5.5.1 AUTH not supported here")
            return
        await super().smtp_AUTH(arg)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls_source is not None and not self._tls_protocol:
            self.tls_context = self.tls_source.context()
        await super().smtp_STARTTLS(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(arg)
        if getattr(self.session, "close_after_reply", False) and self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if arg:
            match = _PLAIN_ADDRESS.match(arg)
            if match is not None:
                address = match.group(1)
                rest = arg[match.end():].lstrip(" \t")
                too_long = self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit
                if not rest.startswith("(") and not too_long:  # a comment: the parser drops it
                    return address, rest
        return super()._getaddr(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limits = getattr(self.event_handler, "limits", None)
        data_timer = None
        if limits is not None and limits.data_seconds:
            data_timer = self.loop.call_later(limits.data_seconds, self._time_is_up, "data")
        try:
            state, original_content = await self._read_data()
        except asyncio.CancelledError:
            logging.getLogger("mail.log").info("Connection lost during DATA")
            self._writer.close()
            raise
        finally:
            if data_timer is not None:
                data_timer.cancel()
        if state != _NOMINAL:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)" if state == _TOO_LONG
                            else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        if isinstance(original_content, Path):  # a large body, received into a file
            self.envelope.spill_path = original_content  # type: ignore[attr-defined]  # our attribute, read by the handler
            self.envelope.content = self.envelope.original_content = None
            try:
                status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
            finally:
                original_content.unlink(missing_ok=True)  # the handler read it (or never will)
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
            return
        content: str | bytes = original_content
        if self._decode_data:
            if self.enable_SMTPUTF8:
                content = original_content.decode("utf-8", errors="surrogateescape")
            else:
                try:
                    content = original_content.decode("ascii", errors="strict")
                except UnicodeDecodeError:
                    await self.push("500 Error: strict ASCII mode")
                    return
        self.envelope.content = content
        self.envelope.original_content = original_content
        # (aiosmtpd would also try a deprecated process_message(); our handlers have handle_DATA)
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[str, bytes | Path]:
        """The state and the dot-unstuffed content of a DATA body (a file past the handler's
        ``spill_bytes``)."""
        reader = self._reader
        limit = self.data_size_limit
        spill_at = getattr(self.event_handler, "spill_bytes", 0)
        # A line end in front, so that a first line "." or ".x" looks like any other.
        data = bytearray(b"\r\n")
        searched = 0
        while True:
            buffer = reader._buffer  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
            if buffer:
                data += buffer
                buffer.clear()
                reader._maybe_resume_transport()  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
            end = data.find(_END_OF_DATA, searched)
            if end >= 0:
                if spill_at and end > spill_at:  # all there already, but over the line: a file all the same
                    return await self._spill(data)
                break
            searched = max(0, len(data) - len(_END_OF_DATA) + 1)
            if limit and len(data) - 4 > limit:
                # Too much for sure, or too long before: aiosmtpd's loop decides, reading on
                # without keeping the body.
                buffer[0:0] = data[2:]
                return await self._read_data_by_line()
            if spill_at and len(data) > spill_at:
                return await self._spill(data)
            error = reader.exception()
            if error is not None:
                raise error
            if reader.at_eof():
                raise asyncio.CancelledError  # the client left mid-DATA (aiosmtpd cancels us too)
            await reader._wait_for_data("smtp_DATA")  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
        rest = data[end + len(_END_OF_DATA):]
        if rest:  # the next command, pipelined: leave it to the command loop
            reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
        del data[end + 2:]
        state = self._data_state(data)
        if state != _NOMINAL:
            return state, b""
        unstuffed = data.replace(b"\r\n.", b"\r\n")
        del unstuffed[:2]
        return state, bytes(unstuffed)

    async def _spill(self, data: bytearray) -> tuple[str, bytes | Path]:
        """Read the rest of a DATA body into a file, as it arrives: what stays in memory is the
        line being received (at most ``line_length_limit``) and the reader's buffer.

        ``data`` is the body so far with a CRLF in front and no terminator yet. Complete lines are
        checked (:class:`_LineCheck`, as :meth:`_data_state`), dot-unstuffed and written; the last
        line end stays in front of what is kept, so that a dot after it is seen with it. Once a
        line is too long or the body too large, the rest is read and dropped up to the end.
        """
        reader = self._reader
        directory: Path = self.event_handler.spill_dir
        directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="data-", suffix=".eml", dir=directory)
        path = Path(name)
        check = _LineCheck(self.data_size_limit, self.line_length_limit)
        pending = data
        first = True
        try:
            with os.fdopen(handle, "wb") as out:
                while True:
                    buffer = reader._buffer  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
                    if buffer:
                        pending += buffer
                        buffer.clear()
                        reader._maybe_resume_transport()  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
                    end = pending.find(_END_OF_DATA)
                    if end >= 0:
                        rest = pending[end + len(_END_OF_DATA):]
                        if rest:  # the next command, pipelined
                            reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
                        chunk = pending[:end + 2]
                        if check.lines(bytes(chunk).split(b"\r\n")[1:-1]):
                            self._write_unstuffed(out, chunk, first)
                        break
                    if check.state == _NOMINAL:
                        cut = pending.rfind(b"\r\n")
                        if cut > 0:
                            chunk = pending[:cut]
                            if check.lines(bytes(chunk).split(b"\r\n")[1:]):
                                self._write_unstuffed(out, chunk, first)
                                first = False
                            del pending[:cut]
                        if check.state == _NOMINAL and len(pending) - 2 > self.line_length_limit:
                            check.state = _TOO_LONG  # a line longer than any allowed, still growing
                    if check.state != _NOMINAL:
                        del pending[:-4]  # only what a terminator could start with
                    error = reader.exception()
                    if error is not None:
                        raise error
                    if reader.at_eof():
                        raise asyncio.CancelledError
                    await reader._wait_for_data("smtp_DATA")  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if check.state != _NOMINAL:
            path.unlink(missing_ok=True)
            return check.state, b""
        return _NOMINAL, path

    @staticmethod
    def _write_unstuffed(out: Any, chunk: bytearray, first: bool) -> None:
        unstuffed = chunk.replace(b"\r\n.", b"\r\n")
        out.write(memoryview(unstuffed)[2:] if first else unstuffed)

    def _data_state(self, data: bytearray) -> str:
        """What aiosmtpd's loop concludes from a whole body (``data`` minus its first two bytes)."""
        limit = self.data_size_limit
        longest = self.line_length_limit
        lines = bytes(data).split(b"\r\n")[1:-1]  # each line of the body without its CRLF
        if (not limit or len(data) - 2 <= limit) and max(map(len, lines), default=0) + 2 <= longest:
            return _NOMINAL
        seen = 0
        for line in lines:
            size = len(line) + 2
            # Over the reader's limit (line_length_limit), readuntil() fails before the line is
            # counted; a line just over line_length_limit is caught after counting.
            if len(line) > longest:
                return _TOO_LONG
            seen += size
            if limit and seen > limit:
                return _TOO_MUCH
            if size > longest:
                return _TOO_LONG
        return _NOMINAL

    async def _read_data_by_line(self) -> tuple[str, bytes]:
        """aiosmtpd 1.4's DATA loop, for a body past the size limit."""
        data: list[bytearray] = []
        num_bytes = 0
        limit = self.data_size_limit
        line_fragments: list[bytes] = []
        state = _NOMINAL
        while self.transport is not None:
            try:
                line: bytes = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as e:
                if state == _NOMINAL:
                    state = _TOO_LONG
                data *= 0
                line = await self._reader.read(e.consumed)
            if not line_fragments and line == b".\r\n":
                break
            num_bytes += len(line)
            if state == _NOMINAL and limit and num_bytes > limit:
                state = _TOO_MUCH
                data *= 0
            line_fragments.append(line)
            if line.endswith(b"\r\n"):
                if state == _NOMINAL:
                    joined = bytearray().join(line_fragments)
                    if len(joined) > self.line_length_limit:
                        state = _TOO_LONG
                        data *= 0
                    else:
                        data.append(joined)
                line_fragments *= 0
        if state != _NOMINAL:
            return state, b""
        for text in data:
            if text.startswith(b"."):
                del text[0]
        return state, b"".join(data)


class _LineCheck:
    """:meth:`FastSMTP._data_state` over a body given in pieces of whole lines."""

    def __init__(self, limit: int | None, longest: int) -> None:
        self.limit = limit
        self.longest = longest
        self.seen = 0
        self.state = _NOMINAL

    def lines(self, lines: list[bytes]) -> bool:
        """Count ``lines`` (without their CRLF); whether the body is still acceptable."""
        if self.state != _NOMINAL:
            return False
        for line in lines:
            size = len(line) + 2
            if len(line) > self.longest:
                self.state = _TOO_LONG
                return False
            self.seen += size
            if self.limit and self.seen > self.limit:
                self.state = _TOO_MUCH
                return False
            if size > self.longest:
                self.state = _TOO_LONG
                return False
        return True


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

    def __init__(self, handler: IngressHandler, host: str, port: int, max_bytes: int,
                 hostname: str | None = None, tls: TlsReloader | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._controller = _Controller(
            handler, hostname=host, port=self.port, data_size_limit=max_bytes,
            server_hostname=hostname or "localhost", ready_timeout=10.0,
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
