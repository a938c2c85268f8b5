"""The Easy DKIM checks: three CNAMEs to SES's keys, or a note that they cannot be checked without the tokens."""

from __future__ import annotations

from forwarder.ops.dns_doctor.records import SES_DKIM_DOMAIN, dkim_target
from forwarder.ops.dns_doctor.report import Finding, Level, Record, Status, error, finding, missing
from forwarder.ops.dns_doctor.resolver import Answer


def check_dkim(record: Record, answer: Answer, token: str, region: str) -> Finding:
    if answer.error:
        return error(record, answer)
    values = [r.target.to_text() for r in answer.rdatas]
    targets = {r.target.to_text(omit_final_dot=True).lower() for r in answer.rdatas}
    if not values:
        what = "the name does not exist" if answer.nxdomain else "no CNAME record"
        return missing(record, f"{what}: SES cannot sign for the domain until all three are there")
    # the regional form is what SES prints in some newer regions
    if targets & {dkim_target(token).lower(), f"{token}.dkim.{region}.amazonses.com".lower()}:
        return finding(record, Status.FOUND, values, "SES can publish its DKIM key here")
    return finding(
        record, Status.WRONG, values, f"the CNAME must point at {dkim_target(token)}", fix=record, remove=values
    )


def dkim_unchecked(domain: str) -> tuple[Finding, ...]:
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
