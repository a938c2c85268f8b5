"""What every role of the contact book stands on: :class:`ContactStore` holds the engine, the
sealer and the clock, hands out connections, and finds and inserts contacts.

A new contact is inserted and committed on its own, so two workers meeting the same new address
both end with the one row: the second one's insert fails on the unique (alias, digest) key, it
rolls back and reads the winner's row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.exc import IntegrityError

from forwarder.adapters.sealing import Sealer
from forwarder.adapters.sql.connections import connect, database_errors
from forwarder.adapters.sql.contacts.addresses import new_reverse_local
from forwarder.adapters.sql.contacts.statements import _FIND, _Known
from models.columns import utcnow
from models.tables import contacts as _contacts


class ContactStore:
    """The engine, the sealer and the clock (``clock`` gives aware UTC datetimes) of the contact
    book, which every role of it (:mod:`.sender_rules`, :mod:`.links`, :mod:`.managing`,
    :mod:`.resealing`, and :class:`~.book.SqlContactBook`) is built on."""

    def __init__(
        self,
        engine: Engine,
        sealer: Sealer,
        clock: Callable[[], datetime] = utcnow,
        thread_days: int = 180,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._now = clock
        self._thread_days = thread_days
        # SQLite has one writer at a time: threads of this process queue here rather than in its
        # busy handler (as SqlDirectory does).
        self._write_lock: AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def _connection(self, write: bool = False, autocommit: bool = False) -> Iterator[Connection]:
        """``autocommit`` (PostgreSQL): each statement commits on its own, no BEGIN or COMMIT is sent
        (for work whose every statement stands alone, as in SqlDirectory)."""
        postgresql = self._engine.dialect.name == "postgresql"
        with (
            database_errors(),
            self._write_lock if write else nullcontext(),
            connect(self._engine, autocommit and postgresql) as connection,
        ):
            yield connection

    def _by_digest(self, addresses: Iterable[str]) -> dict[str, str]:
        """``{digest: address}`` of ``addresses`` under every key (one digest each, out of a rotation)."""
        return {digest: address for address in addresses for digest in self._sealer.digests(address)}

    def _find(self, connection: Connection, alias_id: int, addresses: Sequence[str]) -> dict[str, Any]:
        """Rows of ``addresses`` (normalized) that exist for the alias, by address."""
        by_digest = self._by_digest(addresses)
        if not by_digest:
            return {}
        rows = connection.execute(_FIND, {"p_alias_id": alias_id, "p_digests": sorted(by_digest)}).all()
        return {by_digest[row.address_digest]: row for row in rows}

    def _insert(
        self, connection: Connection, alias_id: int, address: str, name: str, origin: str, count: int
    ) -> _Known | None:
        """Insert and commit one contact; its row (as :data:`~.statements._PREPARE` reads one, without reading it
        again), or None when another writer made it first."""
        for _attempt in range(3):  # a second try only if the random local part collided
            reverse_local = new_reverse_local()
            name_sealed = self._sealer.seal(name) if name else ""
            try:
                inserted = connection.execute(
                    insert(_contacts).values(
                        alias_id=alias_id,
                        reverse_local=reverse_local,
                        address_digest=self._sealer.digest(address),
                        address_sealed=self._sealer.seal(address),
                        name_sealed=name_sealed,
                        origin=origin,
                        forwarded_count=count,
                        last_seen_at=self._now() if count else None,
                        created_at=self._now(),
                    )
                ).inserted_primary_key
                connection.commit()
                assert inserted is not None  # an insert of one row
                return _Known(int(inserted[0]), reverse_local, name_sealed, False)
            except IntegrityError:
                connection.rollback()
                if self._find(connection, alias_id, [address]):
                    connection.commit()  # read only; a rollback would drop psycopg's prepared statements
                    return None
        raise RuntimeError("no free reverse address after 3 tries")  # 80 random bits: never in practice

    def _change(self, statement: Any) -> int:
        with self._connection(write=True) as connection:
            changed = connection.execute(statement).rowcount
            connection.commit()
        return changed
