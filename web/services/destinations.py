"""A user's real mailboxes: add, verify by a link sent to them, change, resume, delete.

Nothing is ever forwarded to an unverified destination; changing the address of a destination
makes it unverified until the new address follows its link. Nothing is forwarded to a paused one
either (SES reported it bouncing) until its owner resumes it.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forwarder.adapters.sql.user_domains import RECEIVING
from models import Destination, User, UserDomain, utcnow
from web import mailer, ratelimit
from web.services import account_email
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

VERIFY_MAX_AGE = 7 * 24 * 3600
MAX_DESTINATIONS = 20


def clean_address(ctx: ServiceContext, db: Session, raw: str) -> str:
    address = mailer.accepted_address(raw)  # the validator sign-up uses too
    if address is None:
        raise ServiceError("invalid_email", "Enter a valid email address.")
    domain = address.rpartition("@")[2]
    if domain in ctx.settings.domains or _served_here(db, domain):
        raise ServiceError("invalid_email", "A destination must be a real mailbox, not an alias.")
    return address


def _served_here(db: Session, domain: str) -> bool:
    """Whether mail for ``domain`` comes here: a user's domain that passed verification."""
    found = db.scalar(select(UserDomain.id).where(UserDomain.name == domain, UserDomain.status.in_(sorted(RECEIVING))))
    return found is not None


def owned(db: Session, user: User, destination_id: int) -> Destination:
    found = db.get(Destination, destination_id)
    if found is None or found.user_id != user.id:
        raise not_found("destination")
    return found


def listed(db: Session, user: User) -> list[Destination]:
    return list(db.scalars(select(Destination).where(Destination.user_id == user.id).order_by(Destination.id)))


def _serializer(ctx: ServiceContext) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.secret_key, salt="othermail-destination")


#: The mail's words are all the service's own: not the account's address, nor any text a user chose
#: (whoever adds a destination could otherwise have the service mail their words to anyone).
VERIFY_SUBJECT = "Confirm this address for othermail"
VERIFY_BODY = (
    "An othermail account asked to forward the mail of its aliases to this address.\n\n"
    "To allow it, open this link within seven days and press the button:\n{link}\n\n"
    "If you did not ask for this, ignore this message: nothing will be forwarded to you.\n"
)


def send_verification(ctx: ServiceContext, user: User, destination: Destination) -> None:
    account_email.require_verified(user)
    wait = ratelimit.hit("verification", str(user.id))
    if wait is not None:
        raise ServiceError(
            "rate_limited", f"Too many verification emails; try again in {wait // 60 + 1} minutes.", 429, wait
        )
    token = _serializer(ctx).dumps({"d": destination.id, "e": destination.email})
    link = mailer.link("destinations.verify", token=token)
    mailer.send_mail(destination.email, VERIFY_SUBJECT, VERIFY_BODY.format(link=link))


def _proved(user: User, destination: Destination) -> bool:
    """Verify a destination that is the account's own confirmed address at once: its owner already
    followed a link sent there. True when it was."""
    if destination.email == user.email and account_email.is_verified(user):
        destination.verified_at = utcnow()
        return True
    return False


def add(ctx: ServiceContext, db: Session, user: User, raw_address: str) -> Destination:
    account_email.require_verified(user)
    address = clean_address(ctx, db, raw_address)
    if len(listed(db, user)) >= MAX_DESTINATIONS:
        raise ServiceError("limit_reached", f"At most {MAX_DESTINATIONS} destinations per account.", 409)
    destination = Destination(user_id=user.id, email=address)
    proved = _proved(user, destination)
    db.add(destination)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise ServiceError("duplicate", "You already added that address.", 409) from None
    if not proved:
        send_verification(ctx, user, destination)
    return destination


def change(ctx: ServiceContext, db: Session, user: User, destination: Destination, raw_address: str) -> Destination:
    account_email.require_verified(user)
    address = clean_address(ctx, db, raw_address)
    if address == destination.email:
        return destination
    destination.email = address
    destination.verified_at = None
    proved = _proved(user, destination)
    if destination.is_paused:  # the pause was about the old mailbox
        _unpause(destination)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise ServiceError("duplicate", "You already added that address.", 409) from None
    if not proved:
        send_verification(ctx, user, destination)
    return destination


def linked(ctx: ServiceContext, db: Session, token: str) -> Destination:
    """The destination a verification link names, without verifying it (opening the link only asks:
    mail scanners fetch links); raises :class:`ServiceError` for a bad, expired or stale link."""
    try:
        data = _serializer(ctx).loads(token, max_age=VERIFY_MAX_AGE)
    except SignatureExpired:
        raise ServiceError("expired", "That link has expired; ask for a new one.", 410) from None
    except BadSignature:
        raise not_found("link") from None
    if not isinstance(data, dict):
        raise not_found("link")
    destination = db.get(Destination, data.get("d"))
    if destination is None or destination.email != data.get("e"):
        raise ServiceError("stale", "That link is for an address that has changed since.", 410)
    return destination


def verify(ctx: ServiceContext, db: Session, token: str) -> Destination:
    """Verify the destination of a link: the confirmation page's POST only."""
    destination = linked(ctx, db, token)
    if destination.verified_at is None:
        destination.verified_at = utcnow()
        db.commit()
    return destination


def resume(db: Session, destination: Destination) -> Destination:
    """Forward to a destination SES feedback paused (forwarder/adapters/sql/feedback_store.py) again; its soft
    bounces start counting from zero. Its bounce and complaint totals stay (the admin rates)."""
    _unpause(destination)
    db.commit()
    return destination


def _unpause(destination: Destination) -> None:
    destination.paused_at = None
    destination.pause_reason = ""
    destination.soft_bounce_count = 0
    destination.last_soft_bounce_at = None


def paused(destinations: list[Destination]) -> list[Destination]:
    return [d for d in destinations if d.is_paused]


def delete(db: Session, destination: Destination) -> None:
    db.delete(destination)
    db.commit()
