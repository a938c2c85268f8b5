"""aiosmtpd's SMTP session made fast: DATA read in blocks (spilled to a file past the handler's
``spill_bytes``), plain addresses parsed by one regular expression, the session deadlines and caps
of :mod:`forwarder.adapters.smtp.limits`, and STARTTLS from :mod:`forwarder.adapters.smtp.tls`.

The handler (what is accepted, where it is spooled) is :mod:`forwarder.adapters.smtp.ingress`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from forwarder.adapters.smtp.limits import SessionGate
from forwarder.adapters.smtp.tls import TlsReloader

logger = logging.getLogger("othermail.smtp")


def peer_ip(session: Any) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")


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
    tests/forwarder/adapters/smtp/test_smtp_fast_data.py compares both on the edge cases.
    """

    _gate: SessionGate | None = None
    _gate_ip = ""
    _deadline: asyncio.TimerHandle | None = None
    #: Gives the STARTTLS context, reloaded when the certificate files change (forwarder/adapters/smtp/tls.py).
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
        line = b"421 4.4.2 %s time limit reached, closing connection\r\n" % what.capitalize().encode("ascii")
        self.transport.write(line)  # type: ignore[attr-defined]  # a TCP transport
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
        if self._hiding_auth and (status if isinstance(status, str) else status.decode("ascii", "replace")).startswith(
            "250-AUTH"
        ):
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
                rest = arg[match.end() :].lstrip(" \t")
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
            await self.push(
                "500 Line too long (see RFC5321 4.5.3.1.6)" if state == _TOO_LONG else "552 Error: Too much mail data"
            )
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
        rest = data[end + len(_END_OF_DATA) :]
        if rest:  # the next command, pipelined: leave it to the command loop
            reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
        del data[end + 2 :]
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
                        rest = pending[end + len(_END_OF_DATA) :]
                        if rest:  # the next command, pipelined
                            reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # asyncio.StreamReader internals; aiosmtpd's DATA reader uses them too
                        chunk = pending[: end + 2]
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
        if (not limit or len(data) - 2 <= limit) and lines_fit(data, longest):
            return _NOMINAL
        lines = bytes(data).split(b"\r\n")[1:-1]  # each line of the body without its CRLF
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


def lines_fit(data: bytearray, longest: int) -> bool:
    """Whether every line of ``data`` (a body that starts and ends with a CRLF) is at most
    ``longest`` bytes with its CRLF: from each line start, the last CRLF within the next ``longest``
    bytes ends lines that all fit, so the check jumps there (each stretch read once, at memrchr
    speed) instead of splitting the body into a list of lines."""
    pos, size = 2, len(data)
    while pos < size:
        end = data.rfind(b"\r\n", pos, pos + longest)
        if end < 0:
            return False  # the line at pos has no CRLF within longest bytes
        pos = end + 2
    return True


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
