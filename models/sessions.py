"""Server-side records of signed-in browser sessions, and per-account sign-in failures."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import MYSQL_TABLE_OPTIONS, Base, BigIntId, UTCDateTime, utcnow

if TYPE_CHECKING:
    from models.users import User

#: Length of a hex SHA-256 digest.
SESSION_HASH_LENGTH = 64
#: An IPv6 address in text form is at most 45 characters (with an embedded IPv4 address).
IP_MAX_LENGTH = 45
USER_AGENT_MAX_LENGTH = 255


class UserSession(Base):
    """One signed-in browser session.

    The cookie carries only a random secret; ``token_hash`` is its hex SHA-256, so a copy of this
    table cannot be replayed as a cookie. A session ends by deleting its row (sign-out, password
    change or reset, "end this session", idle or absolute lifetime passed); rows go with their
    user (ON DELETE CASCADE).
    """

    __tablename__ = "user_sessions"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(SESSION_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str] = mapped_column(String(IP_MAX_LENGTH), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(String(USER_AGENT_MAX_LENGTH), default="", server_default="")

    user: Mapped[User] = relationship(back_populates="sessions")

    def __repr__(self) -> str:
        return f"<UserSession id={self.id} user_id={self.user_id}>"


class SigninFailure(Base):
    """Consecutive failed sign-ins for one address, from any IP (the per-account backoff).

    ``key`` is the hex SHA-256 of the normalized address, so unknown addresses that were tried
    are counted the same way as known ones (the backoff must not tell them apart) without
    storing them. A successful sign-in deletes the row.
    """

    __tablename__ = "signin_failures"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    key: Mapped[str] = mapped_column(String(SESSION_HASH_LENGTH), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"<SigninFailure failures={self.failures}>"
