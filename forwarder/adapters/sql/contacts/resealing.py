"""Key rotation: :class:`Resealing` re-seals and re-digests the contacts and links sealed under an
older key (forwarder/adapters/sealing.py), a batch a transaction, while lookups go on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, select, update

from forwarder.adapters.sql.contacts.store import ContactStore
from models.tables import contacts as _contacts
from models.tables import message_links as _links


class Resealing(ContactStore):
    """Re-sealing every contact and link not yet under the current key."""

    def reseal(self, batch_size: int = 500) -> tuple[int, int]:
        """Re-seal and re-digest every contact and link not yet under the current key, ``batch_size``
        rows a transaction, and say how many of each. Online: until a row is re-sealed, lookups
        find it by its old digest and open it with the old key."""
        return self._reseal_contacts(batch_size), self._reseal_links(batch_size)

    def _stale(self, *sealed: str) -> bool:
        return any(text and not self._sealer.is_current(text) for text in sealed)

    def _reseal_contacts(self, batch_size: int) -> int:
        def fresh(row: Any) -> dict[str, Any] | None:
            if not self._stale(row.address_sealed, row.name_sealed):
                return None
            address = self._sealer.open(row.address_sealed)
            name = self._sealer.open(row.name_sealed) if row.name_sealed else ""
            return {
                "address_digest": self._sealer.digest(address),
                "address_sealed": self._sealer.seal(address),
                "name_sealed": self._sealer.seal(name) if name else "",
            }

        return self._reseal(_contacts, (_contacts.c.address_sealed, _contacts.c.name_sealed), fresh, batch_size)

    def _reseal_links(self, batch_size: int) -> int:
        def fresh(row: Any) -> dict[str, Any] | None:
            if not self._stale(row.seen_sealed, row.original_sealed):
                return None
            seen = self._sealer.open(row.seen_sealed)
            return {
                "seen_digest": self._sealer.digest(seen),
                "seen_sealed": self._sealer.seal(seen),
                "original_sealed": self._sealer.seal(self._sealer.open(row.original_sealed)),
            }

        return self._reseal(_links, (_links.c.seen_sealed, _links.c.original_sealed), fresh, batch_size)

    def _reseal(
        self, table: Table, columns: tuple[Any, ...], fresh: Callable[[Any], dict[str, Any] | None], batch_size: int
    ) -> int:
        """Walk ``table``'s rows by id, ``batch_size`` to a transaction, writing ``fresh(row)``'s
        values where it gives some (a row sealed under an older key); how many rows changed."""
        done, last = 0, 0
        while True:
            with self._connection(write=True) as connection:
                rows = connection.execute(
                    select(table.c.id, *columns).where(table.c.id > last).order_by(table.c.id).limit(batch_size)
                ).all()
                if not rows:
                    return done
                for row in rows:
                    values = fresh(row)
                    if values is not None:
                        connection.execute(update(table).where(table.c.id == row.id).values(**values))
                        done += 1
                connection.commit()
                last = rows[-1].id
