"""Step 3 of a message, what its sends did: a claim finished only while it is pending, a forward counted
once per message (forwarder/adapters/sql/directory/__init__.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
)

from forwarder.adapters.sql.directory.records import PENDING, Finished
from forwarder.adapters.sql.directory.statements import (
    _COUNT_FIRST_FORWARD,
    _COUNT_FORWARDED,
    _FINISH,
    _FINISH_COUNTING,
    _FINISH_KEY,
    _TO_FINISH,
    _finished_params,
    _key_params,
    finish_counting_linking_pg,
    link_params,
)
from forwarder.core import Outcome


def finish(
    connection: Connection, finished: Sequence[Finished], now: datetime, links: Sequence[Mapping[str, Any]] = ()
) -> bool:
    """Record what the sends did; False when a claim read as pending was settled by another
    worker before this transaction changed it (it is rolled back and run again). ``links``
    (PostgreSQL, one forwarded copy of a first claim): the message_links rows, written by the
    same statement (:func:`finish_counting_linking_pg`)."""
    if finished and all(done.first and done.alias_id is not None for done in finished):
        _finish_first(connection, finished, now, links)
        return True
    read = [connection.execute(_TO_FINISH, _key_params(done.key)).one() for done in finished]
    # a claim no longer pending was taken over and settled by another worker: left as it is
    mine = [
        (done, row)
        for done, row in zip(finished, read, strict=True)
        if row.outcome == PENDING or row.destination_key == 0
    ]
    # the alias row first (the package docstring); a message counts once as forwarded
    counted: set[int] = set()
    for done, row in mine:
        if done.outcome is not Outcome.FORWARDED or row.alias_id is None or row.forwarded_before:
            continue
        if row.alias_id not in counted:
            connection.execute(_COUNT_FORWARDED, {"p_alias_id": row.alias_id})
            counted.add(row.alias_id)
    for done, row in mine:
        changed = connection.execute(_FINISH, {"p_id": row.id, **_finished_params(done, now)}).rowcount
        if changed != 1:  # settled by another worker since it was read
            return False
    return True


def _finish_first(
    connection: Connection, finished: Sequence[Finished], now: datetime, links: Sequence[Mapping[str, Any]]
) -> None:
    """:func:`finish` for the copies of a message claimed first (:attr:`Finished.first`):
    each row is updated by its key, none read first, and only while its claim is pending (a late
    settle changes nothing); its alias counts one forward if a copy went and no other copy was
    forwarded before. Where the database can, a forwarded copy's update counts the forward in
    the same statement (:data:`_FINISH_COUNTING`)."""
    counting = _FINISH_COUNTING.get(connection.dialect.name)
    counted: set[int] = set()
    # the copies that count a forward first
    for done in sorted(finished, key=lambda done: done.outcome is not Outcome.FORWARDED):
        params = {**_key_params(done.key), **_finished_params(done, now)}
        forwarded = done.outcome is Outcome.FORWARDED and done.alias_id is not None
        if forwarded and links:
            connection.execute(
                finish_counting_linking_pg(), {**params, "p_alias_id": done.alias_id, **link_params(links)}
            )
            links = ()
            continue
        if forwarded and counting is not None:
            connection.execute(counting, {**params, "p_alias_id": done.alias_id})
            continue
        changed = connection.execute(_FINISH_KEY, params).rowcount
        if forwarded and changed == 1 and done.alias_id not in counted:
            connection.execute(_COUNT_FIRST_FORWARD, {**params, "p_alias_id": done.alias_id})
            counted.add(cast(int, done.alias_id))
