"""Two-factor sign-in rules shared by the web app and the operator CLI (issue 16).

TOTP (RFC 6238, through pyotp): the base32 secret is sealed at rest with the runtime's contact key
(:class:`forwarder.adapters.sealing.Sealer`), so a copy of the database alone gives no codes. A
code is accepted for the current 30-second step or one step either side, and only for a step later
than ``User.totp_last_step``: moving that column is one compare-and-set UPDATE, so a code is never
accepted twice, not even by two requests at once.

Recovery codes: ten per user, each 16 characters of base32 (80 random bits), shown once and stored
as their SHA-256 (no slow hash needed at 80 bits); using one is again one compare-and-set UPDATE of
``used_at``, so it works once only.

Two-factor sign-in is *required* for a user with TOTP turned on or with a passkey
(:class:`models.WebAuthnCredential`, web/passkeys.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

import pyotp
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from forwarder.accounts import sessions
from forwarder.accounts.errors import ServiceError
from models import RecoveryCode, User, WebAuthnCredential, utcnow

if TYPE_CHECKING:
    from forwarder.adapters.sealing import Sealer

ISSUER = "othermail"
STEP_SECONDS = 30
#: Steps accepted either side of the current one (a phone's clock a little off still works).
VALID_WINDOW = 1
DIGITS = 6
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
RECOVERY_CODE_LENGTH = 16  # 80 bits
#: The clock codes are checked against (tests set it).
_now = time.time
#: The longest input looked at as a code (a recovery code with its dashes, and some spaces).
CODE_INPUT_MAX = 40


def totp_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret is not None


def has_passkeys(db: Session, user: User) -> bool:
    return bool(db.scalar(select(exists().where(WebAuthnCredential.user_id == user.id))))


def required(db: Session, user: User) -> bool:
    """Whether signing in as ``user`` takes a second step after the password."""
    return totp_enabled(user) or has_passkeys(db, user)


# ------------------------------------------------------------------------------------------- TOTP


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI an authenticator app reads (from the QR code, or typed in)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=email, issuer_name=issuer)


def start_enrolment(db: Session, user: User, sealer: Sealer) -> str:
    """A fresh secret for ``user`` (stored sealed, not in force until confirmed); returned in clear."""
    if totp_enabled(user):
        raise ServiceError("two_factor_on", "Two-factor sign-in with an app is already on.", 409)
    secret = pyotp.random_base32()  # 32 characters: 160 bits, as RFC 4226 recommends
    user.totp_secret = sealer.seal(secret)
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.commit()
    return secret


def enrolling_secret(user: User, sealer: Sealer) -> str | None:
    """The secret being set up (given out, not yet confirmed), in clear; None if there is none."""
    if user.totp_secret is None or user.totp_enabled_at is not None:
        return None
    return sealer.open(user.totp_secret)


def confirm_enrolment(db: Session, user: User, sealer: Sealer, code: str, now: float | None = None) -> list[str]:
    """Turn TOTP on if ``code`` is right for the secret being set up; the new recovery codes.

    The confirming code's step becomes ``totp_last_step``: it cannot sign anyone in afterwards.
    """
    secret = enrolling_secret(user, sealer)
    if secret is None:
        raise ServiceError("no_enrolment", "Start setting up two-factor sign-in again.", 409)
    step = matching_step(secret, code, now)
    if step is None:
        raise ServiceError("wrong_code", "That code is not right. Check the time on your phone, and try a new code.")
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    return new_recovery_codes(db, user)  # commits both


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (within the window around ``now``) whose code is ``code``, or None."""
    digits = "".join(code.split())[:CODE_INPUT_MAX]
    if len(digits) != DIGITS or not (digits.isascii() and digits.isdigit()):  # isdigit alone takes "١" or "²"
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int((_now() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):  # no early exit: same work for all
        if hmac.compare_digest(totp.generate_otp(step), digits):
            found = step
    return found


def verify_totp(db: Session, user: User, sealer: Sealer, code: str, now: float | None = None) -> bool:
    """Whether ``code`` is a TOTP code of ``user`` never accepted before; accepting it is recorded."""
    if not totp_enabled(user):
        return False
    assert user.totp_secret is not None
    step = matching_step(sealer.open(user.totp_secret), code, now)
    if step is None:
        return False
    moved = db.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]  # DML returns a CursorResult
    db.commit()
    db.refresh(user)
    return moved == 1


def disable_totp(db: Session, user: User) -> None:
    """Turn the app off. Recovery codes stay while a passkey still asks for a second step."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    if not has_passkeys(db, user):
        db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.commit()


# ---------------------------------------------------------------------------------- recovery codes


def _normalize_code(code: str) -> str:
    return "".join(ch for ch in code[:CODE_INPUT_MAX].lower() if ch.isalnum())


def hash_code(code: str) -> str:
    return hashlib.sha256(_normalize_code(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def new_recovery_codes(db: Session, user: User) -> list[str]:
    """Replace every recovery code of ``user`` with ten new ones; returned in clear, once."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_code() for _ in range(RECOVERY_CODE_COUNT)]
    now = utcnow()
    db.add_all(RecoveryCode(user_id=user.id, code_hash=hash_code(code), created_at=now) for code in codes)
    db.commit()
    return codes


def use_recovery_code(db: Session, user: User, code: str) -> bool:
    """Whether ``code`` is an unused recovery code of ``user``; it is used up if so."""
    if len(_normalize_code(code)) != RECOVERY_CODE_LENGTH:
        return False
    used = db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_code(code), RecoveryCode.used_at.is_(None)
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]  # DML returns a CursorResult
    db.commit()
    return bool(used)


def has_recovery_codes(db: Session, user: User) -> bool:
    """Whether ``user`` has recovery codes, used or not (a set was made and shown)."""
    return bool(db.scalar(select(exists().where(RecoveryCode.user_id == user.id))))


def recovery_codes_left(db: Session, user: User) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


# ------------------------------------------------------------------------------------ the operator


def reset(db: Session, user: User) -> int:
    """Remove every second factor of ``user`` (TOTP, recovery codes, passkeys) and end every
    session; not committed. The number of sessions ended."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.execute(delete(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id))
    return sessions.end_all(db, user, commit=False)


def reseal(db: Session, sealer: Sealer) -> int:
    """Seal every TOTP secret not under the current key again (``othermail keys rotate``); how many."""
    count = 0
    for user in db.scalars(select(User).where(User.totp_secret.is_not(None))):
        assert user.totp_secret is not None
        if not sealer.is_current(user.totp_secret):
            user.totp_secret = sealer.seal(sealer.open(user.totp_secret))
            count += 1
    db.commit()
    return count
