"""Checking users' domains (DNS and SES) and managing their SES identities.

Shared by the web app ("verify now", adding and deleting a domain) and ``othermail domains
recheck``. :func:`check` asks a resolver for the ownership TXT record and, when the service sends
through SES, for every record :func:`forwarder.ops.dns_doctor.check_domain` checks, and takes SES's own
verdict on the domain's DKIM into account; :func:`apply_check` stores the outcome through
:func:`forwarder.adapters.sql.user_domains.next_status`. Nothing here reads settings or builds clients: the SES
client and the resolver come from the edge. Not imported by the forwarder Lambda.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from forwarder.adapters.sql.user_domains import (
    DEFAULT_GRACE,
    OWNERSHIP_PREFIX,
    CheckResult,
    Transition,
    next_status,
    ownership_name,
    ownership_value,
)
from forwarder.errors import SesError
from forwarder.ops import dns_doctor
from forwarder.ops.dns_doctor import Finding, Level, Record, Report, Status
from models import UserDomain
from models.user_domains import PROBLEM_MAX_LENGTH

NO_IDENTITY = "SES has no identity for the domain any more"


def ownership_record(domain: str, token: str) -> Record:
    return Record(ownership_name(domain), "TXT", f'"{ownership_value(token)}"', "ownership", Level.REQUIRED)


def records_to_publish(domain: str, token: str, region: str, dkim_tokens: Sequence[str], ses: bool) -> list[Record]:
    """The ownership TXT, then (with SES) every record :mod:`forwarder.ops.dns_doctor` checks."""
    records = [ownership_record(domain, token)]
    if ses:
        records += dns_doctor.required_records(domain, region, dkim_tokens)
    return records


# ---------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class DomainCheck:
    """Everything one check found: the ownership TXT, the SES records (with SES) and SES's view."""

    domain: str
    result: CheckResult
    ownership: Finding
    report: Report | None  # None when the service does not send through SES
    ses_message: str = ""  # what SES said of the identity (with SES)
    problems: tuple[str, ...] = field(default=())

    @property
    def findings(self) -> tuple[Finding, ...]:
        return (self.ownership, *(self.report.findings if self.report else ()))

    @property
    def summary(self) -> str:
        if self.result is CheckResult.PASS:
            return "every required record is in place"
        return "; ".join(self.problems) or "the check failed"


def _txt(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", errors="replace")


def check_ownership(domain: str, token: str, resolver: dns.resolver.Resolver) -> Finding:
    """Whether ``_othermail.<domain>`` has the TXT value of ``token`` (other values may sit beside it)."""
    record = ownership_record(domain, token)
    wanted = ownership_value(token)
    server = dns_doctor.describe_servers(resolver)
    try:
        answer = resolver.resolve(dns.name.from_text(record.name), "TXT", raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return Finding(
            record.purpose,
            record.level,
            record.name,
            "TXT",
            Status.MISSING,
            (),
            record.value,
            "the name does not exist: publish the ownership record",
            fix=record,
        )
    except dns.resolver.NoAnswer:
        answer = None
    except dns.resolver.LifetimeTimeout:
        return Finding(
            record.purpose,
            record.level,
            record.name,
            "TXT",
            Status.ERROR,
            (),
            record.value,
            f"the name server {server} did not answer in time",
        )
    except dns.resolver.NoNameservers:
        return Finding(
            record.purpose,
            record.level,
            record.name,
            "TXT",
            Status.ERROR,
            (),
            record.value,
            f"no name server among {server} gave an answer (SERVFAIL or REFUSED)",
        )
    except (dns.exception.DNSException, OSError) as exc:
        return Finding(
            record.purpose,
            record.level,
            record.name,
            "TXT",
            Status.ERROR,
            (),
            record.value,
            f"the name server {server} could not be asked: {exc}",
        )
    rrset = answer.rrset if answer is not None else None
    texts = [_txt(r) for r in rrset] if rrset is not None and rrset.rdtype == dns.rdatatype.TXT else []
    found = tuple(f'"{t}"' for t in texts)
    if any(t.strip() == wanted for t in texts):
        return Finding(
            record.purpose, record.level, record.name, "TXT", Status.FOUND, found, record.value, "the domain is yours"
        )
    ours = [t for t in texts if t.strip().startswith(OWNERSHIP_PREFIX)]
    if ours:
        return Finding(
            record.purpose,
            record.level,
            record.name,
            "TXT",
            Status.WRONG,
            found,
            record.value,
            "an ownership value is there, but not this domain's token: publish the value shown",
            fix=record,
        )
    return Finding(
        record.purpose,
        record.level,
        record.name,
        "TXT",
        Status.MISSING,
        found,
        record.value,
        "no ownership record: publish it",
        fix=record,
    )


def check(
    domain: str,
    token: str,
    resolver: dns.resolver.Resolver,
    *,
    ses: bool,
    region: str = "us-east-1",
    dkim_tokens: Sequence[str] = (),
    ses_verified: bool | None = None,
    ses_message: str = "",
) -> DomainCheck:
    """Check a domain: the ownership TXT and, with ``ses``, the SES records and SES's own verdict.

    ``ses_verified`` is SES's ``VerifiedForSendingStatus`` of the identity (None: SES could not be
    asked). Without SES only ownership is checked: receiving and signing then depend on the
    operator's MX host and relay, which this service cannot see.
    """
    ownership = check_ownership(domain, token, resolver)
    problems: list[str] = []
    unknown = ownership.status is Status.ERROR
    if ownership.status is Status.ERROR:
        problems.append(f"ownership record not checked: {ownership.message}")
    elif ownership.status is not Status.FOUND:
        problems.append(f"ownership record {ownership.name}: {ownership.message}")
    report = None
    if ses:
        report = dns_doctor.check_domain(domain, resolver, dns_doctor.Expected(region, tuple(dkim_tokens)))
        for finding in report.findings:
            if finding.level is not Level.REQUIRED:
                continue
            if finding.status is Status.ERROR:
                unknown = True
                problems.append(f"{finding.purpose} not checked: {finding.message}")
            elif finding.status in (Status.MISSING, Status.WRONG):
                problems.append(f"{finding.purpose} ({finding.type} {finding.name}): {finding.message}")
        if not report.domain_exists:
            problems.append(f"{domain} does not exist in DNS")
        if not dkim_tokens:
            problems.append("SES gave no DKIM tokens for the domain yet")
        if ses_verified is None:
            unknown = True
            problems.append(f"SES could not be asked about the domain{': ' + ses_message if ses_message else ''}")
        elif ses_message == NO_IDENTITY:
            problems.append(f"{NO_IDENTITY}: remove the domain and add it again")
        elif not ses_verified:
            problems.append(
                "SES has not verified the DKIM records yet (it checks them by itself, usually "
                "within an hour of their publication)"
            )
    if unknown and not _definite_failure(ownership, report):
        result = CheckResult.UNKNOWN
    elif problems:
        result = CheckResult.FAIL
    else:
        result = CheckResult.PASS
    return DomainCheck(domain, result, ownership, report, ses_message, tuple(problems))


def _definite_failure(ownership: Finding, report: Report | None) -> bool:
    """A record answered as missing or wrong is a failure even if another could not be checked."""
    if ownership.status in (Status.MISSING, Status.WRONG):
        return True
    if report is None:
        return False
    return any(f.status in (Status.MISSING, Status.WRONG) for f in report.findings if f.level is Level.REQUIRED)


def apply_check(domain: UserDomain, result: DomainCheck, now: datetime, grace: timedelta = DEFAULT_GRACE) -> Transition:
    """Store a check's outcome on the row (the caller commits)."""
    transition = next_status(domain.status, domain.failing_since, result.result, now, grace)
    if transition.status == "verified" and domain.status != "verified":
        domain.verified_at = now
    domain.status = transition.status
    domain.failing_since = transition.failing_since
    domain.last_checked_at = now
    domain.last_problem = "" if result.result is CheckResult.PASS else result.summary[:PROBLEM_MAX_LENGTH]
    return transition


# ------------------------------------------------------------------------------------------- SES


def _client_error(exc: Exception) -> SesError:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    return SesError(str(error.get("Code") or exc.__class__.__name__), str(error.get("Message") or exc))


#: The tag on every SES identity othermail creates for a user's domain. The serverless forwarder's
#: role may send as identities carrying it (deploy/aws/othermail.yaml, ``SendAsUserDomains``), and
#: the web app's role may delete only those (zappa_settings.json), never the service's own.
USER_DOMAIN_TAG = {"Key": "othermail", "Value": "user-domain"}
#: SesError code for an identity that exists in SES but that othermail did not create.
IDENTITY_IN_USE = "IdentityInUse"


def create_identity(sesv2: Any, domain: str) -> tuple[str, ...]:
    """Create the domain's SES identity with Easy DKIM, tagged :data:`USER_DOMAIN_TAG` (or find
    the one created before); its DKIM tokens.

    An identity for the domain that exists without the tag belongs to someone else in the AWS
    account (the operator's own domain, another service): it is left alone, and the error says so.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        try:
            identity = sesv2.create_email_identity(EmailIdentity=domain, Tags=[dict(USER_DOMAIN_TAG)])
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") != "AlreadyExistsException":
                raise
            identity = sesv2.get_email_identity(EmailIdentity=domain)
            if USER_DOMAIN_TAG not in (identity.get("Tags") or []):
                raise SesError(
                    IDENTITY_IN_USE,
                    f"the SES identity {domain} exists and was not created by othermail "
                    f"(it has no tag othermail=user-domain)",
                ) from exc
    except (ClientError, BotoCoreError) as exc:
        raise _client_error(exc) from exc
    return tuple((identity.get("DkimAttributes") or {}).get("Tokens") or ())


def identity_status(sesv2: Any, domain: str) -> tuple[bool, tuple[str, ...], str]:
    """(verified for sending, DKIM tokens, DKIM status) of the domain's SES identity."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        identity = sesv2.get_email_identity(EmailIdentity=domain)
    except (ClientError, BotoCoreError) as exc:
        raise _client_error(exc) from exc
    dkim = identity.get("DkimAttributes") or {}
    return bool(identity.get("VerifiedForSendingStatus")), tuple(dkim.get("Tokens") or ()), str(dkim.get("Status", ""))


def delete_identity(sesv2: Any, domain: str) -> None:
    """Delete the domain's SES identity; one that is already gone is fine."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sesv2.delete_email_identity(EmailIdentity=domain)
    except ClientError as exc:
        if (exc.response.get("Error") or {}).get("Code") != "NotFoundException":
            raise _client_error(exc) from exc
    except BotoCoreError as exc:
        raise _client_error(exc) from exc


def check_with_ses(domain: UserDomain, resolver: dns.resolver.Resolver, sesv2: Any | None, region: str) -> DomainCheck:
    """:func:`check` for a stored domain: asks SES first when ``sesv2`` is given (and stores DKIM
    tokens SES gives when the row has none yet)."""
    if sesv2 is None:
        return check(domain.name, domain.verification_token, resolver, ses=False)
    verified: bool | None = None
    message = ""
    try:
        verified, tokens, dkim_status = identity_status(sesv2, domain.name)
        if tokens and not domain.tokens:
            domain.tokens = tokens
        message = f"DKIM {dkim_status.lower() or 'status unknown'}"
    except SesError as exc:
        if exc.code == "NotFoundException":  # the identity is gone: SES cannot send for the domain
            verified, message = False, NO_IDENTITY
        else:
            message = f"SES answered {exc.code}"
    return check(
        domain.name,
        domain.verification_token,
        resolver,
        ses=True,
        region=region,
        dkim_tokens=domain.tokens,
        ses_verified=verified,
        ses_message=message,
    )
