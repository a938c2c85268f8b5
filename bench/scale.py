"""Forwarding at scale on PostgreSQL: 1,000 aliases next to 1,000,000, with concurrent workers.

    .venv/bin/python bench/scale.py                      # 1,000 and 1,000,000 aliases, 8 workers
    .venv/bin/python bench/scale.py --quick              # 1,000 and 100,000 aliases, fewer messages
    .venv/bin/python bench/scale.py --aliases 200000 --messages 4000 --workers 4 --keep
    .venv/bin/python bench/scale.py --commit HEAD --one-way  # a copy of HEAD, not the working tree

For each size it makes its own database on the PostgreSQL server of ``--url`` (127.0.0.1:5432, user
postgres: ``othermail_bench_scale_<aliases>``, dropped first if it exists, and at the end unless
``--keep``), migrates it with the project's Alembic migrations, and loads the aliases with COPY
(bench/_scale_load.py: ten aliases per user, one verified destination per user). Then ``--workers``
processes (not threads: with the GIL, threads would measure Python rather than the database) each
build the real runtime, ``Runtime.build(settings, sender=MemorySender())``, warm up, wait for the
others, and run ``forwarder.process(raw, Inbound(...))`` on 2 KB messages to random aliases. Per
message they record, from SQLAlchemy events on their engine:

- statements: ``before_cursor_execute`` events (pool pre-pings are not statements: counted apart,
  with the pool checkouts and the BEGIN, COMMIT and ROLLBACK commands psycopg sends);
- lookup: the execution time of the statement that reads the alias and its destinations (the SQL
  naming ``alias_destinations``), round trip included;
- DB work: the time the message holds a database connection, from asking the engine for it (pool
  checkout and pre-ping included) to its check-in (the pool's reset included), summed over the
  message's connections, less the time the forwarder's decision runs inside ``Directory.begin``
  (the core's rewrite, pure Python); everything else done on a connection, SQLAlchemy included,
  counts.

A size's run ends after ``--messages`` messages or ``--seconds`` seconds, whichever comes first, so
a slow tree still finishes in a few minutes (the outcome lines say when the time limit ended it).
``--synchronous-commit off`` sets that on the bench databases only: commits then no longer wait for
the WAL flush (about 3 ms a flush on this machine's disk), which shows what the disk costs.

The working tree is measured as it is, uncommitted edits included; ``--commit REV`` measures a
copy of that commit instead (``git archive`` into a temporary folder), and the output names the
commit either way.

It prints the command line, the PostgreSQL version, the outcome counts (a message dropped by a
rate limit would show there) and a table with both sizes side by side, judged against the targets
of issue 15: at least 1,000 forwarded messages/s, and p99 of the per-message database work at most
2 ms. The exit status is 0 once it has measured, whatever the verdict (``make bench`` runs the
next bench; ``--strict``: 1 when the larger size misses a target), 1 when a worker failed, 2 when
PostgreSQL is unreachable.

The rate limits are on, as in production, at 1,000,000 messages per hour and per day for an alias
and for a user (``--limits generous``): every window is opened and counted, none drops a message.
``--limits default`` uses the settings' defaults (100/500 per alias, 200/1000 per user: a long run
at 1,000 aliases would drop), ``--limits off`` none. Two-way forwarding is on, as by default
(``--one-way`` turns it off).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this tree first, ahead of an editable install's (a copy of a commit then measures that commit)
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import _scale_load as data  # noqa: E402  (bench/ on the path, as the other benches do)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "othermail_bench_scale"
TARGET_RATE = 1000.0  # forwarded messages per second
TARGET_DB_P99_MS = 2.0
WARMUP = 20  # messages per worker before the timed run
GENEROUS = 1_000_000
#: A fixed contact key (two-way aliases seal the contacts' addresses with it): 32 bytes.
CONTACT_KEY = ("bench", bytes(range(32)))


class Unreachable(Exception):
    """PostgreSQL cannot be reached (exit status 2)."""


class BenchError(Exception):
    """The bench could not measure (a worker failed or hung): one line, exit status 1."""


# ---------------------------------------------------------------- per-message probe (in a worker)


@dataclass
class Sample:
    statements: int = 0
    lookups: int = 0
    lookup: float = 0.0
    db: float = 0.0
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    checkouts: int = 0
    pings: int = 0


@dataclass
class Probe:
    """Counts and times one message's database work on one engine (see the module docstring)."""

    sample: Sample = field(default_factory=Sample)
    _depth: int = 0  # connections held
    _decide_depth: list[int] = field(default_factory=list)  # connections held when a decision began
    _last: float = 0.0
    _lookup_sql: dict[str, bool] = field(default_factory=dict)

    def _in_db(self) -> bool:
        if self._depth == 0:
            return False
        return not self._decide_depth or self._depth > self._decide_depth[-1]

    def _mark(self) -> None:
        now = time.perf_counter()
        if self._in_db():
            self.sample.db += now - self._last
        self._last = now

    def is_lookup(self, statement: str) -> bool:
        """Whether ``statement`` reads an alias and its destinations (a query naming alias_destinations)."""
        found = self._lookup_sql.get(statement)
        if found is None:
            head = statement.lstrip()[:6].upper()
            found = self._lookup_sql[statement] = (
                head.startswith(("SELECT", "WITH")) and "alias_destinations" in statement
            )
        return found

    def install(self, engine: Any, directory: Any) -> None:
        from sqlalchemy import event

        probe = self
        connect = engine.connect

        def timed_connect() -> Any:
            probe._mark()
            probe._depth += 1
            try:
                return connect()
            except BaseException:
                probe._mark()
                probe._depth -= 1
                raise

        setattr(engine, "connect", timed_connect)  # noqa: B010  (an instance attribute hides the method)

        @event.listens_for(engine, "checkout")
        def _checkout(*_: Any) -> None:
            probe.sample.checkouts += 1

        @event.listens_for(engine, "checkin")
        def _checkin(*_: Any) -> None:
            if probe._depth:
                probe._mark()
                probe._depth -= 1

        @event.listens_for(engine, "before_cursor_execute")
        def _before(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
            context._bench_started = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
            elapsed = time.perf_counter() - context._bench_started
            probe.sample.statements += 1
            if probe.is_lookup(statement):
                probe.sample.lookups += 1
                probe.sample.lookup += elapsed

        # what psycopg sends, not SQLAlchemy's commit and rollback calls: on an autocommit
        # connection those send nothing (the hot path's single statements run there)
        import psycopg._connection_base as base

        sent = base.BaseConnection._exec_command

        def counted_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
            word = command.split()[0] if isinstance(command, bytes) else b""
            if word == b"BEGIN":
                probe.sample.begins += 1
            elif word == b"COMMIT":
                probe.sample.commits += 1
            elif word == b"ROLLBACK":
                probe.sample.rollbacks += 1
            return sent(self, command, *args, **kwargs)

        setattr(base.BaseConnection, "_exec_command", counted_command)  # noqa: B010

        dialect = engine.dialect
        ping = dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> Any:
            probe.sample.pings += 1
            return ping(dbapi_connection)

        setattr(dialect, "do_ping", counted_ping)  # noqa: B010

        begin = getattr(directory, "begin", None)
        if begin is None:  # no decision to leave out of the DB work
            return

        def timed_begin(*args: Any, **kwargs: Any) -> Any:
            if len(args) >= 4:
                args = (*args[:3], probe.timed_decision(args[3]), *args[4:])
            elif "decide" in kwargs:
                kwargs["decide"] = probe.timed_decision(kwargs["decide"])
            return begin(*args, **kwargs)

        setattr(directory, "begin", timed_begin)  # noqa: B010

    def timed_decision(self, decide: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            self._mark()
            self._decide_depth.append(self._depth)
            try:
                return decide(*args, **kwargs)
            finally:
                self._mark()
                self._decide_depth.pop()

        return run

    def start(self) -> None:
        self.sample = Sample()
        self._last = time.perf_counter()

    def stop(self) -> Sample:
        self._mark()
        return self.sample


# ---------------------------------------------------------------- a worker process


@dataclass(frozen=True)
class Job:
    url: str
    aliases: int
    messages: int
    worker: int
    limits: str
    two_way: bool
    seed: int
    seconds: float


@dataclass
class WorkerResult:
    worker: int
    started: float = 0.0
    finished: float = 0.0
    # statements, lookups, lookup s, db s, commits, rollbacks, checkouts, pings, whole s, begins
    samples: list[tuple[int, int, float, float, int, int, int, int, float, int]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    #: the time limit (--seconds) ended the run before every message was forwarded
    stopped: bool = False
    cpu: float = 0.0  # seconds of this process's CPU in the timed run
    error: str = ""


def _settings(job: Job, data_dir: str) -> Any:
    from forwarder.flows.mail_limits import MailLimits
    from forwarder.settings import Settings

    limits = {
        "generous": MailLimits(GENEROUS, GENEROUS, GENEROUS, GENEROUS),
        "off": MailLimits(),
        "default": Settings().mail_limits,
    }[job.limits]
    return Settings(
        data_dir=Path(data_dir),
        database_url=job.url,
        domains=(data.DOMAIN,),
        mail_limits=limits,
        contact_keys=(CONTACT_KEY,),
        two_way=job.two_way,
    )


def worker_main(job: Job, ready: Any, go: Any, results: Any, release: Any) -> None:
    result = WorkerResult(job.worker)
    runtime = None
    try:
        from forwarder.adapters.senders import MemorySender
        from forwarder.flows.forward import Inbound
        from forwarder.runtime import Runtime

        with tempfile.TemporaryDirectory(prefix="othermail-scale-") as data_dir:
            sender = MemorySender()
            runtime = Runtime.build(_settings(job, data_dir), sender=sender)
            probe = Probe()
            probe.install(runtime.engine, runtime.directory)
            forwarder = runtime.forwarder
            rng = random.Random(job.seed)
            total = WARMUP + job.messages
            batch = []
            for k in range(total):
                to = data.alias_address(rng.randrange(job.aliases))
                message_id = f"scale-{job.aliases}-{job.worker}-{k}@bench.example"
                batch.append((data.message(rng, to, message_id), Inbound(message_id, (to,))))
            for raw, inbound in batch[:WARMUP]:
                forwarder.process(raw, inbound)
            sender.sent.clear()
            ready.put(job.worker)
            go.wait()
            result.started = time.monotonic()
            cpu = time.process_time()
            deadline = result.started + job.seconds
            for raw, inbound in batch[WARMUP:]:
                if time.monotonic() >= deadline:
                    result.stopped = True
                    break
                began = time.perf_counter()
                probe.start()
                reports = forwarder.process(raw, inbound)
                s = probe.stop()
                took = time.perf_counter() - began
                result.samples.append(
                    (
                        s.statements,
                        s.lookups,
                        s.lookup,
                        s.db,
                        s.commits,
                        s.rollbacks,
                        s.checkouts,
                        s.pings,
                        took,
                        s.begins,
                    )
                )
                result.outcomes.update(report.outcome.value for report in reports)
                result.sent += len(sender.sent)
                sender.sent.clear()
            result.finished = time.monotonic()
            result.cpu = time.process_time() - cpu
            # the connections stay open until the parent has read their backends' CPU time
            results.put(result)
            release.wait(job.seconds + 300)
    except Exception as exc:  # reported by the parent as one line
        result.error = f"{exc.__class__.__name__}: {exc}"
        ready.put(job.worker)
        results.put(result)
    finally:
        if runtime is not None:
            runtime.close()


# ---------------------------------------------------------------- the parent


@dataclass
class Measured:
    aliases: int
    users: int
    load_seconds: float
    analyze_seconds: float
    rate: float
    wall: float
    messages: int
    lookup_p50: float
    lookup_p99: float
    db_p50: float
    db_p99: float
    whole_p50: float
    whole_p99: float
    statements_mean: float
    statements_min: int
    statements_max: int
    load: tuple[float, float]  # the machine's 1-minute load average before and after
    per_message: dict[str, float]
    outcomes: Counter[str]
    sent: int
    stopped: bool
    #: CPU seconds per message: the workers' (Python), and PostgreSQL's backends' (None: unknown)
    worker_cpu: float
    server_cpu: float | None

    @property
    def passed(self) -> bool:
        return self.rate >= TARGET_RATE and self.db_p99 * 1000 <= TARGET_DB_P99_MS


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _conninfo(url: Any) -> str:
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


def _admin(url: Any) -> Any:
    import psycopg

    try:
        return psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise Unreachable(f"PostgreSQL at {url.host}:{url.port or 5432} is unreachable ({reason})") from None


def _recreate(admin_url: Any, name: str, synchronous_commit: str = "on") -> None:
    with _admin(admin_url) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
        if synchronous_commit != "on":
            connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}')


def _drop(admin_url: Any, name: str) -> None:
    with _admin(admin_url) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backend_cpu(url: Any, database: str) -> dict[int, float] | None:
    """CPU seconds used so far by each PostgreSQL backend serving ``database`` (None: /proc cannot
    tell, as when the server runs on another machine or in a container)."""
    with _admin(url) as connection:
        pids = [
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
            )
        ]
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def _cpu_since(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _measure(url: Any, loaded: data.Loaded, args: argparse.Namespace) -> Measured:
    load_before = os.getloadavg()[0]
    context = multiprocessing.get_context("fork")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    share, extra = divmod(args.messages, args.workers)
    jobs = [
        Job(
            url.render_as_string(hide_password=False),
            loaded.aliases,
            share + (1 if w < extra else 0),
            w,
            args.limits,
            not args.one_way,
            args.seed * 1000 + w,
            args.seconds,
        )
        for w in range(args.workers)
    ]
    release = context.Event()
    processes = [context.Process(target=worker_main, args=(job, ready, go, results, release)) for job in jobs]
    database = url.database or ""
    try:
        for process in processes:
            process.start()
        try:
            for _ in processes:
                ready.get(timeout=args.timeout)
            backends = _backend_cpu(url, database)
            go.set()
            collected: list[WorkerResult] = [results.get(timeout=args.seconds + args.timeout) for _ in processes]
            backend_cpu = _cpu_since(backends, _backend_cpu(url, database))
        except queue.Empty:
            raise BenchError(f"a worker did not answer within {args.timeout:g} s (--timeout)") from None
        finally:
            release.set()
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    errors = [r.error for r in collected if r.error]
    if errors:
        raise BenchError(f"a worker failed: {errors[0]}")
    samples = [s for r in collected for s in r.samples]
    wall = max(r.finished for r in collected) - min(r.started for r in collected)
    outcomes: Counter[str] = Counter()
    for r in collected:
        outcomes.update(r.outcomes)
    lookups = [s[2] for s in samples if s[1]]
    count = len(samples)
    return Measured(
        aliases=loaded.aliases,
        users=loaded.users,
        load_seconds=loaded.copy_seconds,
        analyze_seconds=loaded.analyze_seconds,
        rate=count / wall if wall > 0 else float("nan"),
        wall=wall,
        messages=count,
        lookup_p50=_percentile(lookups, 0.50),
        lookup_p99=_percentile(lookups, 0.99),
        db_p50=_percentile([s[3] for s in samples], 0.50),
        db_p99=_percentile([s[3] for s in samples], 0.99),
        whole_p50=_percentile([s[8] for s in samples], 0.50),
        whole_p99=_percentile([s[8] for s in samples], 0.99),
        statements_mean=statistics.fmean(s[0] for s in samples),
        statements_min=min(s[0] for s in samples),
        statements_max=max(s[0] for s in samples),
        load=(load_before, os.getloadavg()[0]),
        per_message={
            name: sum(s[i] for s in samples) / count
            for name, i in (
                ("lookups", 1),
                ("BEGINs", 9),
                ("COMMITs", 4),
                ("ROLLBACKs", 5),
                ("checkouts", 6),
                ("pings", 7),
            )
        },
        outcomes=outcomes,
        sent=sum(r.sent for r in collected),
        stopped=any(r.stopped for r in collected),
        worker_cpu=sum(r.cpu for r in collected) / count,
        server_cpu=backend_cpu / count if backend_cpu is not None else None,
    )


def _run_size(admin_url: Any, aliases: int, args: argparse.Namespace) -> Measured:
    import migrations

    name = f"{args.database}_{aliases}"
    url = admin_url.set(database=name)
    _recreate(admin_url, name, args.synchronous_commit)
    try:
        print(f"  {aliases:>9,} aliases: database {name}, migrating...", end="", flush=True)
        migrations.upgrade(url.render_as_string(hide_password=False))
        print(" loading...", end="", flush=True)
        loaded = data.load(_conninfo(url), aliases)
        print(
            f" {loaded.copy_seconds:.1f} s COPY + {loaded.analyze_seconds:.1f} s VACUUM ANALYZE;"
            f" forwarding {args.messages:,} messages (at most {args.seconds:g} s)...",
            end="",
            flush=True,
        )
        measured = _measure(url, loaded, args)
        print(f" {measured.messages:,} in {measured.wall:.1f} s", flush=True)
        return measured
    finally:
        if not args.keep:
            _drop(admin_url, name)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _report(rows: Sequence[Measured], args: argparse.Namespace) -> None:
    print()
    header = (
        f"{'aliases':>10} {'users':>8} {'msg/s':>7} {'lookup p50/p99 ms':>18} {'DB work p50/p99 ms':>19}"
        f" {'stmts/msg':>10} {'min-max':>7}  target"
    )
    print(header)
    print("-" * len(header))
    for m in rows:
        verdict = "PASS" if m.passed else "FAIL"
        misses = []
        if m.rate < TARGET_RATE:
            misses.append(f"msg/s < {TARGET_RATE:,.0f}")
        if m.db_p99 * 1000 > TARGET_DB_P99_MS:
            misses.append(f"DB p99 > {TARGET_DB_P99_MS:g} ms")
        lookup = f"{_ms(m.lookup_p50)} / {_ms(m.lookup_p99)}"
        db = f"{_ms(m.db_p50)} / {_ms(m.db_p99)}"
        spread = f"{m.statements_min}-{m.statements_max}"
        print(
            f"{m.aliases:>10,} {m.users:>8,} {m.rate:>7,.0f} {lookup:>18} {db:>19}"
            f" {m.statements_mean:>10.2f} {spread:>7}"
            f"  {verdict}{' (' + ', '.join(misses) + ')' if misses else ''}"
        )
    print()
    print("per message: forwarder.process() p50/p99 ms, and database calls (mean):")
    for m in rows:
        parts = ", ".join(f"{name} {value:.2f}" for name, value in m.per_message.items())
        print(f"  {m.aliases:>10,} aliases: process {_ms(m.whole_p50)} / {_ms(m.whole_p99)}; {parts}")
    print("CPU per message: the workers' Python, PostgreSQL's backends; the rate those allow on this machine's cores:")
    cores = os.cpu_count() or 1
    for m in rows:
        server = f"{_ms(m.server_cpu)} ms" if m.server_cpu is not None else "n/a (no /proc view of the server)"
        ceiling = cores / (m.worker_cpu + (m.server_cpu or 0.0))
        print(
            f"  {m.aliases:>10,} aliases: workers {_ms(m.worker_cpu)} ms, PostgreSQL {server};"
            f" at most {ceiling:,.0f} msg/s on {cores} cores"
        )
    print("machine load (1-minute load average before / after each size; other work on the machine shows here):")
    for m in rows:
        print(f"  {m.aliases:>10,} aliases: {m.load[0]:.1f} / {m.load[1]:.1f} on {os.cpu_count()} cores")
    print("outcomes:")
    for m in rows:
        outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(m.outcomes.items()))
        stopped = f" (stopped by --seconds {args.seconds:g} before all {args.messages:,})" if m.stopped else ""
        print(f"  {m.aliases:>10,} aliases: {outcomes}; {m.sent:,} copies sent of {m.messages:,} messages{stopped}")
    if len(rows) == 2 and rows[0].rate > 0:
        small, large = rows
        print(
            f"ratios {large.aliases:,} / {small.aliases:,} aliases: msg/s {large.rate / small.rate:.2f}x,"
            f" lookup p99 {large.lookup_p99 / small.lookup_p99:.2f}x, DB work p99 {large.db_p99 / small.db_p99:.2f}x"
        )
    print(
        f"targets (issue 15): >= {TARGET_RATE:,.0f} forwarded msg/s and DB work p99 <= {TARGET_DB_P99_MS:g} ms,"
        f" with {args.workers} worker processes on {os.cpu_count()} cores, PostgreSQL on the same machine"
    )


#: Set by --commit for the copy it runs: the commit that copy was exported from.
EXPORTED = "OTHERMAIL_SCALE_EXPORTED"


def _git(*command: str) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", str(ROOT), *command], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise OSError(done.stderr.strip())
    return done.stdout.strip()


def _command() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def _run_exported(revision: str, argv: Sequence[str]) -> int:
    """Run this bench in a copy of ``revision`` (``git archive``), so that uncommitted edits in the
    working tree (other people's work in progress) are not what is measured."""
    import io
    import shutil
    import subprocess
    import tarfile

    try:
        commit = _git("rev-parse", "--short", f"{revision}^{{commit}}")
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"scale.py: cannot export {revision!r}: {exc}", file=sys.stderr)
        return 2
    copy = Path(tempfile.mkdtemp(prefix="othermail-scale-tree-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(copy, filter="data")
        script = copy / "bench" / "scale.py"
        if not script.exists():
            print(f"scale.py: commit {commit} has no bench/scale.py", file=sys.stderr)
            return 2
        rest, skip = [], False
        for argument in argv:  # the same options, less --commit REV / --commit=REV
            if skip or argument.startswith("--commit="):
                skip = False
            elif argument == "--commit":
                skip = True
            else:
                rest.append(argument)
        env = {**os.environ, EXPORTED: commit, EXPORTED + "_COMMAND": _command()}
        return subprocess.run([sys.executable, str(script), *rest], env=env, check=False).returncode
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _tree() -> str:
    """The commit measured, and whether tracked files differ from it."""
    import subprocess

    if os.environ.get(EXPORTED):
        return f"commit {os.environ[EXPORTED]} (a copy made with git archive: --commit)"

    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    except (OSError, subprocess.SubprocessError):
        return f"{ROOT} (not a git checkout)"
    return f"commit {commit}" + (f", with uncommitted changes to {len(changed)} files" if changed else "")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--aliases", type=int, help="the large size (default 1,000,000; --quick: 100,000)")
    parser.add_argument("--small", type=int, default=1000, help="the size measured next to it (0: none)")
    parser.add_argument("--messages", type=int, help="messages forwarded per size (default 20,000; --quick: 5,000)")
    parser.add_argument("--workers", type=int, default=8, help="worker processes")
    parser.add_argument("--seconds", type=float, help="at most this long forwarding per size (default 60; --quick: 20)")
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="the bench databases' synchronous_commit (off: commits do not wait for the WAL flush)",
    )
    parser.add_argument("--quick", action="store_true", help="100,000 aliases and 5,000 messages per size")
    parser.add_argument("--limits", choices=("generous", "default", "off"), default="generous")
    parser.add_argument("--one-way", action="store_true", help="turn two-way forwarding off")
    parser.add_argument("--url", default=DEFAULT_URL, help="the server, and a database to connect to first")
    parser.add_argument("--database", default=DATABASE_PREFIX, help="name prefix of the databases made")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--strict", action="store_true", help="exit 1 when the larger size misses a target")
    parser.add_argument(
        "--commit", metavar="REV", help="measure a copy of this commit (git archive), not the working tree"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a worker to start, or finish")
    args = parser.parse_args(argv)
    if args.aliases is None:
        args.aliases = 100_000 if args.quick else 1_000_000
    if args.messages is None:
        args.messages = 5_000 if args.quick else 20_000
    if args.seconds is None:
        args.seconds = 20.0 if args.quick else 60.0
    if args.aliases < 1 or args.small < 0 or args.messages < args.workers or args.workers < 1:
        parser.error("--aliases and --workers must be at least 1, --messages at least --workers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.commit:
        return _run_exported(args.commit, sys.argv[1:] if argv is None else argv)
    from sqlalchemy import make_url

    admin_url = make_url(args.url)
    if admin_url.get_backend_name() != "postgresql":
        print("scale.py: --url must name a PostgreSQL server", file=sys.stderr)
        return 2
    print("command: " + os.environ.get(EXPORTED + "_COMMAND", _command()))
    try:
        with _admin(admin_url) as connection:
            version = connection.execute("SELECT version()").fetchone()
    except Unreachable as exc:
        print(f"scale.py: {exc}", file=sys.stderr)
        return 2
    print(f"server: {version[0] if version else '?'}")
    print(f"tree: {_tree()}")
    print(
        f"settings: {args.workers} worker processes, {args.messages:,} messages of 2 KB per size, limits {args.limits},"
        f" two-way {'off' if args.one_way else 'on'}, {data.ALIASES_PER_USER} aliases per user,"
        f" at most {args.seconds:g} s per size, synchronous_commit {args.synchronous_commit}"
    )
    sizes = [size for size in (args.small, args.aliases) if size]
    rows = []
    try:
        for size in dict.fromkeys(sizes):
            rows.append(_run_size(admin_url, size, args))
    except Unreachable as exc:
        print(f"\nscale.py: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"\nscale.py: {exc}", file=sys.stderr)
        return 1
    _report(rows, args)
    return 1 if args.strict and not rows[-1].passed else 0


if __name__ == "__main__":
    sys.exit(main())
