"""A user's own domains: add one (a claim), prove it, its SES identity, catch-all, delete.

Adding a domain only claims it: a row with an ownership token, and no SES identity. Claims block
nobody: several accounts may claim the same name. The first whose ownership TXT record verifies
holds the domain (``owned_name``, unique); every other claim of it stays unproved and is told, in
one message naming nobody, that the domain is in use here. Only then, when the service sends
through SES (``OTHERMAIL_SENDER=ses``), is the domain's SES identity created with Easy DKIM, and
its three DKIM tokens kept, so the page lists every record to publish: the ownership TXT and the
records of :func:`forwarder.ops.dns_doctor.required_records`. Before that the page lists only the
ownership TXT. Without SES (one box sending through the local outbox or an SMTP relay) no identity
is created and the page says that signing the domain's mail is up to the operator's relay; only
ownership is then checked. "Verify now" and ``othermail domains recheck`` run the same check
(:func:`forwarder.ops.domain_checks.check_with_ses`).

Deleting a domain deletes its aliases (their addresses stay reserved) and its SES identity.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forwarder.adapters.sql import user_domains as core
from forwarder.ops import dns_doctor
from forwarder.ops import domain_checks as checks
from forwarder.ops.dns_doctor import Record
from models import Alias, Destination, User, UserDomain, alias_destinations, utcnow
from models.user_domains import DOMAIN_MAX_LENGTH
from web import ratelimit
from web.services import contacts
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

logger = logging.getLogger("othermail.web.domains")

MAX_DOMAINS = 10
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def in_use(name: str) -> ServiceError:
    """The one answer for a domain another account proved: it names nobody."""
    return ServiceError("taken", f"{name} is already in use in this service. If it is yours, ask the operator.", 409)


def resolver(ctx: ServiceContext) -> Any:
    """A resolver for ``DNS_NAMESERVER`` ("host:port"; default: the system's resolvers)."""
    try:
        return dns_doctor.make_resolver(ctx.dns_nameserver, ctx.dns_timeout)
    except ValueError as exc:
        raise ServiceError("dns_unavailable", f"DNS cannot be asked from here: {exc}", 503) from None


def clean_name(ctx: ServiceContext, raw: str) -> str:
    """The normalized name, or a ServiceError: a host name (letters, digits, hyphens; IDNA is
    encoded) that is not one of the service's own domains nor under one."""
    problem = ServiceError("invalid_domain", "Enter a domain name such as example.org.")
    if not isinstance(raw, str) or "\x00" in raw or len(raw) > 2 * DOMAIN_MAX_LENGTH:
        raise problem
    try:
        name = dns_doctor.normalize_domain(raw)
    except ValueError:
        raise problem from None
    labels = name.split(".")
    if len(name) > DOMAIN_MAX_LENGTH or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise problem
    for own in ctx.settings.domains:
        if name == own or name.endswith("." + own):
            raise ServiceError("invalid_domain", f"{name} belongs to this service; add a domain of your own.")
    return name


def owned(db: Session, user: User, domain_id: int) -> UserDomain:
    found = db.get(UserDomain, domain_id)
    if found is None or found.user_id != user.id:
        raise not_found("domain")
    return found


def listed(db: Session, user: User) -> list[UserDomain]:
    return list(db.scalars(select(UserDomain).where(UserDomain.user_id == user.id).order_by(UserDomain.name)))


def serving_names(db: Session, user: User) -> list[str]:
    """The user's domains that take new aliases (verified, or failing within the grace period)."""
    return [d.name for d in listed(db, user) if d.status in core.SERVING]


def check_alias_domain(ctx: ServiceContext, db: Session, user: User, name: str) -> None:
    """Raise unless ``name`` is one of the user's domains that takes new aliases.

    Another account's domain gets the same answer as one nobody added.
    """
    found = db.scalar(select(UserDomain).where(UserDomain.name == name, UserDomain.user_id == user.id))
    if found is None:
        domains = ", ".join(ctx.settings.domains)
        raise ServiceError("invalid_domain", f"Aliases live on {domains} or on a domain of yours you verified.")
    if found.status == "pending":
        raise ServiceError("invalid_domain", f"Verify {name} first: its page lists the records to publish.")
    if found.status not in core.SERVING:
        raise ServiceError(
            "invalid_domain",
            f"The domain {name} is suspended: its DNS records failed the checks "
            "for too long. Fix them and verify it again.",
        )


def _limited(user_id: int) -> None:
    wait = ratelimit.hit("domain-check", str(user_id))
    if wait is not None:
        raise ServiceError("rate_limited", f"Too many domain checks; try again in {wait // 60 + 1} minutes.", 429, wait)


def _ses_failed(name: str, exc: Exception) -> ServiceError:
    """SES's own words go to the log (they can name the AWS account and its roles), not to the user."""
    logger.warning("SES could not create the identity of %s: %s", name, exc)
    if isinstance(exc, checks.SesError) and exc.code == checks.IDENTITY_IN_USE:
        return ServiceError(
            "taken",
            f"{name} is already set up in this service's Amazon SES account for another "
            "use. The operator can hand it over or remove it there.",
            409,
        )
    return ServiceError("ses_error", f"Amazon SES did not take {name} just now. Try again later.", 502)


def add(ctx: ServiceContext, db: Session, user: User, raw_name: str) -> UserDomain:
    """Claim a domain: nothing is created in SES until its ownership record verifies."""
    name = clean_name(ctx, raw_name)
    if len(listed(db, user)) >= MAX_DOMAINS:
        raise ServiceError("limit_reached", f"At most {MAX_DOMAINS} domains per account.", 409)
    _limited(user.id)
    if db.scalar(select(UserDomain.id).where(UserDomain.name == name, UserDomain.user_id == user.id)) is not None:
        raise ServiceError("duplicate", f"You already added {name}.", 409)
    if db.scalar(select(UserDomain.id).where(UserDomain.owned_name == name)) is not None:
        raise in_use(name)
    domain = UserDomain(
        user_id=user.id, name=name, verification_token=core.new_token(), status="pending", created_at=utcnow()
    )
    db.add(domain)
    try:
        db.commit()
    except IntegrityError:  # the same account, twice at once
        db.rollback()
        raise ServiceError("duplicate", f"You already added {name}.", 409) from None
    return domain


def proved(domain: UserDomain) -> bool:
    """Whether this claim's ownership record verified (it holds the name)."""
    return domain.owned_name is not None


def records(ctx: ServiceContext, domain: UserDomain) -> list[Record]:
    """Every record to publish, the ownership TXT first; only that one until it verified."""
    return checks.records_to_publish(
        domain.name,
        domain.verification_token,
        ctx.settings.aws_region,
        domain.tokens,
        ses=ctx.uses_ses and proved(domain),
    )


def verify(ctx: ServiceContext, db: Session, domain: UserDomain) -> checks.DomainCheck:
    """Check the domain now and store the new status. An unproved claim is checked for its
    ownership record only; once that verifies, the claim takes the name (unless another account
    proved it first) and, with SES, its identity is created; then every record is checked."""
    _limited(domain.user_id)
    if not proved(domain):
        ownership = checks.check(domain.name, domain.verification_token, resolver(ctx), ses=False)
        if ownership.result is not core.CheckResult.PASS:
            checks.apply_check(domain, ownership, utcnow(), ctx.domain_grace)
            db.commit()
            return ownership
        _claim(db, domain)
        if not ctx.uses_ses:
            checks.apply_check(domain, ownership, utcnow(), ctx.domain_grace)
            db.commit()
            return ownership
    client = ctx.sesv2 if ctx.uses_ses else None
    if client is not None and domain.ses_identity_created_at is None:  # just proved, or added without SES
        try:
            domain.tokens = checks.create_identity(client, domain.name)
        except checks.SesError as exc:
            db.rollback()  # the claim too: it is tried again with the identity
            raise _ses_failed(domain.name, exc) from None
        domain.ses_identity_created_at = utcnow()
    result = checks.check_with_ses(domain, resolver(ctx), client, ctx.settings.aws_region)
    checks.apply_check(domain, result, utcnow(), ctx.domain_grace)
    db.commit()
    return result


def _claim(db: Session, domain: UserDomain) -> None:
    """Take the name for this claim (its ownership record verified), or :func:`in_use` when another
    account's claim took it first."""
    domain.owned_name = domain.name
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise in_use(domain.name) from None


def set_catch_all(db: Session, domain: UserDomain, enabled: bool) -> UserDomain:
    if enabled and domain.status not in core.SERVING:
        raise ServiceError("not_verified", "The catch-all works on a verified domain only: verify it first.", 409)
    domain.catch_all = enabled
    db.commit()
    return domain


def destinations_on(db: Session, domain: UserDomain) -> list[Destination]:
    """The owner's destinations at this domain: once its MX points here, they would loop back."""
    return [
        d
        for d in db.scalars(select(Destination).where(Destination.user_id == domain.user_id))
        if d.email.rpartition("@")[2] == domain.name
    ]


def alias_count(db: Session, domain: UserDomain) -> int:
    return len(_live_alias_ids(db, domain))


def _live_alias_ids(db: Session, domain: UserDomain) -> list[int]:
    # Domain names hold no LIKE wildcards (letters, digits, '-' and '.').
    return list(
        db.scalars(
            select(Alias.id).where(
                Alias.user_id == domain.user_id, Alias.deleted_at.is_(None), Alias.address.like(f"%@{domain.name}")
            )
        )
    )


def _forget_identity(ctx: ServiceContext, domain: UserDomain) -> None:
    """Delete the SES identity (best effort: the row goes in any case, and an operator can remove a
    leftover identity with ``aws sesv2 delete-email-identity``)."""
    if domain.ses_identity_created_at is None or not ctx.uses_ses:
        return
    try:
        checks.delete_identity(ctx.sesv2, domain.name)
    except checks.SesError as exc:
        logger.warning("could not delete the SES identity of %s: %s", domain.name, exc)


def delete(ctx: ServiceContext, db: Session, domain: UserDomain) -> int:
    """Delete the domain and its aliases (their addresses stay reserved); how many aliases went."""
    ids = _live_alias_ids(db, domain)
    if ids:
        db.execute(sql_delete(alias_destinations).where(alias_destinations.c.alias_id.in_(ids)))
        contacts.forget_two_way(db, ids)
        db.execute(
            update(Alias)
            .where(Alias.id.in_(ids))
            .values(deleted_at=utcnow(), enabled=False, label=None, note=None)
            .execution_options(synchronize_session=False)
        )
    _forget_identity(ctx, domain)
    db.delete(domain)
    db.commit()
    db.expire_all()
    return len(ids)


def forget_all(ctx: ServiceContext, db: Session, user: User) -> None:
    """For account deletion: every domain row of the user goes, with its SES identity (the caller
    retires the aliases and commits)."""
    for domain in listed(db, user):
        _forget_identity(ctx, domain)
        db.delete(domain)
    db.flush()


def export(db: Session, user: User) -> list[dict[str, Any]]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value else None

    return [
        {
            "id": d.id,
            "name": d.name,
            "status": d.status,
            "catch_all": d.catch_all,
            "created_at": when(d.created_at),
            "verified_at": when(d.verified_at),
            "last_checked_at": when(d.last_checked_at),
            "failing_since": when(d.failing_since),
        }
        for d in listed(db, user)
    ]
