"""Accounts that own aliases and destination mailboxes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import MYSQL_TABLE_OPTIONS, Base, UTCDateTime, utcnow
from models.columns import normalize_email  # defined without the ORM, re-exported from here
from models.limits import EMAIL_MAX_LENGTH

if TYPE_CHECKING:
    from models.aliases import Alias
    from models.api_tokens import ApiToken
    from models.destinations import Destination
    from models.sessions import UserSession
    from models.two_factor import RecoveryCode, WebAuthnCredential


class User(Base):
    """An account.  Soft-deleted accounts keep their row (``deleted_at``)."""

    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set whenever the password changes; sessions issued before it are void.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the user proved they control ``email``; NULL until then.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Two-way aliases (models/contacts.py): the account-wide sender mode, how a forwarded From
    #: names its sender, and what a one-click unsubscribe does.
    sender_mode: Mapped[str] = mapped_column(String(10), default="any", server_default="any")
    display_format: Mapped[str] = mapped_column(
        String(20), default="name-and-address", server_default="name-and-address"
    )
    unsubscribe_action: Mapped[str] = mapped_column(String(20), default="disable-alias", server_default="disable-alias")
    #: Two-factor sign-in with TOTP (web/two_factor.py): the base32 secret, sealed at rest with the
    #: runtime's contact key (forwarder/adapters/sealing.py); set while enrolling, in force once
    #: ``totp_enabled_at`` is set. ``totp_last_step`` is the last accepted time step: a code of that
    #: step or an earlier one is never accepted again.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    destinations: Mapped[list[Destination]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )
    #: Deleting a user leaves its aliases in place with ``user_id`` NULL (ON
    #: DELETE SET NULL) so their addresses are never issued again.
    aliases: Mapped[list[Alias]] = relationship(back_populates="user", passive_deletes=True)
    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )

    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )
    webauthn_credentials: Mapped[list[WebAuthnCredential]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return normalize_email(value)

    def __repr__(self) -> str:
        return f"<User id={self.id} email={self.email!r}>"
