"""The account's own email address, proved by a signed link before the account may add destinations.

Sign-up mails the link; the account can ask for it again. Until the address is confirmed the
account cannot make the service mail anyone else (a destination's verification link): otherwise
anyone could sign up with any address and have the service write to any other. Opening the link only
shows a button (mail scanners fetch links); its POST confirms. The token is an HMAC-signed
(``itsdangerous``) pair of the user id and the address, valid for :data:`VERIFY_MAX_AGE`; changing
the address makes older links stale.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.orm import Session

from models import User, utcnow
from web import mailer, ratelimit
from web.services.context import ServiceContext
from web.services.errors import ServiceError, not_found

VERIFY_MAX_AGE = 7 * 24 * 3600
#: The mail's words are all the service's own: no address, name or text a user chose.
SUBJECT = "Confirm your email address for othermail"
BODY = (
    "Someone signed up for othermail with this email address.\n\n"
    "To confirm that it is yours, open this link within seven days and press the button:\n{link}\n\n"
    "If it was not you, ignore this message: nothing will be sent to you again unless you ask.\n"
)


def is_verified(user: User) -> bool:
    return user.email_verified_at is not None


def require_verified(user: User) -> None:
    """Raise unless ``user`` confirmed their own address (before anything mails someone else)."""
    if not is_verified(user):
        raise ServiceError(
            "email_unverified",
            "Confirm your account's email address first: open the link we sent "
            "to it, or send it again from the Destinations page.",
            403,
        )


def _serializer(ctx: ServiceContext) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.secret_key, salt="othermail-account-email")


def send_verification(ctx: ServiceContext, user: User) -> None:
    """Mail ``user`` the link; raises ServiceError (rate limited, mail not sent)."""
    if is_verified(user):
        return
    wait = ratelimit.hit("email-verification", str(user.id))
    if wait is not None:
        raise ServiceError(
            "rate_limited", f"Too many emails asked for; try again in {wait // 60 + 1} minutes.", 429, wait
        )
    token = _serializer(ctx).dumps({"u": user.id, "e": user.email})
    mailer.send_mail(user.email, SUBJECT, BODY.format(link=mailer.link("email.verify", token=token)))


def linked(ctx: ServiceContext, db: Session, token: str) -> User:
    """The user a link names, without confirming anything; ServiceError for a bad, old or stale link."""
    try:
        data = _serializer(ctx).loads(token, max_age=VERIFY_MAX_AGE)
    except SignatureExpired:
        raise ServiceError("expired", "That link has expired; sign in and ask for a new one.", 410) from None
    except BadSignature:
        raise not_found("link") from None
    if not isinstance(data, dict):
        raise not_found("link")
    user = db.get(User, data.get("u"))
    if user is None or user.deleted_at is not None or user.email != data.get("e"):
        raise ServiceError("stale", "That link is for an address that has changed since.", 410)
    return user


def verify(ctx: ServiceContext, db: Session, token: str) -> User:
    return confirm(ctx, db, token)[0]


def confirm(ctx: ServiceContext, db: Session, token: str) -> tuple[User, bool]:
    """Confirm the address a link names; the user, and whether this call is the one that confirmed
    it (a compare-and-set: of two requests at once, only one is)."""
    user = linked(ctx, db, token)
    moved = db.execute(
        update(User)
        .where(User.id == user.id, User.email_verified_at.is_(None))
        .values(email_verified_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]  # DML returns a CursorResult
    db.commit()
    db.refresh(user)
    return user, moved == 1
