"""What the DNS doctor finds: a :class:`Finding` per record (with the :class:`Record` to create
when it is missing or wrong) gathered in a :class:`Report`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from forwarder.ops.dns_doctor.resolver import Answer

TTL = 3600


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


def replace_value(record: Record, value: str) -> Record:
    return Record(record.name, record.type, value, record.purpose, record.level, record.ttl)


def finding(
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


def missing(record: Record, message: str) -> Finding:
    return finding(record, Status.MISSING, (), message, fix=record)


def error(record: Record, answer: Answer) -> Finding:
    return finding(record, Status.ERROR, (), answer.error)
