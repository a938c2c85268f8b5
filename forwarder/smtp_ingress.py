"""The SMTP listener of one-box mode (aiosmtpd): the local twin of the SES receipt rule.

- RCPT: only addresses on the service's domains (anything else is 550: never an open relay), and
  only aliases that exist (550 5.1.1 otherwise); 451 when the database cannot say.
- SIZE/DATA: aiosmtpd advertises the size limit and answers 552 above it.
- DATA: the raw message and its envelope are spooled (see :mod:`forwarder.spool`) before the 250;
  451 when that fails, so the sending server keeps the message and retries.

Forwarding happens after the 250, on the dispatcher's threads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from forwarder.errors import RetryableError
from forwarder.spool import Envelope, Spool

logger = logging.getLogger("othermail.smtp")

MAX_RECIPIENTS = 100


class IngressHandler:
    def __init__(
        self,
        domains: tuple[str, ...],
        spool: Spool,
        known: Callable[[str], bool],
        dispatch: Callable[[str], None],
    ) -> None:
        self.domains = frozenset(d.lower() for d in domains)
        self.spool = spool
        self.known = known
        self.dispatch = dispatch

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        local, at, domain = address.rpartition("@")
        if not at or not local or domain.lower() not in self.domains:
            return "550 5.7.1 Relaying denied: this server only receives mail for its own domains"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            exists = await asyncio.get_running_loop().run_in_executor(None, self.known, address)
        except Exception as exc:
            logger.warning("RCPT %s: lookup failed: %s", address, exc)
            return "451 4.3.0 Temporary lookup failure, please try again later"
        if not exists:
            return f"550 5.1.1 <{address}>: no such address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        try:
            accepted: Envelope = await asyncio.get_running_loop().run_in_executor(
                None, self.spool.accept, raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), peer
            )
        except (RetryableError, OSError) as exc:
            logger.error("DATA from %s: could not spool: %s", peer, exc)
            return "451 4.3.0 Temporary local problem, please try again later"
        self.dispatch(accepted.spool_id)
        return f"250 2.0.0 OK: queued as {accepted.spool_id}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpListener:
    """An aiosmtpd controller on its own thread; ``port=0`` picks a free one."""

    def __init__(self, handler: IngressHandler, host: str, port: int, max_bytes: int,
                 hostname: str | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(
            handler, hostname=host, port=self.port, data_size_limit=max_bytes,
            server_hostname=hostname or "localhost", ready_timeout=10.0,
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
