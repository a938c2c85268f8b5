"""Users' own domains: aliases (and an optional catch-all) on a domain the user proved is theirs."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Mapped

from models import tables
from models.base import Base
from models.tables import DOMAIN_MAX_LENGTH as DOMAIN_MAX_LENGTH
from models.tables import PROBLEM_MAX_LENGTH as PROBLEM_MAX_LENGTH

#: ``pending``: added, ownership not proved yet (no mail accepted). ``verified``: the records are in
#: place; mail is accepted and forwarded. ``failing``: a re-check failed, within the grace period;
#: mail is still forwarded and the owner sees a warning. ``suspended``: failing for longer than the
#: grace period; mail is dropped and new aliases are refused until a check passes again.
DOMAIN_STATUSES = ("pending", "verified", "failing", "suspended")


class UserDomain(Base):
    """A domain a user added (a claim until its ownership is proved). ``name`` is stored as
    :func:`forwarder.ops.dns_doctor.normalize_domain` returns it (ASCII, lower case, no final dot), which
    makes ``owned_name`` unique without regard to case.

    Rows go with their user (ON DELETE CASCADE); deleting an account deletes them explicitly, while
    the aliases on the domain keep their rows, so their addresses stay reserved.
    """

    __table__ = tables.user_domains

    id: Mapped[int]
    user_id: Mapped[int]
    #: Not unique: several accounts may claim a name none of them has proved (issue 12.11).
    name: Mapped[str]
    #: ``name`` once this claim's ownership TXT record verified, NULL before: unique, so the first
    #: account to prove a domain holds it and every other claim of the name stays unproved.
    owned_name: Mapped[str | None]
    #: Published by the owner as ``_othermail.<name> TXT "othermail-verification=<token>"``.
    verification_token: Mapped[str]
    status: Mapped[str]
    #: The Easy DKIM tokens SES gave the domain's identity, as a JSON list (NULL without SES).
    dkim_tokens: Mapped[str | None]
    ses_identity_created_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    #: When checks started failing (kept through ``failing`` and ``suspended``).
    failing_since: Mapped[datetime | None]
    #: What the last check found wrong, for the owner's eyes ("" or NULL: nothing).
    last_problem: Mapped[str | None]
    catch_all: Mapped[bool]
    created_at: Mapped[datetime]

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
