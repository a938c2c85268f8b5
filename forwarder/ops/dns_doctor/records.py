"""The names an alias domain uses with SES and the exact records to create (:func:`required_records`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import dns.exception
import dns.name

from forwarder.ops.dns_doctor.report import Level, Record

SES_DKIM_DOMAIN = "dkim.amazonses.com"
SPF_INCLUDE = "include:amazonses.com"
MAIL_FROM_SPF = "v=spf1 include:amazonses.com ~all"
DMARC_SUGGESTED = "v=DMARC1; p=quarantine"
DEFAULT_MAIL_FROM_LABEL = "mail"
_LDH = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


def normalize_domain(domain: str) -> str:
    """The domain in ASCII (IDNA), lower case, without the final dot; ValueError when invalid."""
    text = domain.strip().rstrip(".")
    if not text or " " in text or "/" in text or "@" in text:
        raise ValueError(f"{domain!r} is not a domain name")
    try:
        name = dns.name.from_text(text)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ValueError(f"{domain!r} is not a domain name: {exc}") from None
    if len(name.labels) < 3:  # "example.org." is 3 labels with the root
        raise ValueError(f"{domain!r} is not a domain name with at least two labels")
    return name.to_text(omit_final_dot=True).lower()


def mail_from_domain(domain: str, mail_from: str | None = None) -> str:
    """The custom MAIL FROM domain: ``mail.<domain>`` by default; a label or a full subdomain."""
    domain = normalize_domain(domain)
    label = (mail_from or DEFAULT_MAIL_FROM_LABEL).strip().rstrip(".").lower()
    sub = label.removesuffix("." + domain)
    if (sub == label and "." in label) or not all(_LDH.match(part) for part in sub.split(".")):
        raise ValueError(
            f"the MAIL FROM domain must be a label (bounce) or a subdomain of {domain} "
            f"(bounce.{domain}), not {mail_from!r}"
        )
    return normalize_domain(f"{sub}.{domain}")


def check_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise ValueError(f"{token!r} is not an Easy DKIM token (letters and digits, as SES prints them)")
    return token


def inbound_host(region: str) -> str:
    return f"inbound-smtp.{region}.amazonaws.com"


def feedback_host(region: str) -> str:
    return f"feedback-smtp.{region}.amazonses.com"


def dkim_target(token: str) -> str:
    return f"{token}.{SES_DKIM_DOMAIN}"


def required_records(
    domain: str, region: str, dkim_tokens: Sequence[str] = (), mail_from: str | None = None
) -> list[Record]:
    """Every record the domain needs for SES, required ones first; DKIM only for the given tokens."""
    domain = normalize_domain(domain)
    mail_from_name = mail_from_domain(domain, mail_from)
    tokens = [check_token(t) for t in dkim_tokens]
    records = [
        Record(domain, "MX", f"10 {inbound_host(region)}.", "SES receiving", Level.REQUIRED),
        Record(domain, "TXT", quote("v=spf1 include:amazonses.com ~all"), "SPF", Level.REQUIRED),
    ]
    for index, token in enumerate(tokens, 1):
        records.append(
            Record(
                f"{token}._domainkey.{domain}",
                "CNAME",
                f"{dkim_target(token)}.",
                f"DKIM {index}/{len(tokens)}",
                Level.REQUIRED,
            )
        )
    records += [
        Record(f"_dmarc.{domain}", "TXT", quote(DMARC_SUGGESTED), "DMARC", Level.RECOMMENDED),
        Record(mail_from_name, "MX", f"10 {feedback_host(region)}.", "MAIL FROM MX", Level.RECOMMENDED),
        Record(mail_from_name, "TXT", quote(MAIL_FROM_SPF), "MAIL FROM SPF", Level.RECOMMENDED),
    ]
    return records


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
