"""Second sign-in factors besides TOTP (whose secret is on ``users``): recovery codes and passkeys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import MYSQL_TABLE_OPTIONS, Base, BigIntId, UTCDateTime, utcnow

if TYPE_CHECKING:
    from models.users import User

#: Length of a hex SHA-256 digest.
CODE_HASH_LENGTH = 64
CREDENTIAL_ID_MAX_LENGTH = 255
TRANSPORTS_MAX_LENGTH = 255
PASSKEY_NAME_MAX_LENGTH = 100


class RecoveryCode(Base):
    """One single-use recovery code of a user with two-factor sign-in.

    Codes carry 80 random bits, so ``code_hash`` is a plain hex SHA-256 of the normalized code (no
    slow hash needed: there is nothing to brute-force offline). Using a code sets ``used_at``;
    a used code is never accepted again. Rows go with their user (ON DELETE CASCADE).
    """

    __tablename__ = "recovery_codes"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(CODE_HASH_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="recovery_codes")

    def __repr__(self) -> str:
        return f"<RecoveryCode id={self.id} user_id={self.user_id} used={self.used_at is not None}>"


class WebAuthnCredential(Base):
    """A passkey or security key registered by a user (WebAuthn).

    ``credential_id`` is the authenticator's credential id in base64url (unique), ``public_key``
    the COSE public key as registered, ``sign_count`` the last signature counter seen,
    ``transports`` the transports the browser reported, comma separated. Rows go with their user
    (ON DELETE CASCADE).
    """

    __tablename__ = "webauthn_credentials"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(CREDENTIAL_ID_MAX_LENGTH), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    transports: Mapped[str] = mapped_column(String(TRANSPORTS_MAX_LENGTH), default="", server_default="")
    name: Mapped[str] = mapped_column(String(PASSKEY_NAME_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship(back_populates="webauthn_credentials")

    def __repr__(self) -> str:
        return f"<WebAuthnCredential id={self.id} user_id={self.user_id} name={self.name!r}>"
