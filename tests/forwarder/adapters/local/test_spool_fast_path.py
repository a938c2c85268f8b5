"""The spool's shortcuts: the first load of a fresh entry comes from memory, the store writes
without resolving known folders again; both behave as the files do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forwarder.adapters.local import spool as spool_module
from forwarder.adapters.local.spool import Spool
from forwarder.adapters.stores import LocalStore
from forwarder.errors import MessageNotFound

RAW = b"Subject: hi\r\n\r\nbody\r\n"


def test_the_first_load_is_from_memory_and_later_ones_from_the_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    entry = spool.accept(RAW, "a@sender.example", ("x@othermail.example",), "192.0.2.1")
    assert (tmp_path / "mail" / "smtp" / entry.spool_id).read_bytes() == RAW  # written all the same
    (tmp_path / "mail" / "smtp" / entry.spool_id).write_bytes(b"changed on disk")
    assert spool.load(entry.spool_id) == (RAW, entry)
    assert spool.load(entry.spool_id)[0] == b"changed on disk"  # a retry reads the files


@pytest.mark.parametrize("finish", ["done", "set_aside"])
def test_a_finished_entry_is_not_served_from_memory(tmp_path: Path, finish: str) -> None:
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    entry = spool.accept(RAW, "", ("x@othermail.example",))
    getattr(spool, finish)(entry.spool_id)
    with pytest.raises(MessageNotFound):
        spool.load(entry.spool_id)


def test_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "RECENT_BYTES", len(RAW) * 2)
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    entries = [spool.accept(RAW, "", ("x@othermail.example",)) for _ in range(3)]
    assert len(spool._recent) == 2 and spool._recent_bytes == len(RAW) * 2
    assert [spool.load(e.spool_id)[0] for e in entries] == [RAW] * 3  # the third from the files
    assert spool._recent == {} and spool._recent_bytes == 0


def test_local_store_writes_again_after_its_folder_was_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "mail")
    store.put("smtp/one", b"1")
    shutil.rmtree(tmp_path / "mail" / "smtp")
    store.put("smtp/two", b"2")
    assert store.get("smtp/two") == b"2" and not list((tmp_path / "mail").rglob("*.tmp"))


def test_local_store_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "mail")
    store.put("smtp/one", b"1")
    (tmp_path / "outside").write_bytes(b"secret")
    (tmp_path / "mail" / "smtp" / "two").symlink_to(tmp_path / "outside")
    store.put("smtp/two", b"2")
    assert (tmp_path / "outside").read_bytes() == b"secret"
    assert store.get("smtp/two") == b"2"


@pytest.mark.parametrize("key", ["smtp/..", "smtp/../../escape", "smtp/.", "smtp/"])
def test_local_store_fast_path_takes_only_plain_names(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "mail")
    store.put("smtp/one", b"1")  # the folder is known now
    with pytest.raises((MessageNotFound, IsADirectoryError)) as refused:  # as without the fast path
        store.put(key, b"overwrite")
    assert key.endswith(("/.", "/")) or "leaves the store" in str(refused.value)
    assert store.get("smtp/one") == b"1"
