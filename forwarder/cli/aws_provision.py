"""``othermail aws provision``: the SES set-up CloudFormation cannot do, idempotently.

After the stack of ``deploy/aws/othermail.yaml`` exists:

1. activate its receipt rule set (SES has one active rule set per region; CloudFormation creates
   rule sets but cannot activate one);
2. create the domain identity of every service domain with Easy DKIM (SESv2 ``CreateEmailIdentity``)
   or find it, and print the DNS records to publish: the three DKIM CNAMEs and the MX that sends
   the domain's mail to SES;
3. optionally set a custom MAIL FROM domain (``<subdomain>.<domain>``) for SPF alignment, and
   print its MX and SPF records.

Every step reads first and changes only what differs, printing ``created``, ``updated`` or
``unchanged``: a second run makes no change and says so.

The MAIL FROM step uses the SES (v1) API, ``SetIdentityMailFromDomain`` and
``GetIdentityMailFromDomainAttributes``: they edit the same identity attribute as SESv2's
``PutEmailIdentityMailFromAttributes``, and they are the pair moto implements, so the step is tested.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from forwarder.cli.context import CliContext

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"

#: Operation-name prefixes of every call that changes something (tests count these).
MUTATING_PREFIXES = ("Create", "Put", "Set", "Update", "Delete", "Verify", "Clone", "Reorder")

SPF_RECORD = '"v=spf1 include:amazonses.com ~all"'

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class ProvisionError(click.ClickException):
    """Something the operator has to fix first; nothing after it was attempted."""


@dataclass
class Step:
    what: str
    status: str
    records: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.what}: {self.status}"]
        out += [f"  note: {note}" for note in self.notes]
        out += [f"  publish: {record}" for record in self.records]
        return out


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _covers(recipients: Sequence[str], domain: str) -> bool:
    """Whether a receipt rule's recipient list receives mail for every address at ``domain``."""
    if not recipients:
        return True  # a rule without recipients matches every verified domain
    return any(r.lower().rstrip(".") == domain for r in recipients)


def activate_rule_set(ses: Any, name: str, domains: Sequence[str], region: str, replace_active: bool) -> Step:
    from botocore.exceptions import ClientError

    try:
        described = ses.describe_receipt_rule_set(RuleSetName=name)
    except ClientError as exc:
        if _code(exc) == "RuleSetDoesNotExist":
            raise ProvisionError(
                f"the receipt rule set {name!r} does not exist in {region}: create the stack of "
                "deploy/aws/othermail.yaml first (parameter RuleSetName), or pass --rule-set"
            ) from exc
        raise
    notes = []
    rules = [r for r in described.get("Rules", []) if r.get("Enabled")]
    for domain in domains:
        if not any(_covers(r.get("Recipients", []), domain) for r in rules):
            notes.append(f"no enabled rule in {name} receives mail for {domain} (stack parameter Domains)")
    active = (ses.describe_active_receipt_rule_set().get("Metadata") or {}).get("Name")
    what = f"active receipt rule set {name}"
    if active == name:
        return Step(what, UNCHANGED, notes=notes)
    if active and not replace_active:
        raise ProvisionError(
            f"the receipt rule set {active!r} is active in {region}. SES has one active rule set per "
            f"region: activating {name!r} would stop every rule of {active!r}. Move those rules into "
            f"{name!r} (or ours into {active!r} and pass --rule-set {active}), or pass --replace-active."
        )
    ses.set_active_receipt_rule_set(RuleSetName=name)
    if active:
        notes.insert(0, f"replaced {active}, which is no longer active")
    return Step(what, UPDATED if active else CREATED, notes=notes)


def ensure_identity(sesv2: Any, domain: str, region: str) -> Step:
    from botocore.exceptions import ClientError

    try:
        identity = sesv2.get_email_identity(EmailIdentity=domain)
        status = UNCHANGED
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        # No DkimSigningAttributes: Easy DKIM, SES's own keys (2048-bit by default).
        identity = sesv2.create_email_identity(EmailIdentity=domain)
        status = CREATED
    step = Step(f"identity {domain}", status)
    dkim = identity.get("DkimAttributes") or {}
    origin = dkim.get("SigningAttributesOrigin", "AWS_SES")
    tokens = dkim.get("Tokens") or []
    if origin == "EXTERNAL":
        step.notes.append("DKIM is Bring Your Own DKIM: publish your own public key; no CNAMEs from SES")
    elif tokens:
        step.records += [f"{t}._domainkey.{domain} CNAME {t}.dkim.amazonses.com" for t in tokens]
    else:
        step.notes.append(f"SES reported no DKIM tokens yet (DKIM status {dkim.get('Status', 'unknown')}): run again")
    if not dkim.get("SigningEnabled", False):
        step.notes.append(
            f"DKIM signing is off for {domain}: forwarded mail will fail DMARC. Turn it on: aws sesv2 "
            f"put-email-identity-dkim-attributes --email-identity {domain} --signing-enabled"
        )
    if identity.get("VerifiedForSendingStatus"):
        step.notes.append(f"verified for sending (DKIM {dkim.get('Status', 'unknown')})")
    else:
        step.notes.append(
            f"not verified for sending yet (DKIM {dkim.get('Status', 'unknown')}): SES verifies the domain "
            "once the DKIM records resolve, which can take up to 72 hours"
        )
    step.records.append(f"{domain} MX 10 inbound-smtp.{region}.amazonaws.com")
    return step


def ensure_mail_from(ses: Any, domain: str, subdomain: str, region: str) -> Step:
    mail_from = f"{subdomain}.{domain}"
    attributes = ses.get_identity_mail_from_domain_attributes(Identities=[domain])
    current = (attributes.get("MailFromDomainAttributes", {}).get(domain) or {}).get("MailFromDomain")
    if current == mail_from:
        status = UNCHANGED
    else:
        # UseDefaultValue: while the MX record is missing SES falls back to amazonses.com instead
        # of refusing to send.
        ses.set_identity_mail_from_domain(
            Identity=domain, MailFromDomain=mail_from, BehaviorOnMXFailure="UseDefaultValue"
        )
        status = UPDATED if current else CREATED
    step = Step(f"mail-from {mail_from}", status)
    if current and current != mail_from:
        step.notes.append(f"was {current}")
    step.records += [
        f"{mail_from} MX 10 feedback-smtp.{region}.amazonses.com",
        f"{mail_from} TXT {SPF_RECORD}",
    ]
    return step


def provision(
    ses: Any,
    sesv2: Any,
    *,
    domains: Sequence[str],
    rule_set: str,
    region: str,
    mail_from_subdomain: str | None = None,
    replace_active: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Step]:
    """Run every step in order, printing each as it completes; return the steps."""
    steps: list[Step] = []

    def run(step: Step) -> None:
        steps.append(step)
        for line in step.lines():
            echo(line)

    run(activate_rule_set(ses, rule_set, domains, region, replace_active))
    for domain in domains:
        run(ensure_identity(sesv2, domain, region))
        if mail_from_subdomain:
            run(ensure_mail_from(ses, domain, mail_from_subdomain, region))
    changed = sum(step.status != UNCHANGED for step in steps)
    echo(f"{changed} change(s)" if changed else "nothing changed")
    return steps


def make_session(region: str) -> Any:
    """The boto3 session the command uses (a seam for tests). AWS_ENDPOINT_URL is honoured by
    botocore itself."""
    import boto3

    return boto3.session.Session(region_name=region)


def _domain_list(given: Sequence[str], settings_domains: Sequence[str]) -> list[str]:
    domains = [d.strip().lower().rstrip(".") for d in (given or settings_domains) if d.strip()]
    if not domains:
        raise click.UsageError("no domain: pass --domain or set OTHERMAIL_DOMAINS")
    return list(dict.fromkeys(domains))


@click.command("provision")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="A service domain (repeatable; default: OTHERMAIL_DOMAINS).",
)
@click.option(
    "--rule-set",
    default="othermail",
    show_default=True,
    help="The receipt rule set of the stack (its RuleSetName parameter) to activate.",
)
@click.option(
    "--mail-from-subdomain",
    metavar="LABEL",
    help="Set the custom MAIL FROM domain LABEL.<domain> (e.g. mail) for SPF alignment.",
)
@click.option("--region", help="AWS region (default: OTHERMAIL_AWS_REGION or AWS_REGION, else us-east-1).")
@click.option(
    "--replace-active",
    is_flag=True,
    help="Activate the rule set even though another one is active (that one stops receiving).",
)
@click.pass_obj
def provision_command(
    obj: CliContext,
    domains: tuple[str, ...],
    rule_set: str,
    mail_from_subdomain: str | None,
    region: str | None,
    replace_active: bool,
) -> None:
    """Activate the receipt rule set, create the domain identities with Easy DKIM and print the DNS
    records to publish. Idempotent: a second run changes nothing and says so."""
    from botocore.exceptions import BotoCoreError, ClientError

    settings = obj.settings
    names = _domain_list(domains, settings.domains)
    region = region or settings.aws_region
    if mail_from_subdomain is not None:
        mail_from_subdomain = mail_from_subdomain.strip().lower()
        if not _LABEL.match(mail_from_subdomain):
            raise click.BadParameter("must be one DNS label, such as mail", param_hint="--mail-from-subdomain")
        receiving = [f"{mail_from_subdomain}.{d}" for d in names if f"{mail_from_subdomain}.{d}" in names]
        if receiving:
            raise click.BadParameter(
                f"{', '.join(receiving)} receives mail here; a MAIL FROM domain must not",
                param_hint="--mail-from-subdomain",
            )
    session = make_session(region)
    try:
        provision(
            session.client("ses"),
            session.client("sesv2"),
            domains=names,
            rule_set=rule_set,
            region=region,
            mail_from_subdomain=mail_from_subdomain,
            replace_active=replace_active,
            echo=click.echo,
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise click.ClickException(
            f"{exc.operation_name} failed in {region}: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    except BotoCoreError as exc:
        raise click.ClickException(f"AWS cannot be reached in {region}: {exc}") from exc
