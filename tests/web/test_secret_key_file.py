"""The development secret key in the data folder is created readable by its owner only, at its
creation: never written first and restricted afterwards (issue 12, item 25)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forwarder.settings import Settings
from web import _secret_key


def test_the_key_is_created_0600_not_chmodded_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A chmod after the write would leave a window where the key is world-readable: make any
    # such chmod do nothing, so only a file created 0600 passes.
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    monkeypatch.setattr(Path, "chmod", lambda *args, **kwargs: None)
    old = os.umask(0o022)
    try:
        key = _secret_key(Settings(data_dir=tmp_path / "data"))
    finally:
        os.umask(old)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and path.read_text().strip() == key


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    first = _secret_key(Settings(data_dir=tmp_path))
    assert _secret_key(Settings(data_dir=tmp_path)) == first
