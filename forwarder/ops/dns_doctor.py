"""DNS doctor: are the records an alias domain needs for Amazon SES in place?

Pure functions around a dnspython resolver, shared by ``othermail dns check`` and the web app
(users' own domains). Nothing here prints, exits or reads settings.

- :func:`required_records` lists the exact records to create for a domain.
- :func:`check_domain` asks a resolver for each of them and returns a :class:`Report`: one
  :class:`Finding` per record (found, missing, wrong, error or unchecked) with the values found,
  and for each missing or wrong one the record to create (:attr:`Report.to_create`).

Which records are required and which recommended (:class:`Level`):

- required: the MX to SES inbound (no mail arrives without it), an SPF record on the domain that
  includes ``amazonses.com``, and the three Easy DKIM CNAMEs (forwarded mail is sent *from the
  alias*, so SES must sign for the domain, and DKIM is what makes forwarded mail pass DMARC).
- recommended: DMARC (``_dmarc``) and the custom MAIL FROM domain (its MX and SPF). Forwarded mail
  passes DMARC through aligned DKIM without them; a DMARC record with ``p=quarantine`` or
  ``p=reject`` stops others from spoofing the alias domain, and a custom MAIL FROM domain adds
  aligned SPF and keeps ``amazonses.com`` out of the Return-Path.

A report is ``ok`` when every required record is found; recommended ones never make it fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

SES_DKIM_DOMAIN = "dkim.amazonses.com"
SPF_INCLUDE = "include:amazonses.com"
MAIL_FROM_SPF = "v=spf1 include:amazonses.com ~all"
DMARC_SUGGESTED = "v=DMARC1; p=quarantine"
DEFAULT_MAIL_FROM_LABEL = "mail"
TTL = 3600
_LDH = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_INBOUND = re.compile(r"^inbound-smtp\.([a-z0-9-]+)\.amazonaws\.com$")
_FEEDBACK = re.compile(r"^feedback-smtp\.([a-z0-9-]+)\.amazonses\.com$")


class Status(StrEnum):
    FOUND = "found"
    MISSING = "missing"
    WRONG = "wrong"
    ERROR = "error"  # the name server could not answer (timeout, SERVFAIL, REFUSED...)
    UNCHECKED = "unchecked"  # cannot be checked without more input (DKIM without its tokens)


class Level(StrEnum):
    REQUIRED = "required"
    RECOMMENDED = "recommended"


@dataclass(frozen=True)
class Record:
    """One DNS record to create, as a zone file line says it."""

    name: str  # absolute, without the final dot: "_dmarc.example.org"
    type: str  # "MX", "TXT", "CNAME"
    value: str  # zone-file rdata: '10 inbound-smtp.us-east-1.amazonaws.com.', '"v=spf1 ..."'
    purpose: str  # "SES receiving", "SPF", "DKIM 1/3", "DMARC", "MAIL FROM MX", "MAIL FROM SPF"
    level: Level
    ttl: int = TTL

    def zone_line(self) -> str:
        return f"{self.name}. {self.ttl} IN {self.type} {self.value}"


@dataclass(frozen=True)
class Expected:
    """What the domain should publish: the SES region, the Easy DKIM tokens, the MAIL FROM domain.

    ``mail_from`` is a label ("mail", "bounce") or a full name under the domain; ``None`` means
    ``mail.<domain>``. Without ``dkim_tokens`` DKIM is reported as unchecked.
    """

    region: str
    dkim_tokens: tuple[str, ...] = ()
    mail_from: str | None = None


@dataclass(frozen=True)
class Finding:
    purpose: str
    level: Level
    name: str
    type: str
    status: Status
    found_values: tuple[str, ...]  # as zone-file rdata ('10 host.', '"text"')
    expected_value: str
    message: str
    fix: Record | None = None  # what to create, for a missing or wrong record (None: it is there already)
    remove: tuple[str, ...] = ()  # found values to delete, for a wrong record

    @property
    def problem(self) -> bool:
        return self.status in (Status.MISSING, Status.WRONG, Status.ERROR)


@dataclass(frozen=True)
class Report:
    domain: str
    region: str
    server: str  # the name servers asked, for messages: "127.0.0.1:5353" or "the system resolver"
    findings: tuple[Finding, ...]
    domain_exists: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Every required record is found (recommended and unchecked ones do not count)."""
        return self.domain_exists and not any(f.problem for f in self.findings if f.level is Level.REQUIRED)

    @property
    def to_create(self) -> list[Record]:
        return [f.fix for f in self.findings if f.fix is not None and f.status in (Status.MISSING, Status.WRONG)]

    @property
    def to_remove(self) -> list[tuple[str, str, str]]:
        """(name, type, value) of each record to delete."""
        return [(f.name, f.type, value) for f in self.findings if f.status is Status.WRONG for value in f.remove]

    def by_status(self, *statuses: Status, level: Level | None = None) -> list[Finding]:
        return [f for f in self.findings if f.status in statuses and (level is None or f.level is level)]


# ---------------------------------------------------------------- names and the records to create


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
        Record(domain, "TXT", _quote("v=spf1 include:amazonses.com ~all"), "SPF", Level.REQUIRED),
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
        Record(f"_dmarc.{domain}", "TXT", _quote(DMARC_SUGGESTED), "DMARC", Level.RECOMMENDED),
        Record(mail_from_name, "MX", f"10 {feedback_host(region)}.", "MAIL FROM MX", Level.RECOMMENDED),
        Record(mail_from_name, "TXT", _quote(MAIL_FROM_SPF), "MAIL FROM SPF", Level.RECOMMENDED),
    ]
    return records


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------- asking DNS


def make_resolver(nameserver: str | None = None, timeout: float = 3.0) -> dns.resolver.Resolver:
    """A resolver asking ``HOST[:PORT]`` (``[v6]:PORT``) or, without one, the system's resolvers.

    Raises ValueError for an unusable name server and for a system without resolver configuration.
    """
    if nameserver:
        host, port = parse_nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError(f"this system has no name server configured ({exc}); use --nameserver") from None
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or ``V6`` -> (address, port); names are looked up."""
    import ipaddress
    import socket

    text = text.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    else:
        host = text
    if not host:
        raise ValueError(f"{text!r}: no host")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"the name server {host!r} cannot be found: {exc}") from None
    return str(infos[0][4][0]), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def describe_servers(resolver: dns.resolver.Resolver) -> str:
    servers = []
    for ns in resolver.nameservers:
        address = getattr(ns, "address", None)
        if address is None:
            address = str(ns)
            port = resolver.nameserver_ports.get(address, resolver.port)
        else:
            port = getattr(ns, "port", resolver.port)
        if isinstance(port, int):
            servers.append(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
        else:  # DNS over HTTPS or another kind: its own text says it
            servers.append(str(ns))
    return ", ".join(servers) or "no name server"


@dataclass(frozen=True)
class Answer:
    rdatas: tuple[Any, ...] = ()
    nxdomain: bool = False
    error: str = ""  # why the name server gave no usable answer
    fatal: bool = False  # no answer at all (timeout): asking again cannot help in this run


class _Asker:
    """Asks one resolver; after a timeout, stops asking and repeats that error."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.server = describe_servers(resolver)
        self.fatal: Answer | None = None
        self.hints: dict[str, None] = {}  # explanations of the errors met, once each

    def __call__(self, name: str, rdtype: str) -> Answer:
        if self.fatal is not None:
            return self.fatal
        what = f"{name} {rdtype}"
        try:
            answer = self.resolver.resolve(dns.name.from_text(name), rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except dns.resolver.NoAnswer:
            return Answer()
        except dns.resolver.LifetimeTimeout:
            servers = self.server
            noun = "name servers" if "," in servers else "name server"
            self.fatal = Answer(
                error=f"the {noun} {servers} did not answer within {self.resolver.lifetime:g} s", fatal=True
            )
            return self.fatal
        except dns.resolver.NoNameservers as exc:
            message, hints = _no_nameservers(exc, self.server)
            self.hints.update(dict.fromkeys(hints))
            return Answer(error=message)
        except dns.resolver.YXDOMAIN:
            return Answer(error=f"the name {name} is too long after a DNAME substitution")
        except dns.exception.DNSException as exc:
            return Answer(error=f"asking {self.server} for {what} failed: {exc}")
        except OSError as exc:  # e.g. network unreachable, raised outside dnspython's retry loop
            self.fatal = Answer(error=f"the name server {self.server} cannot be reached: {exc}", fatal=True)
            return self.fatal
        rrset = answer.rrset
        wanted = dns.rdatatype.from_text(rdtype)
        if rrset is None or rrset.rdtype != wanted:
            return Answer()
        return Answer(rdatas=tuple(rrset))


HINTS = {
    "SERVFAIL": "SERVFAIL: the name server could not get an answer (a zone that failed to load, a DNSSEC "
    "failure or unreachable authoritative servers); try again later or ask another name server "
    "with --nameserver",
    "REFUSED": "REFUSED: the name server does not serve this zone and does not resolve names for you; ask "
    "one that does with --nameserver",
}


def _no_nameservers(exc: dns.resolver.NoNameservers, server: str) -> tuple[str, list[str]]:
    """The message for a query no server answered usefully, and the hints that explain it."""
    reasons, hints = [], []
    for _nameserver, _tcp, _port, detail, _response in exc.kwargs.get("errors") or []:
        text = str(detail)
        if text == "REFUSED":
            reasons.append(f"the name server {server} refused to answer (REFUSED)")
        elif isinstance(detail, dns.exception.Timeout):
            reasons.append(f"the name server {server} did not answer in time")
        elif isinstance(detail, OSError):
            reasons.append(f"the name server {server} cannot be reached: {detail.strerror or detail}")
        else:
            reasons.append(f"the name server {server} answered {text}")
        if text in HINTS:
            hints.append(HINTS[text])
    return "; ".join(dict.fromkeys(reasons)) or f"no name server among {server} answered", hints


# ------------------------------------------------------------------------------------ the checks


def check_domain(domain: str, resolver: dns.resolver.Resolver, expected: Expected) -> Report:
    """Ask ``resolver`` for every record ``domain`` needs; never raises for what DNS answers.

    ValueError only for an invalid domain, MAIL FROM name or DKIM token.
    """
    domain = normalize_domain(domain)
    mail_from_name = mail_from_domain(domain, expected.mail_from)
    tokens = tuple(check_token(t) for t in expected.dkim_tokens)
    region = expected.region
    ask = _Asker(resolver)
    records = {r.purpose: r for r in required_records(domain, region, tokens, expected.mail_from)}
    notes: list[str] = []

    mx = ask(domain, "MX")
    if mx.nxdomain:
        reason = (
            f"{domain} does not exist in DNS (NXDOMAIN from {ask.server}): register it or delegate it "
            "to your DNS provider, then create the records below"
        )
        absent = tuple(_missing(r, "the domain does not exist") for r in records.values())
        absent += _dkim_unchecked(domain) if not tokens else ()
        return Report(domain, region, ask.server, absent, domain_exists=False, notes=(reason,))

    findings: list[Finding] = [
        _check_mx(
            records["SES receiving"],
            mx,
            inbound_host(region),
            _INBOUND,
            "mail to the aliases goes to SES in",
            "mail to the aliases has nowhere to go",
            strict=False,
        )
    ]
    findings.append(_check_spf(records["SPF"], ask(domain, "TXT"), domain))
    if tokens:
        for index, token in enumerate(tokens, 1):
            record = records[f"DKIM {index}/{len(tokens)}"]
            findings.append(_check_dkim(record, ask(record.name, "CNAME"), token, region))
        if len(tokens) != 3:
            notes.append(f"Easy DKIM gives three tokens; {len(tokens)} given")
    else:
        findings += _dkim_unchecked(domain)
    findings.append(_check_dmarc(records["DMARC"], ask(f"_dmarc.{domain}", "TXT")))
    findings.append(
        _check_mx(
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
        _check_spf(records["MAIL FROM SPF"], ask(mail_from_name, "TXT"), mail_from_name, replacement=MAIL_FROM_SPF)
    )
    return Report(domain, region, ask.server, tuple(findings), notes=tuple(notes) + tuple(ask.hints))


def _finding(
    record: Record,
    status: Status,
    found: Iterable[str],
    message: str,
    fix: Record | None = None,
    remove: Iterable[str] = (),
) -> Finding:
    return Finding(
        record.purpose,
        record.level,
        record.name,
        record.type,
        status,
        tuple(found),
        record.value,
        message,
        fix,
        tuple(remove),
    )


def _missing(record: Record, message: str) -> Finding:
    return _finding(record, Status.MISSING, (), message, fix=record)


def _error(record: Record, answer: Answer) -> Finding:
    return _finding(record, Status.ERROR, (), answer.error)


def _dkim_unchecked(domain: str) -> tuple[Finding, ...]:
    message = (
        "DKIM cannot be checked without the three Easy DKIM tokens: `othermail aws provision` prints "
        f"them (or `aws sesv2 get-email-identity --email-identity {domain} --query "
        "DkimAttributes.Tokens`); pass each with --dkim-token"
    )
    return (
        Finding(
            "DKIM",
            Level.REQUIRED,
            f"<token>._domainkey.{domain}",
            "CNAME",
            Status.UNCHECKED,
            (),
            f"<token>.{SES_DKIM_DOMAIN}.",
            message,
        ),
    )


def _host(rdata: Any) -> str:
    return rdata.exchange.to_text(omit_final_dot=True).lower()


def _check_mx(
    record: Record,
    answer: Answer,
    host: str,
    pattern: re.Pattern[str],
    found_message: str,
    missing_message: str,
    strict: bool,
) -> Finding:
    """SES's MX must be the one mail goes to first; ``strict``: no other MX at all (MAIL FROM)."""
    if answer.error:
        return _error(record, answer)
    ordered = sorted(answer.rdatas, key=lambda r: (r.preference, _host(r)))
    values = [r.to_text() for r in ordered]
    if not ordered:
        what = "the name does not exist" if answer.nxdomain else "no MX record"
        return _missing(record, f"{what}: {missing_message}")
    ses = [r for r in ordered if _host(r) == host]
    others = [r for r in ordered if _host(r) != host]
    region = host.split(".")[1]
    if not ses:
        regions = [m.group(1) for r in others if (m := pattern.match(_host(r)))]
        if regions:
            message = f"the MX points at SES in {', '.join(regions)}, not in {region} (see --region)"
        else:
            message = f"no MX points at {host}"
        return _finding(record, Status.WRONG, values, message, fix=record, remove=values)
    best = min(r.preference for r in ses)
    wrong = others if strict else [r for r in others if r.preference <= best]
    if wrong:
        names = ", ".join(r.to_text() for r in wrong)
        if strict:
            message = f"MX records other than SES's ({names}): remove them"
        else:
            message = f"mail goes to {names} before or alongside SES: remove it, or give SES the lowest number"
        return _finding(record, Status.WRONG, values, message, remove=[r.to_text() for r in wrong])
    message = f"{found_message} {region}"
    if best != 10:
        message += f" (priority {best}; 10 is the usual value, any works when it is the lowest)"
    if others:
        message += f"; backup MX {', '.join(r.to_text() for r in others)} is tried only when SES does not answer"
    return _finding(record, Status.FOUND, values, message)


def _txt(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", errors="replace")


def _is_spf(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def _is_all(term: str) -> bool:
    return term.lower().lstrip("+-~?") == "all" or term.lower().startswith("redirect=")


def _spf_problem(text: str) -> str:
    """Why this SPF record does not let SES send, or "" when it does."""
    terms = text.split()[1:]
    includes = [i for i, t in enumerate(terms) if t.lower() in (SPF_INCLUDE, "+" + SPF_INCLUDE)]
    if not includes:
        return f"the SPF record does not have {SPF_INCLUDE}, so receivers do not accept SES as a sender"
    alls = [i for i, t in enumerate(terms) if _is_all(t)]
    if alls and alls[0] < includes[0]:
        return f"{SPF_INCLUDE} comes after {terms[alls[0]]!r}, so receivers never reach it"
    return ""


def _spf_fix(spf_texts: Sequence[str]) -> str:
    """One SPF record: every mechanism of ``spf_texts`` plus SES's include, before the final ``all``."""
    terms: list[str] = []
    final = ""
    for text in spf_texts:
        for term in text.split()[1:]:
            if _is_all(term):
                final = final or term
            elif term.lower().lstrip("+") != SPF_INCLUDE and term not in terms:
                terms.append(term)
    return " ".join(["v=spf1", *terms, SPF_INCLUDE, final or "~all"])


def _check_spf(record: Record, answer: Answer, name: str, replacement: str | None = None) -> Finding:
    if answer.error:
        return _error(record, answer)
    spf = [_txt(r) for r in answer.rdatas if _is_spf(_txt(r))]
    found = [_quote(t) for t in spf]
    if not spf:
        what = "the name does not exist" if answer.nxdomain else f"no v=spf1 TXT record on {name}"
        return _missing(record, what)
    if len(spf) > 1:
        fix = replace_value(record, _quote(replacement or _spf_fix(spf)))
        return _finding(
            record,
            Status.WRONG,
            found,
            f"{len(spf)} v=spf1 records: with more than one, SPF fails for every sender "
            "(permerror, RFC 7208 section 4.5); merge them into one",
            fix=fix,
            remove=found,
        )
    problem = _spf_problem(spf[0])
    if problem:
        fix = replace_value(record, _quote(replacement or _spf_fix(spf)))
        return _finding(record, Status.WRONG, found, problem, fix=fix, remove=found)
    return _finding(record, Status.FOUND, found, f"SPF lets SES send for {name}")


def replace_value(record: Record, value: str) -> Record:
    return Record(record.name, record.type, value, record.purpose, record.level, record.ttl)


def _check_dkim(record: Record, answer: Answer, token: str, region: str) -> Finding:
    if answer.error:
        return _error(record, answer)
    values = [r.target.to_text() for r in answer.rdatas]
    targets = {r.target.to_text(omit_final_dot=True).lower() for r in answer.rdatas}
    if not values:
        what = "the name does not exist" if answer.nxdomain else "no CNAME record"
        return _missing(record, f"{what}: SES cannot sign for the domain until all three are there")
    # the regional form is what SES prints in some newer regions
    if targets & {dkim_target(token).lower(), f"{token}.dkim.{region}.amazonses.com".lower()}:
        return _finding(record, Status.FOUND, values, "SES can publish its DKIM key here")
    return _finding(
        record, Status.WRONG, values, f"the CNAME must point at {dkim_target(token)}", fix=record, remove=values
    )


def _dmarc_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def _check_dmarc(record: Record, answer: Answer) -> Finding:
    if answer.error:
        return _error(record, answer)
    texts = [_txt(r) for r in answer.rdatas]
    dmarc = [t for t in texts if t.strip().lower().startswith("v=dmarc1")]
    found = [_quote(t) for t in dmarc]
    if not dmarc:
        return _missing(
            record,
            "no DMARC record: anyone can send mail that claims to come from the domain; "
            "publish one with p=quarantine or p=reject",
        )
    if len(dmarc) > 1:
        return _finding(
            record,
            Status.WRONG,
            found,
            f"{len(dmarc)} DMARC records: receivers then ignore DMARC (RFC 7489 section 6.6.3); keep one",
            fix=record,
            remove=found,
        )
    policy = _dmarc_tags(dmarc[0]).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return _finding(
            record,
            Status.WRONG,
            found,
            "the DMARC record has no valid policy (p=none, quarantine or reject)",
            fix=record,
            remove=found,
        )
    if policy == "none":
        return _finding(
            record,
            Status.FOUND,
            found,
            "policy none only monitors: p=quarantine or p=reject is recommended once reports look right",
        )
    return _finding(record, Status.FOUND, found, f"policy {policy}")


# ------------------------------------------------------------------------------------ rendering


def render(report: Report, echo: Callable[[str], None]) -> None:
    """The report as the CLI prints it: one block per record, then "Records to create:"."""
    echo(f"DNS check of {report.domain} (SES region {report.region}, asking {report.server})")
    for note in report.notes:
        echo(f"note: {note}")
    echo("")
    for f in report.findings:
        echo(f"{f.status.value:<9} {f.type:<5} {f.name}  ({f.purpose}, {f.level.value})")
        for value in f.found_values:
            echo(f"{'':<16}found: {value}")
        if f.status in (Status.MISSING, Status.WRONG):
            echo(f"{'':<16}expected: {f.fix.value if f.fix else f.expected_value}")
        echo(f"{'':<16}{f.message}")
    rows = [f for f in report.findings if f.status in (Status.MISSING, Status.WRONG) and (f.fix or f.remove)]
    if rows:
        echo("")
        echo("Records to create:")
        for level in Level:
            if not any(f.level is level for f in rows):
                continue
            echo(f"; {level.value}")
            for f in rows:
                if f.level is level:
                    for value in f.remove:
                        echo(f"; remove {f.name}. {f.type} {value}")
                    if f.fix is not None:
                        echo(f.fix.zone_line())
    echo("")
    echo(summary(report))


def summary(report: Report) -> str:
    required = report.by_status(Status.MISSING, Status.WRONG, level=Level.REQUIRED)
    errors = report.by_status(Status.ERROR)
    recommended = report.by_status(Status.MISSING, Status.WRONG, level=Level.RECOMMENDED)
    unchecked = report.by_status(Status.UNCHECKED)
    parts = []
    if not report.domain_exists:
        parts.append(f"{report.domain} does not exist")
    if required:
        parts.append(f"{len(required)} required record(s) missing or wrong")
    if errors:
        parts.append(f"{len(errors)} record(s) could not be checked")
    if recommended:
        parts.append(f"{len(recommended)} recommended record(s) missing or wrong")
    if unchecked:
        parts.append("DKIM not checked (no --dkim-token)")
    verdict = "OK: every required record is in place" if report.ok else "FAIL"
    return f"{verdict}" + (f" ({'; '.join(parts)})" if parts else "")
