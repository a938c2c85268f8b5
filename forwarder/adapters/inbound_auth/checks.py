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
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dkim
import spf
from dkim.util import parse_tag_value
from publicsuffixlist import PublicSuffixList

from forwarder.adapters.inbound_auth.resolver import DnsUnavailable, Lookup
from forwarder.core.addresses import parse_address_list
from forwarder.core.message import split_message
from forwarder.core.text import clean_text
from forwarder.core.trace import MethodResult

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
        return _original_lookup(name, qtype, strict, timeout)
    try:
        records = lookup.query(name, qtype)
    except DnsUnavailable as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    out: list[tuple[tuple[str, str], Any]] = []
    for r in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))  # type: ignore[attr-defined]  # the rdata class follows qtype; dnspython types it as Rdata
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))  # type: ignore[attr-defined]  # the rdata class follows qtype; dnspython types it as Rdata
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))  # type: ignore[attr-defined]  # the rdata class follows qtype; dnspython types it as Rdata
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))  # type: ignore[attr-defined]  # the rdata class follows qtype; dnspython types it as Rdata
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


_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def from_domain(address: str) -> str | None:
    """The domain of a From address as a reader is shown it (control characters are spelled as
    white space by :func:`forwarder.core.text.clean_text`), lower-case, in its A-label form;
    None when that is not a domain name (empty labels, spaces, a label IDNA refuses)."""
    domain = clean_text(_domain_of(address)).rstrip(".")
    if not domain or len(domain) > 253:
        return None
    labels: list[str] = []
    for label in domain.split("."):
        try:
            ascii_label = label.encode("idna").decode("ascii") if not label.isascii() else label
        except UnicodeError:
            return None
        if not _LDH_LABEL.fullmatch(ascii_label):
            return None
        labels.append(ascii_label)
    return ".".join(labels)


def spf_identity(result: MethodResult) -> str:
    """The domain an SPF result is about: MAIL FROM's, or the HELO name for a null sender."""
    return _domain_of(result.prop("smtp.mailfrom") or result.prop("smtp.helo") or "")


def spf_domain(client: Client) -> str:
    mail_from = client.mail_from.strip().strip("<>")
    return _domain_of(mail_from) if mail_from else client.helo.strip().rstrip(".").lower()


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


#: Where dkimpy's parser (``dkim.rfc822_parse``, which splits lines at CRLF or LF) finds the end of
#: the header: the first empty line.
_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")


def header_block(raw: bytes) -> bytes:
    """``raw`` up to and with its first empty line (all of it without one): dkimpy reads the same
    header fields from it as from the whole message, and fails on the same lines."""
    end = _EMPTY_LINE.search(raw)
    return raw if end is None else raw[: end.end()]


def check_dkim(raw: bytes, lookup: Lookup, first: Callable[[str], bool] = lambda d: False) -> list[MethodResult]:
    """One result per DKIM-Signature (the first :data:`MAX_SIGNATURES`, in message order);
    ``none`` without any. Signatures whose ``d=`` satisfies ``first`` are verified before the
    others, so that others cannot spend the DNS budget before them."""

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        records = lookup.txt(name.decode("ascii", "replace").rstrip("."))
        return records[0] if records else None

    quiet = logging.getLogger("othermail.inbound_auth.dkimpy")
    # dkimpy splits the whole message into lines and joins the body again as it is built: read
    # the header alone first, and the whole message only when there is a signature to verify.
    head = header_block(raw)
    try:
        verifier = dkim.DKIM(head, logger=quiet, minkey=1024, timeout=max(lookup.remaining(), 0.01))
        signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
        if signatures and len(head) < len(raw):
            verifier = dkim.DKIM(raw, logger=quiet, minkey=1024, timeout=max(lookup.remaining(), 0.01))
    except Exception as exc:
        return [MethodResult("dkim", "permerror", comments=(f"unreadable message: {exc.__class__.__name__}",))]
    if not signatures:
        return [MethodResult("dkim", "none")]
    parsed: list[tuple[tuple[str, str], ...] | None] = []
    for value in signatures[:MAX_SIGNATURES]:
        try:
            tags = parse_tag_value(value)
            parsed.append(
                (
                    ("header.d", tags.get(b"d", b"").decode("ascii", "replace").strip().lower()),
                    ("header.s", tags.get(b"s", b"").decode("ascii", "replace").strip()),
                )
            )
        except Exception:
            parsed.append(None)
    order = sorted(range(len(parsed)), key=lambda i: not (parsed[i] is not None and first(parsed[i][0][1])))  # type: ignore[index]  # checked not None just before
    by_index: dict[int, MethodResult] = {}
    for index in order:
        props = parsed[index]
        if props is None:
            by_index[index] = MethodResult("dkim", "permerror", comments=("unparsable signature",))
            continue
        by_index[index] = _verify_one(verifier, index, props, txt)
    return [by_index[i] for i in range(len(parsed))]


def _verify_one(
    verifier: dkim.DKIM, index: int, props: tuple[tuple[str, str], ...], txt: Callable[..., bytes | None]
) -> MethodResult:
    try:
        good = verifier.verify(idx=index, dnsfunc=txt)
    except DnsUnavailable as exc:
        return MethodResult("dkim", "temperror", props, comments=(str(exc),))
    except dkim.ValidationError:  # the body hash does not match, the signature has expired...
        return MethodResult("dkim", "fail", props)
    except dkim.DKIMException as exc:  # a malformed signature
        return MethodResult("dkim", "permerror", props, comments=(exc.__class__.__name__,))
    except Exception as exc:  # dkimpy on odd input
        logger.warning("DKIM check failed: %s: %s", exc.__class__.__name__, exc)
        return MethodResult("dkim", "temperror", props, comments=("check failed",))
    return MethodResult("dkim", "pass" if good else "fail", props)


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
    as fallback, from the public suffix list shipped with ``publicsuffixlist``) and alignment.

    A DMARC fail needs every aligned identifier to have failed: an SPF or DKIM ``temperror``
    makes it ``temperror`` only when that identifier is aligned with the From domain (one that
    is not could never make DMARC pass, and a sender controls its DNS)."""

    def __init__(self, suffixes: PublicSuffixList | None = None) -> None:
        self.suffixes = suffixes or PublicSuffixList()

    def organizational(self, domain: str) -> str:
        return self.suffixes.privatesuffix(domain) or domain

    def from_domains(self, raw: bytes) -> list[str] | MethodResult:
        """The distinct From domains in order (the first is the one a reader sees), or the
        permerror result when there is none."""
        domains: dict[str, None] = {}
        try:
            for field in split_message(raw).get_all("from"):
                for box in parse_address_list(field.text()):
                    if not box.address.strip():
                        continue
                    domain = from_domain(box.address)
                    if domain is None:
                        # No policy can be looked up for it, and a reader would still be shown
                        # a familiar name ("security at paypal.com" for paypal.com<NUL>): fail
                        # as under p=reject, so OTHERMAIL_DROP_DMARC_REJECT drops it.
                        return MethodResult("dmarc", "fail", comments=("p=reject", "From domain is not a domain name"))
                    domains.setdefault(domain, None)
        except Exception as exc:  # the address parser on hostile input
            return MethodResult("dmarc", "permerror", comments=(f"unreadable From: {exc.__class__.__name__}",))
        if not domains:
            return MethodResult("dmarc", "permerror", comments=("no From domain",))
        return list(domains)[:MAX_FROM_DOMAINS]

    def record(self, domain: str, lookup: Lookup) -> tuple[DmarcRecord | None, bool] | DnsUnavailable:
        """The policy record for ``domain`` and whether it came from its organizational domain;
        the error when DNS could not say."""
        try:
            for name, inherited in ((domain, False), (self.organizational(domain), True)):
                if inherited and name == domain:
                    break
                records = [
                    r
                    for r in (
                        parse_dmarc(t) for t in lookup.txt(f"_dmarc.{name}") if t[:8].upper().startswith(b"V=DMARC1")
                    )
                    if r is not None
                ]
                if len(records) == 1:
                    return records[0], inherited
                if len(records) > 1:
                    return None, inherited  # RFC 7489 6.6.3: more than one record is no policy
        except DnsUnavailable as exc:
            return exc
        return None, False

    def aligned(self, a: str, b: str, strict: bool = False) -> bool:
        if not a or not b:
            return False
        return a == b if strict else self.organizational(a) == self.organizational(b)

    def evaluate(
        self,
        from_domain: str,
        found: tuple[DmarcRecord | None, bool] | DnsUnavailable,
        spf_result: MethodResult,
        dkim_results: Sequence[MethodResult],
    ) -> MethodResult:
        props = (("header.from", from_domain),)
        if isinstance(found, DnsUnavailable):
            return MethodResult("dmarc", "temperror", props, comments=(str(found),))
        record, inherited = found
        if record is None:
            return MethodResult("dmarc", "none", props)
        policy = (record.subdomain_policy or record.policy) if inherited else record.policy
        spf_domain = spf_identity(spf_result)
        spf_aligned = self.aligned(spf_domain, from_domain, record.strict_spf)
        if spf_result.result == "pass" and spf_aligned:
            return MethodResult("dmarc", "pass", props, comments=(f"p={policy}", "spf aligned"))
        aligned_dkim = [
            r for r in dkim_results if self.aligned(r.prop("header.d") or "", from_domain, record.strict_dkim)
        ]
        if any(r.result == "pass" for r in aligned_dkim):
            return MethodResult("dmarc", "pass", props, comments=(f"p={policy}", "dkim aligned"))
        if (spf_aligned and spf_result.result == "temperror") or any(r.result == "temperror" for r in aligned_dkim):
            return MethodResult("dmarc", "temperror", props, comments=(f"p={policy}", "SPF or DKIM unavailable"))
        return MethodResult("dmarc", "fail", props, comments=(f"p={policy}",))

    @staticmethod
    def combine(results: Sequence[MethodResult]) -> MethodResult:
        """The worst of the From domains' results (so a second From address cannot hide a failing
        one): fail (strictest policy first), then temperror, permerror, none, pass."""
        failed = [r for r in results if r.result == "fail"]
        if failed:
            return max(failed, key=lambda r: _POLICIES.index(r.policy or "none"))
        for wanted in ("temperror", "permerror", "none"):
            for r in results:
                if r.result == wanted:
                    return r
        return results[0]
