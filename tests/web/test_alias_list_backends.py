"""web.services.aliases.listed on every backend: LIKE escapes, case, destinations, never-used aliases
last by last use in both orders, ties by id, and the count beside the page (issue 16)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from models import Alias, utcnow
from tests.support.factories import make_destination, make_user
from web.services.aliases import listed


def test_search_sort_and_count_on_each_backend(session: Session) -> None:
    ann, bob = make_user(session, "ann@example.org"), make_user(session, "bob@example.org")
    work = make_destination(session, ann, "me@work.example")
    bobs = make_destination(session, bob, "me@work.example")
    now = utcnow()
    rows = {
        "odd_one": Alias(label="Über Shop", message_count=2, last_used_at=now - timedelta(days=2)),
        "oddxone": Alias(note="100% real", message_count=2),
        "jobs": Alias(message_count=5, last_used_at=now),
        "back\\slash": Alias(message_count=0),
    }
    for n, (local, row) in enumerate(rows.items()):
        row.address = f"{local}@othermail.example"
        row.user_id = ann.id
        row.created_at = now - timedelta(minutes=n)
        session.add(row)
    rows["jobs"].destinations = [work]
    theirs = Alias(address="theirs@othermail.example", user_id=bob.id, created_at=now, label="odd_one")
    theirs.destinations = [bobs]
    session.add(theirs)
    session.commit()

    def names(search: str = "", **options: object) -> list[str]:
        found, total = listed(session, ann, search, **options)  # type: ignore[arg-type]
        assert total == len(found)
        return [alias.address.partition("@")[0] for alias in found]

    assert names("ODD_") == ["odd_one"]  # _ is a plain character, case does not matter
    assert names("100%") == ["oddxone"] and names("%") == ["oddxone"]
    assert names("\\") == ["back\\slash"]
    if session.get_bind().dialect.name != "sqlite":  # SQLite's lower() folds ASCII letters only
        assert names("über") == ["odd_one"]
    assert names("Über") == ["odd_one"]  # the same case matches everywhere
    assert names("work.example") == ["jobs"]  # not bob's alias to the same address
    assert names() == ["odd_one", "oddxone", "jobs", "back\\slash"]
    assert names(sort="used") == ["jobs", "odd_one", "back\\slash", "oddxone"]
    assert names(sort="used", descending=False) == ["odd_one", "jobs", "oddxone", "back\\slash"]
    assert names(sort="messages") == ["jobs", "oddxone", "odd_one", "back\\slash"]
    assert names(sort="address") == ["back\\slash", "jobs", "odd_one", "oddxone"]
    page, total = listed(session, ann, "", 2, 3)
    assert total == 4 and [alias.address for alias in page] == ["back\\slash@othermail.example"]
