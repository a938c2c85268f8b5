"""Accounts that own aliases and destination mailboxes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Mapped, relationship, validates

from models import tables
from models.base import Base

# defined without the ORM, re-exported from here
from models.columns import normalize_email as normalize_email
from models.limits import EMAIL_MAX_LENGTH as EMAIL_MAX_LENGTH

if TYPE_CHECKING:
    from models.aliases import Alias
    from models.api_tokens import ApiToken
    from models.destinations import Destination
    from models.sessions import UserSession
    from models.two_factor import RecoveryCode, WebAuthnCredential


class User(Base):
    """An account.  Soft-deleted accounts keep their row (``deleted_at``)."""

    __table__ = tables.users

    id: Mapped[int]
    email: Mapped[str]
    password_hash: Mapped[str | None]
    is_admin: Mapped[bool]
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    #: Set whenever the password changes; sessions issued before it are void.
    password_changed_at: Mapped[datetime | None]
    #: When the user proved they control ``email``; NULL until then.
    email_verified_at: Mapped[datetime | None]
    #: Two-way aliases (models/contacts.py): the account-wide sender mode, how a forwarded From
    #: names its sender, and what a one-click unsubscribe does.
    sender_mode: Mapped[str]
    display_format: Mapped[str]
    unsubscribe_action: Mapped[str]
    #: Two-factor sign-in with TOTP (web/two_factor.py): the base32 secret, sealed at rest with the
    #: runtime's contact key (forwarder/adapters/sealing.py); set while enrolling, in force once
    #: ``totp_enabled_at`` is set. ``totp_last_step`` is the last accepted time step: a code of that
    #: step or an earlier one is never accepted again.
    totp_secret: Mapped[str | None]
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]

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
