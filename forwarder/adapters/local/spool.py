"""The durable hand-off between an SMTP "250" and the forwarder.

When the SMTP listener accepts a message it first writes the raw bytes to the mail store (a local
folder or S3), then an envelope file into ``pending/``. That envelope file is the commit point: the
listener answers 250 only after both writes. The forwarder moves the envelope out of ``pending/``
once every recipient's outcome is recorded, into ``spare/``, where a later envelope is written over
it (creating a file costs the file system more than anything else the listener does for a
message). A process that dies in between leaves the envelope behind, and the next start forwards
it; the delivery claims in SQL make that second attempt send nothing that was already sent.

Spool ids sort by arrival time, so recovery forwards in order.

Nothing is fsynced. The risk covered is a crash of this process (killed, OOM, a bug): what it wrote
is in the kernel's page cache and reaches the disk without it. Only a power loss or kernel crash
in the seconds before the kernel writes back could lose an accepted message (or leave a reused
envelope file with its old content: each envelope names its spool id, so that one is set aside as
unreadable, never forwarded to the old recipients); an fsync per message
(two files and their folder) would cost more than the rest of the listener together. SQLite's
``synchronous=NORMAL`` (see models.engine) makes the same trade.

The forwarder usually takes a message within milliseconds of its 250, so :meth:`Spool.accept`
also keeps what it wrote in memory (up to :data:`RECENT_BYTES`) and the first :meth:`Spool.load`
takes it from there instead of reading both files back. Retries and recovery read the files.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from forwarder.adapters.stores import write_atomically
from forwarder.core.decide import Verdicts
from forwarder.errors import MessageNotFound, StoreUnavailable
from forwarder.ports import WritableStore

KEY_PREFIX = "smtp/"
#: Bytes of recently accepted messages kept in memory for their first load.
RECENT_BYTES = 64 * 1024 * 1024
#: Envelope files of forwarded entries kept in ``spare/`` for new envelopes to be written into.
MAX_SPARES = 64


@dataclass(frozen=True, slots=True)
class Envelope:
    spool_id: str
    mail_from: str
    recipients: tuple[str, ...]
    received_at: float
    peer: str = ""
    #: What the listener's inbound authentication found (forwarder.adapters.inbound_auth); None when it did
    #: not run, or for an entry spooled before verdicts were recorded here.
    verdicts: Verdicts | None = None

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.spool_id


_VERDICT_FIELDS = ("spam", "virus", "spf", "dkim", "dmarc", "dmarc_policy")


def _verdicts(data: object, spool_id: str) -> Verdicts | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(n), str) for n in _VERDICT_FIELDS[:-1]):
        raise ValueError(f"spool entry {spool_id} has unreadable verdicts")
    policy = data.get("dmarc_policy")
    return Verdicts(*(data[n] for n in _VERDICT_FIELDS[:-1]), dmarc_policy=policy if isinstance(policy, str) else None)  # type: ignore[misc]  # the star arguments are the fields before dmarc_policy


def new_spool_id(now: float | None = None) -> str:
    """Sortable by time, unique without coordination: nanoseconds then 48 random bits."""
    stamp = int((time.time() if now is None else now) * 1_000_000_000)
    return f"{stamp:019d}-{secrets.token_hex(6)}"


class Spool:
    def __init__(self, root: Path, store: WritableStore) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.store = store
        self.pending_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._pending = str(self.pending_dir)
        self.spare_dir = self.root / "spare"
        self.spare_dir.mkdir(mode=0o700, exist_ok=True)
        self._spare = str(self.spare_dir)
        #: Envelope files of forwarded entries, to be overwritten by new envelopes (see _write_envelope).
        self._spares = [str(p) for p in self.spare_dir.iterdir() if p.is_file()][:MAX_SPARES]
        self._recent: dict[str, tuple[bytes, Envelope]] = {}
        self._recent_bytes = 0
        self._lock = threading.Lock()
        self.writes_locally = bool(getattr(store, "local", False))

    def accept(
        self, raw: bytes, mail_from: str, recipients: tuple[str, ...], peer: str = "", verdicts: Verdicts | None = None
    ) -> Envelope:
        """Store ``raw`` and its envelope; raises :class:`StoreUnavailable` when either write fails."""
        envelope = Envelope(new_spool_id(), mail_from, recipients, time.time(), peer, verdicts)
        try:
            self.store.put(envelope.key, raw)
            self._write_envelope(envelope)
        except OSError as exc:
            raise StoreUnavailable(f"spooling {envelope.spool_id} failed: {exc}") from exc
        with self._lock:
            if self._recent_bytes + len(raw) <= RECENT_BYTES:
                self._recent[envelope.spool_id] = (raw, envelope)
                self._recent_bytes += len(raw)
        return envelope

    def _write_envelope(self, envelope: Envelope) -> None:
        data: dict[str, object] = {
            "mail_from": envelope.mail_from,
            "recipients": list(envelope.recipients),
            "received_at": envelope.received_at,
            "peer": envelope.peer,
        }
        if envelope.verdicts is not None:
            data["verdicts"] = {name: getattr(envelope.verdicts, name) for name in _VERDICT_FIELDS}
        data["spool_id"] = envelope.spool_id
        text = json.dumps(data).encode("utf-8")
        target = f"{self._pending}/{envelope.spool_id}.json"
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        if spare is None:
            write_atomically(target, text)
            return
        # Creating a file costs the file system far more than overwriting one that exists (30 us
        # on a quiet ext4 disk, up to 800 us while other processes create files): the envelope goes
        # into a kept file, in place, padded with spaces (which JSON ignores) to the file's size so
        # that nothing of the old envelope is left, then the rename commits it as before.
        fd = os.open(spare, os.O_WRONLY)
        try:
            view = memoryview(text + b" " * (os.fstat(fd).st_size - len(text)))
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(spare, target)

    def _forget(self, spool_id: str) -> tuple[bytes, Envelope] | None:
        with self._lock:
            kept = self._recent.pop(spool_id, None)
            if kept is not None:
                self._recent_bytes -= len(kept[0])
        return kept

    def pending(self) -> list[str]:
        return sorted(p.stem for p in self.pending_dir.glob("*.json"))

    def envelope(self, spool_id: str) -> Envelope:
        path = self.pending_dir / f"{spool_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise MessageNotFound(f"spool entry {spool_id} is gone") from exc
        except OSError as exc:
            raise StoreUnavailable(f"spool entry {spool_id} cannot be read: {exc}") from exc
        # a ValueError from here on means the entry is corrupt: no retry can help
        if not isinstance(data, dict) or not isinstance(data.get("recipients"), list):
            raise ValueError(f"spool entry {spool_id} is not an envelope")
        if data.get("spool_id", spool_id) != spool_id:  # a reused file whose new content never reached the disk
            raise ValueError(f"spool entry {spool_id} holds the envelope of another entry")
        return Envelope(
            spool_id,
            str(data.get("mail_from", "")),
            tuple(str(r) for r in data["recipients"]),
            float(data.get("received_at", 0.0)),
            str(data.get("peer", "")),
            _verdicts(data.get("verdicts"), spool_id),
        )

    def load(self, spool_id: str) -> tuple[bytes, Envelope]:
        kept = self._forget(spool_id)
        if kept is not None:
            return kept
        envelope = self.envelope(spool_id)
        return self.store.get(envelope.key), envelope

    def set_aside(self, spool_id: str) -> None:
        """Move an entry that can never be forwarded to ``failed/`` for an operator to look at."""
        self._forget(spool_id)
        failed = self.root / "failed"
        failed.mkdir(mode=0o700, exist_ok=True)
        try:
            os.replace(self.pending_dir / f"{spool_id}.json", failed / f"{spool_id}.json")
        except FileNotFoundError:
            pass

    def done(self, spool_id: str) -> None:
        """Every outcome of this entry is recorded; the raw message stays in the store. Its
        envelope file is kept in ``spare/`` for a new envelope (up to :data:`MAX_SPARES` files)."""
        self._forget(spool_id)
        with self._lock:
            keep = len(self._spares) < MAX_SPARES
        path = f"{self._pending}/{spool_id}.json"
        try:
            if not keep:
                os.unlink(path)
                return
            spare = f"{self._spare}/{spool_id}"
            os.replace(path, spare)
        except FileNotFoundError:
            return
        with self._lock:
            self._spares.append(spare)
