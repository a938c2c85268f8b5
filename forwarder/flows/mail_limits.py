"""How many messages an alias, and all the aliases of one user, may forward per hour and per day.

Windows are fixed, in UTC: an hour from ``hh:00`` to the next ``hh:00``, a day from midnight UTC to
the next midnight. Each (alias or user, hour or day) counts in a row of ``rate_limit_hits`` keyed
``mail:<alias|user>:<id>:<hour|day>`` with the window's start in epoch seconds; the hour and the
day in the key keep an hour window at midnight apart from that day's window. The counting itself
(one upsert for all the windows of a message, in the claim's transaction) is
forwarder/adapters/sql/limit_windows.py; this module is plain values.

A window's row is inserted by its first message. Past windows are deleted by the scheduled prune
(``SqlDirectory.prune_limit_windows``: the windows of days before today), not per message. Current
windows also survive the web app's pruning of ``rate_limit_hits`` (web/ratelimit.py), which deletes
windows that started more than a day before its own current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

HOUR = 3600
DAY = 86400

Scope = Literal["alias", "user"]
Period = Literal["hour", "day"]

_SECONDS: dict[Period, int] = {"hour": HOUR, "day": DAY}
_OWNERS: dict[Scope, str] = {"alias": "the alias's", "user": "the account's"}


@dataclass(frozen=True, slots=True)
class Window:
    """One limit's current window: whose it is, its limit and where it is counted."""

    scope: Scope
    period: Period
    limit: int
    owner_id: int
    start: int  # epoch seconds

    @property
    def key(self) -> str:
        return f"mail:{self.scope}:{self.owner_id}:{self.period}"

    @property
    def resets_at(self) -> datetime:
        return datetime.fromtimestamp(self.start + _SECONDS[self.period], UTC)

    def reason(self) -> str:
        """Why a message was not forwarded, for the owner's activity list."""
        messages = "message" if self.limit == 1 else "messages"
        per = "an hour" if self.period == "hour" else "a day"
        across = " across all its aliases" if self.scope == "user" else ""
        return (
            f"{_OWNERS[self.scope]} limit of {self.limit} {messages} {per}{across} is reached; "
            f"it resets at {self.resets_at:%H:%M} UTC"
        )


def window_start(now: datetime, period: Period) -> int:
    """The epoch second the fixed UTC ``period`` holding ``now`` started (naive ``now`` is UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    epoch = int(now.timestamp())
    return epoch - epoch % _SECONDS[period]


@dataclass(frozen=True, slots=True)
class MailLimits:
    """Messages forwarded per alias and per user, per hour and per day; 0 is no limit.

    The default is no limit at all (tests, tools); the settings' defaults are in
    ``forwarder/settings.py`` and docs/limits.md.
    """

    alias_per_hour: int = 0
    alias_per_day: int = 0
    user_per_hour: int = 0
    user_per_day: int = 0

    def __post_init__(self) -> None:
        for name in ("alias_per_hour", "alias_per_day", "user_per_hour", "user_per_day"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more, not {getattr(self, name)}")

    @property
    def any(self) -> bool:
        return bool(self.alias_per_hour or self.alias_per_day or self.user_per_hour or self.user_per_day)

    @property
    def per_user(self) -> bool:
        return bool(self.user_per_hour or self.user_per_day)

    def windows(self, alias_id: int, user_id: int | None, now: datetime) -> tuple[Window, ...]:
        """The windows a message to ``alias_id`` counts in at ``now``.

        Always in the same order (the alias's before the user's, the hour before the day): claims
        lock their rows in this order, so two claims never wait for each other in a circle.
        An alias without an owner (its user was deleted) has no user windows.
        """
        rules: list[tuple[Scope, Period, int, int | None]] = [
            ("alias", "hour", self.alias_per_hour, alias_id),
            ("alias", "day", self.alias_per_day, alias_id),
            ("user", "hour", self.user_per_hour, user_id),
            ("user", "day", self.user_per_day, user_id),
        ]
        return tuple(
            Window(scope, period, limit, owner_id, window_start(now, period))
            for scope, period, limit, owner_id in rules
            if limit and owner_id is not None
        )
