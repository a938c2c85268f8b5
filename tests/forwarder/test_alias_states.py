"""The alias states as SQL (forwarder/accounts/alias_states.py) agree with the pages' status() and
the forwarder's expiry rules, on every backend, including the edges of each limit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from forwarder.accounts.alias_states import STATES, in_state
from models import Alias, utcnow
from tests.support.factories import make_user
from web.services.aliases import status

#: What each crafted alias is, by the pages' words (status().state) and whether it has a limit.
CASES: dict[str, tuple[str, bool]] = {
    "permanent": ("active", False),
    "later": ("active", True),
    "time-up": ("expired", True),
    "time-up-exactly": ("expired", True),
    "idle-fresh": ("active", True),
    "idle-up": ("expired", True),
    "idle-never-used-up": ("expired", True),
    "idle-used-recently": ("active", True),
    "count-left": ("active", True),
    "count-reached": ("expired", True),
    "off": ("off", False),
    "off-with-limit": ("off", True),
    "off-and-expired": ("expired", True),
}


def _aliases(db: Session, now: datetime) -> dict[str, Alias]:
    user = make_user(db)
    day = timedelta(days=1)
    old = now - 40 * day
    rows = {
        "permanent": Alias(),
        "later": Alias(expires_at=now + day),
        "time-up": Alias(expires_at=now - timedelta(minutes=1)),
        "time-up-exactly": Alias(expires_at=now),
        "idle-fresh": Alias(idle_days=30, created_at=now - 29 * day),
        "idle-up": Alias(idle_days=30, created_at=old, last_used_at=now - 30 * day - timedelta(seconds=2)),
        "idle-never-used-up": Alias(idle_days=30, created_at=now - 31 * day),
        "idle-used-recently": Alias(idle_days=30, created_at=old, last_used_at=now - 29 * day - timedelta(hours=23)),
        "count-left": Alias(max_messages=5, message_count=4),
        "count-reached": Alias(max_messages=5, message_count=5),
        "off": Alias(enabled=False),
        "off-with-limit": Alias(enabled=False, max_messages=3),
        "off-and-expired": Alias(enabled=False, expires_at=now - day),
    }
    for name, row in rows.items():
        row.address = f"{name}@othermail.example"
        row.user_id = user.id
        row.created_at = row.created_at or old
        row.message_count = row.message_count or 0
        db.add(row)
    db.add(Alias(address="gone@othermail.example", user_id=user.id, deleted_at=now, created_at=old, enabled=False))
    db.commit()
    return rows


def test_each_state_in_sql_is_the_state_the_pages_show(session: Session) -> None:
    now = utcnow()
    rows = _aliases(session, now)
    assert {name: status(rows[name], now).state for name in CASES} == {n: s for n, (s, _) in CASES.items()}
    expected = {
        "active": {n for n, (s, _) in CASES.items() if s == "active"},
        "expiring": {n for n, (s, limited) in CASES.items() if s == "active" and limited},
        "expired": {n for n, (s, _) in CASES.items() if s == "expired"},
        "disabled": {n for n, (s, _) in CASES.items() if s == "off"},
    }
    for state in STATES:
        found = session.scalars(select(Alias.address).where(Alias.deleted_at.is_(None), in_state(state, now))).all()
        assert {address.partition("@")[0] for address in found} == expected[state], state


def test_an_unknown_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown alias state"):
        in_state("sleeping", utcnow())
