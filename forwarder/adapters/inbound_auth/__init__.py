"""Inbound authentication on the one box: who really sent a message that arrived by SMTP.

On the Lambda path SES checks SPF, DKIM and DMARC and the receipt event carries its verdicts
(``forwarder.adapters.aws.events``). Mail that reaches the one box's own SMTP listener has no such event,
so this adapter gives it one, in one of three modes (``OTHERMAIL_INBOUND_AUTH``):

- ``own`` (default): SPF of the connecting address and MAIL FROM (HELO for a null sender), DKIM,
  and DMARC with its policy, checked here (:mod:`forwarder.adapters.inbound_auth.checks`) over one resolver
  with a time budget per message (:mod:`forwarder.adapters.inbound_auth.resolver`);
- ``trusted-relay``: a filter in front (Postfix with rspamd, OpenDKIM/OpenDMARC) has checked;
  its ``Authentication-Results`` field is believed only when the SMTP client's address is in
  ``OTHERMAIL_TRUSTED_RELAYS`` and the field's authserv-id is ``OTHERMAIL_TRUSTED_AUTHSERV_ID``
  (the topmost such field: the relay puts its own on top). From anywhere else: no verdict;
- ``off``: nothing is checked; no verdict.

Whatever the mode, before the message is spooled (and so before it is stored, shown on its page
or forwarded) every ``Authentication-Results``, ``Received-SPF`` and ``X-SES-*`` field the sender
or an earlier hop wrote is removed (:func:`forwarder.core.trace.strip_trace_fields`, which also
says why ARC sets are kept), and one ``Authentication-Results`` field under our authserv-id is
put on top with the results. The same results, as the SES-shaped :class:`Verdicts` the decision
understands, are recorded in the spool envelope beside the message, and the dispatcher takes them
from there (nothing in the message can change them), so ``OTHERMAIL_DROP_DMARC_REJECT`` drops
forged mail from p=reject domains here as on Lambda. :meth:`Authenticator.verdicts` reads the
field back only for entries spooled before envelopes recorded verdicts.

DNS that cannot be reached, or does not answer within the budget, gives ``temperror``: no verdict,
which never defers or drops a message by itself. So the one box keeps working with no network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from forwarder.adapters.inbound_auth.checks import Client, Dmarc, check_dkim, check_spf, client_address, spf_domain
from forwarder.adapters.inbound_auth.resolver import BUDGET_SECONDS, Resolver
from forwarder.core import Verdicts
from forwarder.core.message import split_message
from forwarder.core.trace import (
    NO_VERDICT,
    MethodResult,
    format_authentication_results,
    parse_authentication_results,
    stamp,
    stamped_verdicts,
    strip_trace_fields,
    verdicts_from_results,
)
from forwarder.errors import SettingsError

if TYPE_CHECKING:
    from forwarder.settings import Settings

__all__ = ["MODES", "Authenticator", "Client", "Resolver", "build_authenticator"]

logger = logging.getLogger("othermail.inbound_auth")

MODES = ("own", "trusted-relay", "off")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Authenticator:
    def __init__(
        self,
        mode: str,
        authserv_id: str,
        resolver: Resolver | None = None,
        *,
        trusted_authserv_id: str = "",
        trusted_relays: Sequence[Network] = (),
        dmarc: Dmarc | None = None,
        workers: int = 4,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown inbound authentication mode {mode!r}")
        self.mode = mode
        self.authserv_id = authserv_id.lower()
        self.resolver = resolver or Resolver(None)
        self.trusted_authserv_id = trusted_authserv_id.lower()
        self.trusted_relays = tuple(trusted_relays)
        self.dmarc = dmarc or (Dmarc() if mode == "own" else None)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    # -- what the SMTP listener calls, before it spools --------------------------------------

    def results(self, raw: bytes, client: Client) -> list[MethodResult]:
        """The results to state for ``raw`` (empty: nothing checked)."""
        if self.mode == "own":
            return self._own(raw, client)
        if self.mode == "trusted-relay":
            return self._relayed(raw, client)
        return []

    def _own(self, raw: bytes, client: Client) -> list[MethodResult]:
        """SPF, DKIM and DMARC, asking DNS in an order a sender cannot exploit.

        The budget is shared, and a sender controls the DNS of any domain it names in MAIL FROM
        or a DKIM signature: were those asked first, a slow name server of its own would leave
        nothing for the From domain's policy, and a forged p=reject message would get
        ``temperror`` instead of ``fail``. So the From domains' DMARC records are asked first,
        then the identifiers aligned with them (the only ones that can make DMARC pass), then
        the rest.
        """
        assert self.dmarc is not None
        dmarc = self.dmarc
        lookup = self.resolver.lookup()
        domains = dmarc.from_domains(raw)
        records = {d: dmarc.record(d, lookup) for d in domains} if isinstance(domains, list) else {}

        def aligned(domain: str) -> bool:
            return any(dmarc.aligned(domain, d) for d in records)

        spf_first = aligned(spf_domain(client))
        spf_result = check_spf(client, lookup) if spf_first else None
        dkim_results = check_dkim(raw, lookup, first=aligned)
        if spf_result is None:
            spf_result = check_spf(client, lookup)
        if isinstance(domains, MethodResult):
            dmarc_result = domains
        else:
            dmarc_result = dmarc.combine([dmarc.evaluate(d, records[d], spf_result, dkim_results) for d in domains])
        return [spf_result, *dkim_results, dmarc_result]

    def _relayed(self, raw: bytes, client: Client) -> list[MethodResult]:
        address = client_address(client.ip)
        if address is None:
            return []
        if not any(address in network for network in self.trusted_relays):
            return []
        for field in split_message(raw).get_all("authentication-results"):
            parsed = parse_authentication_results(field.value.decode("ascii", "replace"))
            if parsed is not None and parsed.authserv_id == self.trusted_authserv_id:
                wanted = [r for r in parsed.results if r.method in ("spf", "dkim", "dmarc")]
                return [
                    MethodResult(
                        r.method, r.result, r.properties, r.reason, (*r.comments, f"by {self.trusted_authserv_id}")
                    )
                    for r in wanted
                ]
        return []

    def process(self, raw: bytes, client: Client) -> bytes:
        """``raw`` without forged trace fields and with our ``Authentication-Results`` on top."""
        return self.process_with_verdicts(raw, client)[0]

    def process_with_verdicts(self, raw: bytes, client: Client) -> tuple[bytes, Verdicts]:
        """:meth:`process`, and the verdicts it stamped (recorded in the spool envelope, so the
        dispatcher never has to trust anything read back from the message)."""
        try:
            results = self.results(raw, client)
        except Exception:  # a bug in a check must not lose the message: no verdict, and say so
            logger.exception("inbound authentication failed")
            results = []
        stripped, removed = strip_trace_fields(raw)
        if removed:
            logger.info("removed %d trace field(s) the sender wrote", removed)
        eol = b"\n" if split_message(stripped).eol == b"\n" else b"\r\n"
        stamped = stamp(stripped, format_authentication_results(self.authserv_id, results, eol))
        return stamped, verdicts_from_results(results) if results else NO_VERDICT

    async def authenticate(self, raw: bytes, ip: str, helo: str, mail_from: str) -> tuple[bytes, Verdicts]:
        """:meth:`process_with_verdicts` on this authenticator's own threads (DNS never holds up
        the event loop, nor the threads the listener uses for its database lookups)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="inbound-auth")
        client = Client(ip, helo or "", mail_from or "")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.process_with_verdicts, raw, client)

    # -- what the dispatcher calls, before it forwards --------------------------------------

    def verdicts(self, raw: bytes) -> Verdicts:
        """The verdicts :meth:`process` stamped on ``raw``: for spool entries written before the
        envelope recorded them (the dispatcher prefers the envelope's)."""
        return stamped_verdicts(raw, self.authserv_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def build_authenticator(settings: Settings, authserv_id: str) -> Authenticator:
    """The authenticator ``settings`` ask for; SettingsError for an unusable resolver."""
    resolver = Resolver(None, BUDGET_SECONDS)
    if settings.inbound_auth == "own":
        try:
            resolver = Resolver.for_nameserver(settings.inbound_auth_resolver)
        except ValueError as exc:
            raise SettingsError(f"OTHERMAIL_INBOUND_AUTH_RESOLVER: {exc}") from None
    relays = tuple(ipaddress.ip_network(r, strict=False) for r in settings.trusted_relays)
    return Authenticator(
        settings.inbound_auth,
        authserv_id,
        resolver,
        trusted_authserv_id=settings.trusted_authserv_id,
        trusted_relays=relays,
    )
