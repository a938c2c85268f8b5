"""The alias list's queries on a large account (issue 16): search, state filter, sort, last page.

    .venv/bin/python bench/alias_list.py [--backends sqlite,postgresql,mariadb] [--aliases 5000] [--others 50000]

One account holds ``--aliases`` aliases (a mix of permanent, expiring, expired, switched-off and
deleted ones, each with a destination), other accounts ``--others`` more. Each query shape runs
``web.services.aliases.listed`` (the count and the page, what the list page and the API run) a few
times; the script prints the median milliseconds per call and each shape's ratio to the plain
first page, so figures compare within one run (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from statements import database  # noqa: E402  (bench/ on the path, as the other benches do)

#: listed()'s arguments per query shape: search, page (-1: the last page), per_page and its keywords
SHAPES: dict[str, dict[str, Any]] = {
    "first page (created desc)": {},
    "search 'shop' (address, label, note, destination)": {"search": "shop"},
    "state=expiring": {"state": "expiring"},
    "state=expired": {"state": "expired"},
    "sort=used asc": {"sort": "used", "descending": False},
    "sort=messages, 50 a page": {"sort": "messages", "per_page": 50},
    "last page": {"page": -1},
    "search + state + sort": {"search": "o", "state": "active", "sort": "address"},
}


def fill(url: str, aliases: int, others: int) -> int:
    """The account's id, after inserting the rows in bulk (Core inserts, one transaction each)."""
    from sqlalchemy import Insert

    import migrations
    from models import Alias, Destination, User, alias_destinations, make_engine, utcnow

    migrations.upgrade(url)
    engine = make_engine(url)
    now = utcnow()
    try:
        with engine.begin() as connection:

            def inserted(statement: Insert) -> int:
                key = connection.execute(statement).inserted_primary_key
                assert key is not None  # an INSERT of one row
                return key[0]

            ids = []
            for n in range(1 + max(1, others // 1000)):
                ids.append(inserted(User.__table__.insert().values(email=f"user{n}@example.org")))
            destinations = []
            for user in ids:
                destinations.append(
                    inserted(
                        Destination.__table__.insert().values(
                            user_id=user, email=f"home{user}@real.example", verified_at=now, created_at=now
                        )
                    )
                )
        owner = ids[0]

        def rows(user: int, count: int, prefix: str) -> list[dict[str, object]]:
            out = []
            for n in range(count):
                kind = n % 10
                out.append(
                    {
                        "address": f"{prefix}{n}-{'shop' if n % 7 == 0 else 'mail'}@othermail.example",
                        "user_id": user,
                        "enabled": kind != 4,
                        "expires_at": now + timedelta(days=3)
                        if kind == 1
                        else now - timedelta(days=1)
                        if kind == 2
                        else None,
                        "idle_days": 30 if kind == 3 else None,
                        "max_messages": 10 if kind == 5 else None,
                        "message_count": n % 13,
                        "created_at": now - timedelta(minutes=n),
                        "last_used_at": now - timedelta(hours=n % 500) if n % 3 else None,
                        "deleted_at": now if kind == 9 else None,
                        "label": "Bike shop" if n % 11 == 0 else None,
                        "note": None,
                    }
                )
            return out

        with engine.begin() as connection:
            connection.execute(Alias.__table__.insert(), rows(owner, aliases, "a"))
            per_other = others // max(1, len(ids) - 1)
            for user in ids[1:]:
                connection.execute(Alias.__table__.insert(), rows(user, per_other, f"u{user}-"))
            mine = [row.id for row in connection.execute(Alias.__table__.select().where(Alias.user_id == owner))]
            connection.execute(
                alias_destinations.insert(), [{"alias_id": a, "destination_id": destinations[0]} for a in mine]
            )
        return owner
    finally:
        engine.dispose()


def run(url: str, owner: int, repeat: int) -> dict[str, float]:
    from models import User, make_engine, make_session_factory
    from web.services.aliases import listed

    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as db:
            user = db.get(User, owner)
            assert user is not None
            _, total = listed(db, user, per_page=25)
            last = max(1, -(-total // 25))
            timings = {}
            for name, shape in SHAPES.items():
                args = dict(shape)
                per_page = int(args.pop("per_page", 25))
                page = int(args.pop("page", 1))
                page = last if page == -1 else page
                search = str(args.pop("search", ""))
                samples = []
                for _ in range(repeat + 1):
                    start = time.perf_counter()
                    rows, _ = listed(db, user, search, page, per_page, **args)
                    samples.append(time.perf_counter() - start)
                    db.expunge_all()
                timings[name] = statistics.median(samples[1:]) * 1000
            return timings
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--aliases", type=int, default=5000)
    parser.add_argument("--others", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"one account with {args.aliases} aliases among {args.others} of other accounts; median of {args.repeat}")
    for backend in args.backends.split(","):
        with database(backend) as url:
            owner = fill(url, args.aliases, args.others)
            timings = run(url, owner, args.repeat)
        base = timings["first page (created desc)"]
        print(f"\n{backend}")
        for name, ms in timings.items():
            print(f"  {name:<52} {ms:8.2f} ms  x{ms / base:5.2f}")


if __name__ == "__main__":
    main()
