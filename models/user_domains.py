"""Users' own domains: aliases (and an optional catch-all) on a domain the user proved is theirs."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, Text, UniqueConstraint, event, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_OPTIONS, Base, UTCDateTime, utcnow

#: ``pending``: added, ownership not proved yet (no mail accepted). ``verified``: the records are in
#: place; mail is accepted and forwarded. ``failing``: a re-check failed, within the grace period;
#: mail is still forwarded and the owner sees a warning. ``suspended``: failing for longer than the
#: grace period; mail is dropped and new aliases are refused until a check passes again.
DOMAIN_STATUSES = ("pending", "verified", "failing", "suspended")
#: Longest domain name in presentation form (RFC 1035: 255 octets on the wire).
DOMAIN_MAX_LENGTH = 253
PROBLEM_MAX_LENGTH = 500


class UserDomain(Base):
    """A domain a user added (a claim until its ownership is proved). ``name`` is stored as
    :func:`forwarder.ops.dns_doctor.normalize_domain` returns it (ASCII, lower case, no final dot), which
    makes ``owned_name`` unique without regard to case.

    Rows go with their user (ON DELETE CASCADE); deleting an account deletes them explicitly, while
    the aliases on the domain keep their rows, so their addresses stay reserved.
    """

    __tablename__ = "user_domains"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'verified', 'failing', 'suspended')", name="status"),
        UniqueConstraint("user_id", "name"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Not unique: several accounts may claim a name none of them has proved (issue 12.11).
    name: Mapped[str] = mapped_column(String(DOMAIN_MAX_LENGTH), index=True)
    #: ``name`` once this claim's ownership TXT record verified, NULL before: unique, so the first
    #: account to prove a domain holds it and every other claim of the name stays unproved.
    owned_name: Mapped[str | None] = mapped_column(String(DOMAIN_MAX_LENGTH), unique=True)
    #: Published by the owner as ``_othermail.<name> TXT "othermail-verification=<token>"``.
    verification_token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending")
    #: The Easy DKIM tokens SES gave the domain's identity, as a JSON list (NULL without SES).
    dkim_tokens: Mapped[str | None] = mapped_column(Text)
    ses_identity_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When checks started failing (kept through ``failing`` and ``suspended``).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What the last check found wrong, for the owner's eyes ("" or NULL: nothing).
    last_problem: Mapped[str | None] = mapped_column(String(PROBLEM_MAX_LENGTH))
    catch_all: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The Easy DKIM tokens (empty when the identity was not created in SES)."""
        if not self.dkim_tokens:
            return ()
        return tuple(str(token) for token in json.loads(self.dkim_tokens))

    @tokens.setter
    def tokens(self, value: tuple[str, ...] | list[str]) -> None:
        self.dkim_tokens = json.dumps(list(value)) if value else None

    def __repr__(self) -> str:
        return f"<UserDomain id={self.id} name={self.name!r} status={self.status!r}>"


@event.listens_for(UserDomain, "before_insert")
@event.listens_for(UserDomain, "before_update")
def _owned_past_pending(_mapper: object, _connection: object, domain: UserDomain) -> None:
    """A domain past ``pending`` was proved: it holds its name (a safety net; the web app claims
    the name when the ownership record verifies, before any status change)."""
    if domain.status not in (None, "pending") and domain.owned_name is None:
        domain.owned_name = domain.name
