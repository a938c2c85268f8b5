"""bench/_node_peer.py: the Node peer harness (aws-lambda-ses-forwarder) of the benchmarks.

The skip paths run everywhere and need no network: without ``node``, without ``npm``, and with an
npm registry that refuses connections, the wrapper gives a one-line reason and returns None. The
harness itself runs on the real, unmodified peer when ``node`` is here and the peer is installed in
bench/.cache/node_peer (installing it there first when the npm registry answers); otherwise that
test skips, saying why. No timing is asserted: only that times come back and what is checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.tools import missing

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_node_peer", ROOT / "bench" / "_node_peer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_node_peer", module)
    spec.loader.exec_module(module)
    return module


peer = _load()

FROM_LESS = b"Subject: no sender here\r\nTo: shop-7hq2@othermail.example\r\n\r\nHello.\r\n"


def _typical() -> bytes:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import _measure
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return _measure.typical_message(2048)


def _path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only links to the given tools (those found on the real PATH)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if found is None:
            missing(f"`{tool}` is not on PATH (Debian: apt-get install nodejs npm; .ci/run installs them)")
        (folder / tool).symlink_to(found)
    return str(folder)


def test_without_node_the_wrapper_gives_one_line_reason_and_none(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    cache = tmp_path / "cache"

    reason = peer.available(cache)
    timings = peer.peer_timings([FROM_LESS], 1, cache=cache)

    assert reason == "Node peer skipped: `node` is not on PATH (Debian: apt-get install nodejs npm)"
    assert timings is None
    assert capsys.readouterr().out == reason + "\n"
    assert not cache.exists()


def test_without_npm_an_uninstalled_peer_is_skipped_naming_npm(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _path_with(tmp_path, "node"))
    cache = tmp_path / "cache"

    reason = peer.available(cache)

    assert reason is not None and "\n" not in reason
    assert reason.startswith("Node peer skipped: `npm` is not on PATH to install aws-lambda-ses-forwarder@")
    assert peer.peer_timings([FROM_LESS], 1, cache=cache) is None
    assert capsys.readouterr().out.startswith("Node peer skipped: `npm`")


def test_an_unreachable_registry_skips_with_npm_reason(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:  # a loopback port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PATH", _path_with(tmp_path, "node", "npm"))
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("NPM_CONFIG_CACHE", str(tmp_path / "npm-cache"))  # nothing to serve offline
    monkeypatch.setattr(peer, "NPM_FETCH_RETRIES", 0)
    cache = tmp_path / "cache"

    reason = peer.available(cache)
    timings = peer.peer_timings([FROM_LESS], 1, cache=cache)

    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"Node peer skipped: npm ci of aws-lambda-ses-forwarder@{peer.pinned_version()} failed")
    assert "ECONNREFUSED" in reason
    assert timings is None
    assert capsys.readouterr().out.startswith("Node peer skipped: npm ci")
    assert not peer.installed(cache)


def test_the_peer_version_is_pinned_exactly_and_locked():
    package = json.loads((ROOT / "bench" / "node_peer" / "package.json").read_text())
    lock = json.loads((ROOT / "bench" / "node_peer" / "package-lock.json").read_text())

    version = peer.pinned_version()

    assert package["dependencies"] == {"aws-lambda-ses-forwarder": version}
    assert lock["packages"][""]["dependencies"] == {"aws-lambda-ses-forwarder": version}
    assert lock["packages"]["node_modules/aws-lambda-ses-forwarder"]["version"] == version
    assert all("integrity" in entry for name, entry in lock["packages"].items() if name)


def test_the_install_cache_is_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = Path(os.path.relpath(peer.CACHE, ROOT)) / "node_modules" / "aws-lambda-ses-forwarder" / "index.js"

    done = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT)

    assert peer.CACHE.is_relative_to(ROOT / "bench")
    assert done.returncode == 0, f"{probe} is not ignored by .gitignore"


@pytest.fixture(scope="module")
def installed_peer():
    """The real peer in bench/.cache/node_peer: installed there when missing and the registry answers."""
    reason = peer.available()
    if reason is not None:
        missing(reason)
    return peer.CACHE


def test_the_harness_times_the_unmodified_peer_and_flags_what_it_cannot_rewrite(installed_peer):
    typical = _typical()

    run = peer.run_peer([typical, FROM_LESS], rounds=1, min_batch_ms=0.2)

    assert run.peer == f"aws-lambda-ses-forwarder {peer.pinned_version()}"
    assert run.node.startswith("v")
    assert len(run.medians) == 2 and all(m > 0 for m in run.medians)
    assert run.calls_per_batch[0] >= 1
    # the 2 KB message went through the whole handler chain (fake S3 and SESv2) and came out with
    # the peer's From rewrite and a Reply-To; the From-less one is timed but reported
    assert run.rejected == {1: "no From header in the message (sent without one)"}
    assert run.rejected_summary() == "1 of 2 (1x no From header in the message (sent without one))"


def test_peer_timings_prints_the_rejected_count(installed_peer, capsys):
    timings = peer.peer_timings([FROM_LESS], 1)

    assert timings is not None and len(timings) == 1 and timings[0] > 0
    out = capsys.readouterr().out
    assert out.startswith("Node peer (aws-lambda-ses-forwarder ")
    assert "rejected 1 of 1 (1x no From header" in out


def test_a_session_times_one_round_per_request_and_exits_when_closed(installed_peer):
    with peer.open_session([_typical(), FROM_LESS], min_batch_ms=0.2) as session:
        first = session.round()
        second = session.round()
        process = session._process

    assert session.peer == f"aws-lambda-ses-forwarder {peer.pinned_version()}"
    assert session.rejected == {1: "no From header in the message (sent without one)"}
    assert len(first) == len(second) == 2 and all(t > 0 for t in first + second)
    assert process.returncode == 0
