"""Passkeys and security keys (WebAuthn, through py_webauthn): register, list, remove, sign in.

One ceremony is two requests: the options (with a fresh challenge) go to the browser, whose
authenticator answers; the answer is checked against the challenge. The server's half of a
ceremony, :class:`Ceremony`, is kept by the caller (the web app keeps it in the signed session
cookie) and is good for :data:`CEREMONY_SECONDS` and for one answer only: :func:`consume` records
each challenge as used in the rate-limit table (its primary key refuses a second insert), so an
answer replayed with an old copy of the cookie is refused on every web process.

The relying party (the site a passkey belongs to) is the host of the configured public address,
never the request's ``Host``: a passkey made on https://mail.example.org works there only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
import unicodedata
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from models import RateLimitHit, RecoveryCode, User, WebAuthnCredential, utcnow
from models.two_factor import CREDENTIAL_ID_MAX_LENGTH, PASSKEY_NAME_MAX_LENGTH, TRANSPORTS_MAX_LENGTH
from web.services.errors import ServiceError, not_found

logger = logging.getLogger("othermail.web")

#: How long a ceremony's challenge can be answered (the browser is asked to give up sooner).
CEREMONY_SECONDS = 5 * 60
BROWSER_TIMEOUT_MS = 3 * 60 * 1000
#: Kinds of ceremony: adding a passkey, signing in without a password, the second sign-in step.
PURPOSES = ("register", "signin", "second-factor")
MAX_PASSKEYS = 20
DEFAULT_NAME = "Passkey"
_USED_PREFIX = "webauthn-used:"


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origin: str


def relying_party(public_base: str, name: str = "othermail") -> RelyingParty | None:
    """The relying party of a site reached at ``public_base``, or None when passkeys cannot work
    there: WebAuthn takes a domain name as the relying party id, never an IP address. (Browsers
    also offer passkeys only on https or http://localhost; the page hides its buttons otherwise.)"""
    parts = urlsplit(public_base)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("http", "https"):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        port = parts.port  # a browser's origin leaves the scheme's default port out
        shown = f":{port}" if port and port != {"http": 80, "https": 443}[parts.scheme] else ""
        return RelyingParty(id=host, name=name, origin=f"{parts.scheme}://{host}{shown}")
    return None


@dataclass(frozen=True)
class Ceremony:
    """The server's half of one ceremony: what the answer must match."""

    purpose: str
    challenge: str  # base64url
    issued: int  # epoch seconds
    user_id: int | None = None  # the account it is for (None: password-less, any account)
    name: str = ""  # a new passkey's name

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Ceremony | None:
        if not isinstance(data, dict):
            return None
        try:
            ceremony = cls(**data)
        except TypeError:
            return None
        return ceremony if ceremony.purpose in PURPOSES else None


def _challenge() -> bytes:
    return secrets.token_bytes(32)


def _new_ceremony(purpose: str, challenge: bytes, user_id: int | None = None, name: str = "") -> Ceremony:
    return Ceremony(purpose, bytes_to_base64url(challenge), int(time.time()), user_id, name)


def user_handle(secret_key: str, user: User) -> bytes:
    """The WebAuthn user id of ``user``: a keyed hash, so it tells nothing about the account.
    Credentials are looked up by their own id; this only lets an authenticator keep one passkey
    per account."""
    return hmac.new(f"othermail-webauthn-user:{secret_key}".encode(), str(user.id).encode(), hashlib.sha256).digest()


def clean_name(raw: str) -> str:
    """A passkey's name as shown on the account page: printable, at most the column's length."""
    name = "".join(ch for ch in raw if not unicodedata.category(ch).startswith("C")).strip()
    return name[:PASSKEY_NAME_MAX_LENGTH] or DEFAULT_NAME


def listed(db: Session, user: User) -> list[WebAuthnCredential]:
    return list(
        db.scalars(
            select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id).order_by(WebAuthnCredential.id)
        )
    )


def has_passkeys(db: Session, user: User) -> bool:
    return (
        db.scalars(select(WebAuthnCredential.id).where(WebAuthnCredential.user_id == user.id).limit(1)).first()
        is not None
    )


def _descriptors(credentials: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    known = {item.value for item in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=webauthn.base64url_to_bytes(row.credential_id),
            transports=[AuthenticatorTransport(t) for t in row.transports.split(",") if t in known] or None,
        )
        for row in credentials
    ]


def registration_options(db: Session, rp: RelyingParty, user: User, secret_key: str, name: str) -> tuple[str, Ceremony]:
    """The options (JSON for ``navigator.credentials.create``) to add a passkey to ``user``."""
    existing = listed(db, user)
    if len(existing) >= MAX_PASSKEYS:
        raise ServiceError("too_many_passkeys", f"An account can have at most {MAX_PASSKEYS} passkeys.")
    challenge = _challenge()
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=user_handle(secret_key, user),
        user_display_name=user.email,
        challenge=challenge,
        timeout=BROWSER_TIMEOUT_MS,
        # a discoverable credential signs in without a password; one that is not (an older
        # security key) is still a second factor
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return webauthn.options_to_json(options), _new_ceremony("register", challenge, user.id, clean_name(name))


def authentication_options(
    db: Session, rp: RelyingParty, purpose: str, user: User | None = None
) -> tuple[str, Ceremony]:
    """The options (JSON for ``navigator.credentials.get``) to sign in: without a password
    (``signin``: any discoverable passkey, the authenticator must verify the user), or as the
    second step of ``user`` (``second-factor``: one of that account's passkeys)."""
    assert purpose in ("signin", "second-factor")
    allowed: list[PublicKeyCredentialDescriptor] = []
    if purpose == "second-factor":
        assert user is not None
        allowed = _descriptors(listed(db, user))
        if not allowed:
            raise ServiceError("no_passkeys", "This account has no passkey.")
    challenge = _challenge()
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=BROWSER_TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=(
            UserVerificationRequirement.REQUIRED if purpose == "signin" else UserVerificationRequirement.PREFERRED
        ),
    )
    return webauthn.options_to_json(options), _new_ceremony(purpose, challenge, user.id if user else None)


EXPIRED = ServiceError("ceremony_expired", "That passkey request expired or was used already. Try again.", 400)


def consume(db: Session, ceremony: Ceremony | None, purpose: str, user: User | None = None) -> Ceremony:
    """Take ``ceremony`` for one answer: it must be of ``purpose`` (and ``user``'s), fresh, and
    never answered before, on this process or any other."""
    now = int(time.time())
    if (
        ceremony is None
        or ceremony.purpose != purpose
        or (user is not None and ceremony.user_id != user.id)
        or not 0 <= now - ceremony.issued <= CEREMONY_SECONDS
    ):
        raise EXPIRED
    key = _USED_PREFIX + hashlib.sha256(ceremony.challenge.encode()).hexdigest()
    db.add(RateLimitHit(key=key, window_start=ceremony.issued, count=1))  # pruned a day on (web/ratelimit.py)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise EXPIRED from None
    return ceremony


def finish_registration(
    db: Session, rp: RelyingParty, ceremony: Ceremony, user: User, answer: object
) -> WebAuthnCredential:
    """Check the browser's answer to :func:`registration_options` and keep the new passkey."""
    try:
        credential = parse_registration_credential_json(answer)  # type: ignore[arg-type]  # checked by the parser
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(ceremony.challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except Exception as exc:  # noqa: BLE001 - a malformed answer fails in many ways inside py_webauthn
        logger.info("passkey registration refused: %s: %s", type(exc).__name__, exc)
        raise ServiceError("passkey_refused", "The passkey could not be checked. Try again.") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if len(credential_id) > CREDENTIAL_ID_MAX_LENGTH:
        raise ServiceError("passkey_refused", "This security key's credential id is too long to keep.")
    transports = ",".join(t.value for t in credential.response.transports or [])
    row = WebAuthnCredential(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports[:TRANSPORTS_MAX_LENGTH],
        name=clean_name(ceremony.name),
        created_at=utcnow(),
        backed_up=verified.credential_backed_up,
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise ServiceError("passkey_known", "That passkey is registered already.", 409) from None
    return row


REFUSED = ServiceError("passkey_refused", "That passkey was not accepted.", 403)


def finish_authentication(
    db: Session, rp: RelyingParty, ceremony: Ceremony, answer: object, user: User | None = None
) -> WebAuthnCredential:
    """Check the browser's answer to :func:`authentication_options`; the passkey it used, its
    counter and last use updated. For ``second-factor`` the passkey must be ``user``'s."""
    try:
        credential = parse_authentication_credential_json(answer)  # type: ignore[arg-type]  # checked by the parser
    except Exception:  # noqa: BLE001 - as below
        raise REFUSED from None
    row = db.scalars(select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential.id)).first()
    if row is None or row.user.deleted_at is not None or (user is not None and row.user_id != user.id):
        raise REFUSED
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(ceremony.challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=row.public_key,
            credential_current_sign_count=0,  # compared below, once the signature is known good
            require_user_verification=ceremony.purpose == "signin",
        )
    except Exception as exc:  # noqa: BLE001 - a malformed answer fails in many ways inside py_webauthn
        logger.info("passkey %s refused: %s: %s", row.id, type(exc).__name__, exc)
        raise REFUSED from None
    if (verified.new_sign_count or row.sign_count) and verified.new_sign_count <= row.sign_count:
        # a counter that goes back means two authenticators hold this key: one is a clone
        logger.warning(
            "passkey %s of user %s refused: its signature counter went from %s to %s (a cloned authenticator?)",
            row.id,
            row.user_id,
            row.sign_count,
            verified.new_sign_count,
        )
        raise REFUSED
    row.sign_count = verified.new_sign_count
    row.backed_up = verified.credential_backed_up
    row.last_used_at = utcnow()
    db.commit()
    return row


def owned(db: Session, user: User, passkey_id: int) -> WebAuthnCredential:
    row = db.get(WebAuthnCredential, passkey_id)
    if row is None or row.user_id != user.id:
        raise not_found("passkey")
    return row


def remove(db: Session, user: User, passkey_id: int) -> str:
    """Remove one of ``user``'s passkeys; its name. With the last passkey gone and no app, two-factor
    sign-in is off and the recovery codes go too (as turning the app off does without a passkey)."""
    row = owned(db, user, passkey_id)
    name = row.name
    db.execute(delete(WebAuthnCredential).where(WebAuthnCredential.id == row.id))
    if user.totp_enabled_at is None and not has_passkeys(db, user):
        db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.commit()
    return name
