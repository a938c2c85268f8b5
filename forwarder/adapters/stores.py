"""Where raw inbound messages are kept on the one box: a local folder, or memory (tests).

S3, where SES writes them, is forwarder/adapters/aws/s3.py; forwarder/runtime.py picks one.
"""

from __future__ import annotations

import os
from pathlib import Path

from forwarder.errors import MessageNotFound, StoreUnavailable


def write_atomically(path: str, data: bytes) -> None:
    """Write ``path`` whole or not at all: a ``.tmp`` file beside it, then a rename. Plain
    ``os.write`` calls, without the buffered file object of ``Path.write_bytes``. Raw mail and
    envelopes are readable by their owner only, whatever the umask."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


class LocalStore:
    """A folder of raw messages, one file per key."""

    #: Writes go to a local file system: fast enough to make on the SMTP listener's event loop.
    local = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Folders of keys already written to, checked and created: a key's folder part -> its path.
        self._folders: dict[str, str] = {}

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise MessageNotFound(f"key {key!r} leaves the store")
        return path

    def put(self, key: str, raw: bytes) -> None:
        folder, _, name = key.rpartition("/")
        known = self._folders.get(folder)
        if known is not None and name not in ("", ".", "..") and "\0" not in name:
            # The folder was resolved inside the store before, and a plain name cannot leave it
            # (the rename below replaces whatever is at that name, it does not follow it).
            try:
                write_atomically(f"{known}/{name}", raw)
                return
            except FileNotFoundError:  # the folder was removed meanwhile: make it again
                self._folders.pop(folder, None)
        path = self._path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(str(path), raw)
        if path.name == name:
            self._folders[folder] = str(path.parent)

    def prune(self, older_than: float, keep: frozenset[str] = frozenset()) -> int:
        """Delete the messages written before ``older_than`` (epoch seconds), but the keys in
        ``keep`` (mail not forwarded yet); the number deleted. What S3's lifecycle rule does for
        the bucket (``OTHERMAIL_KEEP_DAYS`` days)."""
        removed = 0
        root = self.root.resolve()
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                key = os.path.relpath(path, root).replace(os.sep, "/")
                if key in keep or key.removesuffix(".tmp") in keep:
                    continue
                try:
                    if os.stat(path).st_mtime < older_than:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise MessageNotFound(f"no raw message {key!r} in {self.root}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"reading {key!r} failed: {exc}") from exc


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, raw: bytes) -> None:
        self.objects[key] = raw

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise MessageNotFound(f"no raw message {key!r}") from None
