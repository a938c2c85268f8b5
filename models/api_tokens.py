"""API tokens: bearer secrets a user creates for scripts and integrations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import MYSQL_TABLE_OPTIONS, Base, UTCDateTime, utcnow
from models.limits import TOKEN_NAME_MAX_LENGTH

if TYPE_CHECKING:
    from models.users import User

#: ``read`` may only list/inspect; ``write`` may also create and change aliases.
API_TOKEN_SCOPES = ("read", "write")
#: Length of a hex SHA-256 digest.
TOKEN_HASH_LENGTH = 64
PREFIX_MAX_LENGTH = 16


class ApiToken(Base):
    """A user's API token.

    The secret itself is never stored: ``token_hash`` is the hex SHA-256 of
    it (unique, so a presented token is looked up by its hash), and
    ``prefix`` keeps its first few characters so the UI can tell tokens
    apart.  A token is usable while :meth:`is_active`; revoking sets
    ``revoked_at`` and keeps the row.  Tokens go with their user (ON DELETE
    CASCADE).
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("scope IN ('read', 'write')", name="scope"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    prefix: Mapped[str] = mapped_column(String(PREFIX_MAX_LENGTH))
    scope: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="api_tokens")

    def is_active(self, now: datetime | None = None) -> bool:
        """True unless the token is revoked or expired at ``now`` (default: now).

        ``now`` must be timezone-aware, like every stored timestamp.
        """
        if self.revoked_at is not None:
            return False
        if self.expires_at is None:
            return True
        return (now or utcnow()) < self.expires_at

    def __repr__(self) -> str:
        return f"<ApiToken id={self.id} user_id={self.user_id} prefix={self.prefix!r} scope={self.scope!r}>"
