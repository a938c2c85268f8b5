"""The whole check of a domain (:func:`check_domain`): each record family asked and checked in turn."""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.resolver

from forwarder.ops.dns_doctor.dkim import check_dkim, dkim_unchecked
from forwarder.ops.dns_doctor.dmarc import check_dmarc
from forwarder.ops.dns_doctor.mx import check_mx
from forwarder.ops.dns_doctor.records import (
    MAIL_FROM_SPF,
    check_token,
    feedback_host,
    inbound_host,
    mail_from_domain,
    normalize_domain,
    required_records,
)
from forwarder.ops.dns_doctor.report import Finding, Report, missing
from forwarder.ops.dns_doctor.resolver import Asker
from forwarder.ops.dns_doctor.spf import check_spf

_INBOUND = re.compile(r"^inbound-smtp\.([a-z0-9-]+)\.amazonaws\.com$")
_FEEDBACK = re.compile(r"^feedback-smtp\.([a-z0-9-]+)\.amazonses\.com$")


@dataclass(frozen=True)
class Expected:
    """What the domain should publish: the SES region, the Easy DKIM tokens, the MAIL FROM domain.

    ``mail_from`` is a label ("mail", "bounce") or a full name under the domain; ``None`` means
    ``mail.<domain>``. Without ``dkim_tokens`` DKIM is reported as unchecked.
    """

    region: str
    dkim_tokens: tuple[str, ...] = ()
    mail_from: str | None = None


def check_domain(domain: str, resolver: dns.resolver.Resolver, expected: Expected) -> Report:
    """Ask ``resolver`` for every record ``domain`` needs; never raises for what DNS answers.

    ValueError only for an invalid domain, MAIL FROM name or DKIM token.
    """
    domain = normalize_domain(domain)
    mail_from_name = mail_from_domain(domain, expected.mail_from)
    tokens = tuple(check_token(t) for t in expected.dkim_tokens)
    region = expected.region
    ask = Asker(resolver)
    records = {r.purpose: r for r in required_records(domain, region, tokens, expected.mail_from)}
    notes: list[str] = []

    mx = ask(domain, "MX")
    if mx.nxdomain:
        reason = (
            f"{domain} does not exist in DNS (NXDOMAIN from {ask.server}): register it or delegate it "
            "to your DNS provider, then create the records below"
        )
        absent = tuple(missing(r, "the domain does not exist") for r in records.values())
        absent += dkim_unchecked(domain) if not tokens else ()
        return Report(domain, region, ask.server, absent, domain_exists=False, notes=(reason,))

    findings: list[Finding] = [
        check_mx(
            records["SES receiving"],
            mx,
            inbound_host(region),
            _INBOUND,
            "mail to the aliases goes to SES in",
            "mail to the aliases has nowhere to go",
            strict=False,
        )
    ]
    findings.append(check_spf(records["SPF"], ask(domain, "TXT"), domain))
    if tokens:
        for index, token in enumerate(tokens, 1):
            record = records[f"DKIM {index}/{len(tokens)}"]
            findings.append(check_dkim(record, ask(record.name, "CNAME"), token, region))
        if len(tokens) != 3:
            notes.append(f"Easy DKIM gives three tokens; {len(tokens)} given")
    else:
        findings += dkim_unchecked(domain)
    findings.append(check_dmarc(records["DMARC"], ask(f"_dmarc.{domain}", "TXT")))
    findings.append(
        check_mx(
            records["MAIL FROM MX"],
            ask(mail_from_name, "MX"),
            feedback_host(region),
            _FEEDBACK,
            f"{mail_from_name} can be SES's MAIL FROM domain: bounces and complaints go to SES in",
            f"SES cannot use {mail_from_name} as MAIL FROM domain (it then uses amazonses.com, or refuses "
            "to send if told to)",
            strict=True,
        )
    )
    findings.append(
        check_spf(records["MAIL FROM SPF"], ask(mail_from_name, "TXT"), mail_from_name, replacement=MAIL_FROM_SPF)
    )
    return Report(domain, region, ask.server, tuple(findings), notes=tuple(notes) + tuple(ask.hints))
