"""The Node peer of the benchmarks: the unmodified npm package ``aws-lambda-ses-forwarder``.

    .venv/bin/python bench/_node_peer.py [--corpus DIR] [--rounds N]

run alone, it times the peer on a generated 2 KB message, a generated 100 KB one (the generators of
bench/_measure.py) and the corpus (``--corpus``, else ``$OTHERMAIL_CORPUS``, else ../shared/corpus;
skipped, saying so, when absent), all in one Node process, and prints the per-message medians.

The peer's version is pinned in bench/node_peer/package.json (exact) and package-lock.json (the
whole dependency tree, with integrity hashes). At bench time it is installed with ``npm ci`` into
bench/.cache/node_peer (ignored by git), never into the tracked tree; a stamp (the hash of both
files) makes later runs skip the install, so only the first run needs the npm registry. Then
``node bench/node_peer/harness.js`` loads the package's own index.js, checks each message through
the whole handler chain with fake S3 and SESv2 clients (the package's ``overrides`` argument), and
times its full path per message: decode (Buffer -> string, as its fetchMessage does), its
``processMessage``, and encode (string -> Buffer, as its sendMessage does). harness.js says how.

For bench scripts (bench/ on ``sys.path``, then ``import _node_peer``)::

    reason = _node_peer.available()             # None when usable, else "Node peer skipped: ..."
    medians = _node_peer.peer_timings(messages, rounds)  # seconds per message, or None (reason printed)
    run = _node_peer.run_peer(messages, rounds)  # PeerRun: medians, rejected messages, versions
    with _node_peer.open_session(messages) as session:  # the peer kept running, to interleave:
        times = session.round()                   # one round, per-call seconds per message

``available()`` installs the peer when it is not installed yet (that needs ``npm`` and the
registry). Messages the peer rejects (its handler fails, or what it would send lacks its own From
rewrite or a Reply-To) are still timed (``medians`` has one entry per message) and are listed in
``PeerRun.rejected``; ``peer_timings`` prints how many there were.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_SOURCE = HERE / "node_peer"  # package.json, package-lock.json, harness.js (tracked)
HARNESS = PEER_SOURCE / "harness.js"
CACHE = HERE / ".cache" / "node_peer"  # where npm ci installs the peer (ignored)
PACKAGE = "aws-lambda-ses-forwarder"
LOCK_FILES = ("package.json", "package-lock.json")
STAMP = ".installed"

# The peer forwards mail for this alias to this destination (the addresses of bench/_measure.py).
ALIAS = "shop-7hq2@othermail.example"
DESTINATION = "owner@owner.example"

# The pinned AWS SDK v3 clients the peer requires declare node >= 20.
MIN_NODE = 20
# npm's network patience: a registry that cannot be reached should fail the install in seconds,
# not minutes; --prefer-offline lets npm's own cache (~/.npm) serve what it already holds.
NPM_FETCH_RETRIES = 1
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 1800.0

SKIPPED = "Node peer skipped: "


class PeerUnavailable(Exception):
    """``node`` or ``npm`` is missing, too old, or the install failed; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PeerRun:
    """One harness run: per-message median seconds, in the order the messages were given."""

    peer: str  # "aws-lambda-ses-forwarder 6.0.0"
    node: str  # "v20.20.2"
    rounds: int
    medians: list[float]
    calls_per_batch: list[int]
    rejected: dict[int, str] = field(default_factory=dict)  # message index -> reason

    def rejected_summary(self) -> str:
        """``"none"``, or the count and the reasons, most frequent first."""
        if not self.rejected:
            return "none"
        counts = Counter(self.rejected.values()).most_common()
        return f"{len(self.rejected)} of {len(self.medians)} (" + "; ".join(f"{n}x {r}" for r, n in counts) + ")"


def pinned_version() -> str:
    """The exact version bench/node_peer/package.json pins."""
    spec = json.loads((PEER_SOURCE / "package.json").read_text())["dependencies"][PACKAGE]
    if not re.fullmatch(r"\d+\.\d+\.\d+", spec):
        raise ValueError(f"bench/node_peer/package.json must pin an exact {PACKAGE} version, not {spec!r}")
    return str(spec)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in LOCK_FILES:
        digest.update((PEER_SOURCE / name).read_bytes())
    return digest.hexdigest()


def installed(cache: Path = CACHE) -> bool:
    """Whether ``cache`` holds the install of the current package.json and package-lock.json."""
    stamp = cache / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == _stamp()
        and (cache / "node_modules" / PACKAGE / "package.json").is_file()
    )


def _check_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable(f"{SKIPPED}`node` is not on PATH (Debian: apt-get install nodejs npm)")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeerUnavailable(f"{SKIPPED}`{node} --version` failed: {exc}") from exc
    match = re.match(r"v(\d+)\.", out.strip())
    if not match or int(match.group(1)) < MIN_NODE:
        version = out.strip() or "?"
        raise PeerUnavailable(f"{SKIPPED}node {version} is older than {MIN_NODE} (the pinned AWS SDK needs it)")
    return node


@contextlib.contextmanager
def _install_lock(cache: Path) -> Iterator[None]:
    """One installer at a time (pytest workers, two bench runs)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{cache.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed(cache: Path = CACHE) -> Path:
    """Install the pinned peer into ``cache`` unless it is there; return the package's folder.

    Raises PeerUnavailable (with a one-line reason) when node or npm is missing or npm ci fails.
    """
    _check_node()
    package_dir = cache / "node_modules" / PACKAGE
    if installed(cache):
        return package_dir
    version = pinned_version()
    npm = shutil.which("npm")
    if npm is None:
        raise PeerUnavailable(
            f"{SKIPPED}`npm` is not on PATH to install {PACKAGE}@{version} (Debian: apt-get install npm)"
        )
    with _install_lock(cache):
        if installed(cache):
            return package_dir
        cache.mkdir(parents=True, exist_ok=True)
        (cache / STAMP).unlink(missing_ok=True)
        for name in LOCK_FILES:
            shutil.copyfile(PEER_SOURCE / name, cache / name)
        command = [
            npm,
            "ci",
            "--prefix",
            str(cache),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefer-offline",
            "--loglevel=error",
            f"--fetch-retries={NPM_FETCH_RETRIES}",
            "--fetch-retry-mintimeout=2000",
            "--fetch-retry-maxtimeout=10000",
            "--fetch-timeout=30000",
        ]
        print(f"Node peer: npm ci {PACKAGE}@{version} into {_rel(cache)} ...", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(command, cwd=cache, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(
                f"{SKIPPED}npm ci of {PACKAGE}@{version} took over {INSTALL_TIMEOUT:.0f} s"
                " (is the npm registry reachable?)"
            ) from None
        if done.returncode != 0 or not (package_dir / "package.json").is_file():
            raise PeerUnavailable(
                f"{SKIPPED}npm ci of {PACKAGE}@{version} failed (is the npm registry reachable?): "
                + _npm_error(done.stderr + done.stdout, done.returncode)
            )
        (cache / STAMP).write_text(_stamp() + "\n")
    return package_dir


def _npm_error(output: str, returncode: int) -> str:
    """The telling line of npm's error output ("FetchError: request to ... failed, reason: ...")."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    messages = [line.removeprefix("npm error").strip() for line in lines if line.startswith("npm error")]
    plain = [m for m in messages if m and not m.startswith(("code ", "syscall ", "errno ", "at "))]
    return (plain or messages or lines or [f"exit status {returncode}"])[0]


def available(cache: Path = CACHE) -> str | None:
    """None when the peer can be timed (installing it first if needed), else a one-line reason."""
    try:
        ensure_installed(cache)
    except PeerUnavailable as exc:
        return exc.reason
    return None


@contextlib.contextmanager
def _harness(messages: Sequence[bytes], cache: Path, *options: str) -> Iterator[list[str]]:
    """The harness command line for ``messages`` (written to a temporary folder while it lasts)."""
    package_dir = ensure_installed(cache)
    node = _check_node()
    with tempfile.TemporaryDirectory(prefix="othermail-node-peer-") as tmp:
        paths = []
        for index, raw in enumerate(messages):
            path = Path(tmp) / f"{index:06d}.eml"
            path.write_bytes(raw)
            paths.append(str(path))
        listing = Path(tmp) / "messages.txt"
        listing.write_text("".join(p + "\n" for p in paths))
        peer_options = ["--peer", str(package_dir), "--alias", ALIAS, "--destination", DESTINATION]
        yield [node, str(HARNESS), *peer_options, *options, "--list", str(listing)]


def _rejected(header: dict[str, Any]) -> dict[int, str]:
    return {int(index): str(reason) for index, reason in header["rejected"]}


def run_peer(messages: Sequence[bytes], rounds: int, *, min_batch_ms: float = 2.0, cache: Path = CACHE) -> PeerRun:
    """Time the peer on ``messages`` in one Node process (see harness.js).

    Raises PeerUnavailable when the peer cannot run here, RuntimeError when the harness fails.
    """
    with _harness(messages, cache, "--rounds", str(rounds), "--min-batch-ms", str(min_batch_ms)) as command:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{_rel(HARNESS)} exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if len(result["medians"]) != len(messages):
        raise RuntimeError(f"{_rel(HARNESS)} timed {len(result['medians'])} of {len(messages)} messages")
    return PeerRun(
        peer=result["peer"],
        node=result["node"],
        rounds=result["rounds"],
        medians=[float(x) for x in result["medians"]],
        calls_per_batch=[int(x) for x in result["calls_per_batch"]],
        rejected=_rejected(result),
    )


class PeerSession:
    """The harness kept running (``--serve``), so that a bench interleaves the peer's rounds with its own.

    ``open_session(messages)`` starts it (checks and calibration done); each ``round()`` times every
    message once and returns per-call seconds, in the order given; the caller takes the medians.
    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, process: subprocess.Popen[str], stderr: IO[bytes], count: int) -> None:
        self._process = process
        self._stderr = stderr
        self._count = count
        self._rounds = 0
        header = self._read()
        self.peer: str = header["peer"]
        self.node: str = header["node"]
        self.calls_per_batch: list[int] = [int(x) for x in header["calls_per_batch"]]
        self.rejected: dict[int, str] = _rejected(header)

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=30)
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"{_rel(HARNESS)} --serve exited with {self._process.returncode}: {detail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{_rel(HARNESS)} --serve: {reply['error']}")
        return reply

    def round(self) -> list[float]:
        """One timed round over every message (order rotated each round): per-call seconds."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"round {self._rounds}\n")
        self._process.stdin.flush()
        self._rounds += 1
        times = [float(x) for x in self._read()["times"]]
        if len(times) != self._count:
            raise RuntimeError(f"{_rel(HARNESS)} --serve timed {len(times)} of {self._count} messages")
        return times

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write("quit\n")
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stdin):
            if stream is not None and not stream.closed:
                stream.close()
        self._stderr.close()

    def __enter__(self) -> PeerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(messages: Sequence[bytes], *, min_batch_ms: float = 2.0, cache: Path = CACHE) -> PeerSession:
    """Start the harness in ``--serve`` mode on ``messages``; raises PeerUnavailable like run_peer."""
    stderr = tempfile.TemporaryFile()
    try:
        with _harness(messages, cache, "--serve", "--min-batch-ms", str(min_batch_ms)) as command:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
            )
            try:
                # the header line comes after the messages are read: then the folder may go
                return PeerSession(process, stderr, len(messages))
            except BaseException:
                process.kill()
                process.wait()
                raise
    except BaseException:
        stderr.close()
        raise


def peer_timings(messages: Sequence[bytes], rounds: int, *, cache: Path = CACHE) -> list[float] | None:
    """Per-message median seconds of the peer's full path, or None after printing why it was skipped."""
    try:
        run = run_peer(messages, rounds, cache=cache)
    except PeerUnavailable as exc:
        print(exc.reason)
        return None
    if run.rejected:
        print(f"Node peer ({run.peer}) rejected {run.rejected_summary()}; they are timed all the same")
    return run.medians


# ------------------------------------------------------------------------------------------------
# Run alone
# ------------------------------------------------------------------------------------------------


def _find_corpus(option: str | None) -> Path:
    if option:
        return Path(option)
    env = os.environ.get("OTHERMAIL_CORPUS")
    if env:
        return Path(env)
    return (ROOT / ".." / "shared" / "corpus").resolve()


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", help="folder of .eml files (default: $OTHERMAIL_CORPUS or ../shared/corpus)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after calibration (default 7)")
    parser.add_argument("--min-batch-ms", type=float, default=2.0, help="shortest timed batch (default 2 ms)")
    args = parser.parse_args(argv)

    sys.dont_write_bytecode = True  # leave no bench/__pycache__ behind
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import _measure as gen  # bench/_measure.py: the generated messages bench/rewrite.py times

    small = gen.typical_message(2048)
    medium = gen.large_message(100_000)
    corpus_dir = _find_corpus(args.corpus)
    corpus: list[bytes] = []
    if corpus_dir.is_dir():
        corpus = [p.read_bytes() for p in sorted(corpus_dir.rglob("*.eml")) if p.is_file()]
        note = f"{corpus_dir} ({len(corpus)} .eml files, {sum(map(len, corpus)):,} bytes)"
        if not corpus:
            note = f"{corpus_dir} has no .eml file: corpus row skipped"
    else:
        note = f"not found at {corpus_dir}: corpus row skipped (set OTHERMAIL_CORPUS or --corpus)"
    print(f"corpus    : {note}")

    try:
        run = run_peer([small, medium, *corpus], args.rounds, min_batch_ms=args.min_batch_ms)
    except PeerUnavailable as exc:
        print(exc.reason)
        return 0
    print(f"peer      : {run.peer} on node {run.node}, installed in {_rel(CACHE)}")
    print(
        f"timed     : decode + processMessage + encode per message, median of {run.rounds} rounds "
        f"(batches of at least {args.min_batch_ms:g} ms)"
    )
    labels = [f"2 KB message ({len(small):,} bytes)", f"100 KB message ({len(medium):,} bytes)"]
    for index, label in enumerate(labels):
        flag = f"  REJECTED: {run.rejected[index]}" if index in run.rejected else ""
        print(f"{label:<30}: {_us(run.medians[index])}{flag}")
    if corpus:
        medians = run.medians[2:]
        total = sum(medians)
        rejected = {i - 2: reason for i, reason in run.rejected.items() if i >= 2}
        summary = PeerRun(run.peer, run.node, run.rounds, medians, run.calls_per_batch[2:], rejected)
        print(
            f"{'corpus, ' + str(len(corpus)) + ' messages':<30}: {total * 1e3:,.2f} ms per pass "
            f"(sum of medians), {len(corpus) / total:,.0f} msg/s; per message median "
            f"{_us(statistics.median(medians))}, max {_us(max(medians))}"
        )
        print(f"{'corpus rejected':<30}: {summary.rejected_summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
