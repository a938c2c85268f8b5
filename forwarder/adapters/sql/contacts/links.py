"""The Message-ID map that keeps threads: :class:`ThreadLinks` links the id a contact or the owner
saw to the original, finds the original again, tells a reply's copy, and prunes expired links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from forwarder.adapters.sql.contacts.addresses import normalize_message_id
from forwarder.adapters.sql.contacts.store import ContactStore
from models.tables import message_links as _links


class ThreadLinks(ContactStore):
    """The Message-ID map (message_links), sealed like the contacts."""

    def link(
        self, alias_id: int, contact_id: int | None, seen_ids: Sequence[str], original_id: str, kind: str = "forward"
    ) -> None:
        rows = self.link_rows(alias_id, contact_id, seen_ids, original_id, kind)
        if not rows:
            return
        with self._connection(write=True) as connection:
            for row in rows:  # one at a time: a row linked before (a retried send) must not undo the others
                try:
                    connection.execute(insert(_links), row)
                    connection.commit()
                except IntegrityError:  # the first link stands
                    connection.rollback()

    def link_rows(
        self,
        alias_id: int,
        contact_id: int | None,
        seen_ids: Sequence[str],
        original_id: str,
        kind: str = "forward",
    ) -> list[dict[str, Any]]:
        """message_links rows (sealed, not written) linking each of ``seen_ids`` to ``original_id``:
        the forward flow has them written with its outcomes (``Directory.settle``)."""
        now = self._now()
        original = self._sealer.seal(original_id.strip())
        return [
            dict(
                alias_id=alias_id,
                contact_id=contact_id,
                seen_digest=self._sealer.digest(seen),
                seen_sealed=self._sealer.seal(seen),
                original_sealed=original,
                kind=kind,
                created_at=now,
                expires_at=now + timedelta(days=self._thread_days),
            )
            for seen in dict.fromkeys(normalize_message_id(s) for s in seen_ids)
            if seen
        ]

    def answers_reply(self, alias_id: int, seen_ids: Sequence[str]) -> bool:
        """Whether any of ``seen_ids`` is the id of a copy the alias sent to a contact (a reply or a
        first message), still in the thread map: what a bounce or an auto-reply to it names."""
        digests = [
            d for seen in dict.fromkeys(map(normalize_message_id, seen_ids)) if seen for d in self._sealer.digests(seen)
        ]
        if not digests:
            return False
        with self._connection() as connection:
            found = connection.execute(
                select(_links.c.id)
                .where(
                    _links.c.alias_id == alias_id,
                    _links.c.kind == "reply",
                    _links.c.seen_digest.in_(digests),
                    _links.c.expires_at > self._now(),
                )
                .limit(1)
            ).first()
        return found is not None

    def original_for(self, alias_id: int, seen_id: str) -> str | None:
        digests = self._sealer.digests(normalize_message_id(seen_id))
        with self._connection() as connection:
            sealed = connection.execute(
                select(_links.c.original_sealed).where(
                    _links.c.alias_id == alias_id,
                    _links.c.seen_digest.in_(digests),
                    _links.c.expires_at > self._now(),
                )
            ).scalar()
        return None if sealed is None else self._sealer.open(sealed)

    def prune(self, now: datetime) -> int:
        with self._connection(write=True) as connection:
            removed = connection.execute(delete(_links).where(_links.c.expires_at <= now)).rowcount
            connection.commit()
        return removed
