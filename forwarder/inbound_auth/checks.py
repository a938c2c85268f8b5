"""SPF (pyspf), DKIM (dkimpy) and DMARC (RFC 7489, over the same DNS) for one incoming message.

Each check returns :class:`forwarder.core.trace.MethodResult` values, the way they are written
into our ``Authentication-Results`` field. DNS comes from one :class:`Lookup` per message; when it
is unavailable the result is ``temperror`` (no verdict), never an exception.

pyspf asks DNS through its module-level ``spf.DNSLookup``; :func:`_install_spf_hook` replaces it
once with a function that uses the :class:`Lookup` of the check running on the current thread
(a context variable), and falls back to pyspf's own for any other caller.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dkim
import spf
from dkim.util import parse_tag_value
from publicsuffixlist import PublicSuffixList

from forwarder.core.addresses import parse_address_list
from forwarder.core.message import split_message
from forwarder.core.trace import MethodResult
from forwarder.inbound_auth.resolver import DnsUnavailable, Lookup

logger = logging.getLogger("othermail.inbound_auth")

#: DKIM signatures checked per message at most (each can cost a DNS lookup).
MAX_SIGNATURES = 5
#: From domains checked per message at most (a From with several addresses).
MAX_FROM_DOMAINS = 5

_current: contextvars.ContextVar[Lookup | None] = contextvars.ContextVar("othermail_spf_lookup", default=None)
_hook_lock = threading.Lock()
_original_lookup: Any = None


def _spf_dns(name: str, qtype: str, strict: Any = True, timeout: Any = None) -> list[tuple[tuple[str, str], Any]]:
    lookup = _current.get()
    if lookup is None:
        return _original_lookup(name, qtype, strict, timeout)  # type: ignore[no-any-return]
    try:
        records = lookup.query(name, qtype)
    except DnsUnavailable as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    out: list[tuple[tuple[str, str], Any]] = []
    for r in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))  # type: ignore[attr-defined]
    return out


def _install_spf_hook() -> None:
    global _original_lookup
    with _hook_lock:
        if _original_lookup is None:
            _original_lookup = spf.DNSLookup
            spf.DNSLookup = _spf_dns


@dataclass(frozen=True, slots=True)
class Client:
    """What the SMTP session knows of the sender: connecting address, HELO name, MAIL FROM."""

    ip: str
    helo: str = ""
    mail_from: str = ""


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address; an IPv4-mapped IPv6 one (a listener on ``::``) as the IPv4 it is."""
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").rstrip(".").lower()


def check_spf(client: Client, lookup: Lookup) -> MethodResult:
    """SPF of the MAIL FROM identity, or of the HELO name for a null sender (RFC 7208 section 2.4)."""
    _install_spf_hook()
    mail_from = client.mail_from.strip().strip("<>")
    helo = client.helo.strip()
    prop = ("smtp.mailfrom", mail_from) if mail_from else ("smtp.helo", helo)
    address = client_address(client.ip)
    if address is None:
        return MethodResult("spf", "none", (prop,), comments=("no client address",))
    if not mail_from and not helo:
        return MethodResult("spf", "none", (), comments=("no identity to check",))
    token = _current.set(lookup)
    try:
        query = spf.query(i=str(address), s=mail_from, h=helo or "unknown", querytime=max(lookup.remaining(), 0.01))
        result, _code, explanation = query.check()
    except Exception as exc:  # pyspf on odd input: no verdict, and say so
        logger.warning("SPF check failed: %s: %s", exc.__class__.__name__, exc)
        result, explanation = "temperror", "check failed"
    finally:
        _current.reset(token)
    if result == "ambiguous":
        result = "permerror"
    comments = (f"{address}: {explanation}",) if result in ("temperror", "permerror") else (f"{address}",)
    return MethodResult("spf", str(result), (prop,), comments=comments)


def check_dkim(raw: bytes, lookup: Lookup) -> list[MethodResult]:
    """One result per DKIM-Signature (the first :data:`MAX_SIGNATURES`); ``none`` without any."""

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        records = lookup.txt(name.decode("ascii", "replace").rstrip("."))
        return records[0] if records else None

    quiet = logging.getLogger("othermail.inbound_auth.dkimpy")
    try:
        verifier = dkim.DKIM(raw, logger=quiet, minkey=1024, timeout=max(lookup.remaining(), 0.01))
    except Exception as exc:
        return [MethodResult("dkim", "permerror", comments=(f"unreadable message: {exc.__class__.__name__}",))]
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return [MethodResult("dkim", "none")]
    results: list[MethodResult] = []
    for index, value in enumerate(signatures[:MAX_SIGNATURES]):
        try:
            tags = parse_tag_value(value)
            props = (("header.d", tags.get(b"d", b"").decode("ascii", "replace").strip().lower()),
                     ("header.s", tags.get(b"s", b"").decode("ascii", "replace").strip()))
        except Exception:
            results.append(MethodResult("dkim", "permerror", comments=("unparsable signature",)))
            continue
        try:
            good = verifier.verify(idx=index, dnsfunc=txt)
        except DnsUnavailable as exc:
            results.append(MethodResult("dkim", "temperror", props, comments=(str(exc),)))
            continue
        except dkim.ValidationError:  # the body hash does not match, the signature has expired...
            results.append(MethodResult("dkim", "fail", props))
            continue
        except dkim.DKIMException as exc:  # a malformed signature
            results.append(MethodResult("dkim", "permerror", props, comments=(exc.__class__.__name__,)))
            continue
        except Exception as exc:  # dkimpy on odd input
            logger.warning("DKIM check failed: %s: %s", exc.__class__.__name__, exc)
            results.append(MethodResult("dkim", "temperror", props, comments=("check failed",)))
            continue
        results.append(MethodResult("dkim", "pass" if good else "fail", props))
    return results


# -- DMARC -----------------------------------------------------------------------------------------

_POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str | None
    strict_dkim: bool
    strict_spf: bool


def parse_dmarc(text: bytes) -> DmarcRecord | None:
    """A ``v=DMARC1`` record's tags; None when it is not one."""
    try:
        tags = parse_tag_value(text)
    except Exception:
        return None
    if tags.get(b"v", b"").strip().upper() != b"DMARC1":
        return None

    def policy(key: bytes) -> str | None:
        value = tags.get(key, b"").strip().lower().decode("ascii", "replace")
        return value if value in _POLICIES else None

    return DmarcRecord(
        policy=policy(b"p") or "none",  # RFC 7489 6.6.3: a record with a bad p= is read as none
        subdomain_policy=policy(b"sp"),
        strict_dkim=tags.get(b"adkim", b"r").strip().lower() == b"s",
        strict_spf=tags.get(b"aspf", b"r").strip().lower() == b"s",
    )


class Dmarc:
    """The DMARC check: the From domains, their policy records (with the organizational domain's
    as fallback, from the public suffix list shipped with ``publicsuffixlist``) and alignment."""

    def __init__(self, suffixes: PublicSuffixList | None = None) -> None:
        self.suffixes = suffixes or PublicSuffixList()

    def organizational(self, domain: str) -> str:
        return self.suffixes.privatesuffix(domain) or domain

    def _record(self, domain: str, lookup: Lookup) -> tuple[DmarcRecord | None, bool]:
        """The policy record for ``domain`` and whether it came from its organizational domain."""
        for name, inherited in ((domain, False), (self.organizational(domain), True)):
            if inherited and name == domain:
                break
            records = [r for r in (parse_dmarc(t) for t in lookup.txt(f"_dmarc.{name}")
                                   if t[:8].upper().startswith(b"V=DMARC1")) if r is not None]
            if len(records) == 1:
                return records[0], inherited
            if len(records) > 1:
                return None, inherited  # RFC 7489 6.6.3: more than one record is no policy
        return None, False

    def _aligned(self, a: str, b: str, strict: bool) -> bool:
        if not a or not b:
            return False
        return a == b if strict else self.organizational(a) == self.organizational(b)

    def check_domain(self, from_domain: str, spf_result: MethodResult, dkim_results: Sequence[MethodResult],
                     lookup: Lookup) -> MethodResult:
        props = (("header.from", from_domain),)
        try:
            record, inherited = self._record(from_domain, lookup)
        except DnsUnavailable as exc:
            return MethodResult("dmarc", "temperror", props, comments=(str(exc),))
        if record is None:
            return MethodResult("dmarc", "none", props)
        policy = (record.subdomain_policy or record.policy) if inherited else record.policy
        spf_domain = _domain_of(spf_result.prop("smtp.mailfrom") or spf_result.prop("smtp.helo") or "")
        if spf_result.result == "pass" and self._aligned(spf_domain, from_domain, record.strict_spf):
            return MethodResult("dmarc", "pass", props, comments=(f"p={policy}", "spf aligned"))
        for result in dkim_results:
            if result.result == "pass" and self._aligned(result.prop("header.d") or "", from_domain,
                                                         record.strict_dkim):
                return MethodResult("dmarc", "pass", props, comments=(f"p={policy}", "dkim aligned"))
        if spf_result.result == "temperror" or any(r.result == "temperror" for r in dkim_results):
            return MethodResult("dmarc", "temperror", props, comments=(f"p={policy}", "SPF or DKIM unavailable"))
        return MethodResult("dmarc", "fail", props, comments=(f"p={policy}",))

    def check(self, raw: bytes, spf_result: MethodResult, dkim_results: Sequence[MethodResult],
              lookup: Lookup) -> MethodResult:
        """DMARC of every From domain; the worst one counts (so a second From address cannot hide
        a failing one): fail (strictest policy first), then temperror, then none, then pass."""
        domains: dict[str, None] = {}
        try:
            for field in split_message(raw).get_all("from"):
                for box in parse_address_list(field.text()):
                    domain = _domain_of(box.address)
                    if domain:
                        domains.setdefault(domain, None)
        except Exception as exc:  # the address parser on hostile input
            return MethodResult("dmarc", "permerror", comments=(f"unreadable From: {exc.__class__.__name__}",))
        if not domains:
            return MethodResult("dmarc", "permerror", comments=("no From domain",))
        results = [self.check_domain(d, spf_result, dkim_results, lookup) for d in list(domains)[:MAX_FROM_DOMAINS]]
        failed = [r for r in results if r.result == "fail"]
        if failed:
            return max(failed, key=lambda r: _POLICIES.index(r.policy or "none"))
        for wanted in ("temperror", "permerror", "none"):
            for r in results:
                if r.result == wanted:
                    return r
        return results[0]
