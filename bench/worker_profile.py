"""Where one worker's time goes when it forwards through the real flow on PostgreSQL (issue 15).

    .venv/bin/python bench/worker_profile.py [--messages 2000] [--aliases 1000] [--limits generous]
                                             [--one-way] [--profile PATH]

bench/scale.py's worker without its harness: one process, a fresh database loaded with
``--aliases`` aliases (bench/_scale_load.py), the runtime bench/scale.py builds
(``Runtime.build(settings, sender=MemorySender())``), 100 messages of warm-up, then
``forwarder.process`` on 2 KB messages to random aliases. It prints, per message:

- wall and CPU time of an unobserved run over half the messages;
- the SQL statements, and the commands psycopg sends besides them (BEGIN, COMMIT, ROLLBACK,
  DEALLOCATE: each one more round trip), and the statements SQLAlchemy compiled again (no cache
  hit), over 300 messages;
- a cProfile of the other half, its own time summed per package (the time psycopg spends blocked
  on the server shown apart), written to ``--profile`` for ``python -m pstats``.

Figures are from a shared machine: compare runs side by side.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import _scale_load as data  # noqa: E402  (bench/ on the path, as the other benches do)
import scale  # noqa: E402

WARMUP = 100
OBSERVED = 300


@contextmanager
def database(aliases: int) -> Iterator[str]:
    from sqlalchemy import make_url

    import migrations

    admin = make_url(scale.DEFAULT_URL)
    name = f"othermail_worker_profile_{os.getpid()}"
    scale._recreate(admin, name)
    try:
        url = admin.set(database=name)
        text = url.render_as_string(hide_password=False)
        migrations.upgrade(text)
        data.load(scale._conninfo(url), aliases)
        yield text
    finally:
        scale._drop(admin, name)


@contextmanager
def counting_commands(counts: Counter[str]) -> Iterator[None]:
    """Counts the commands psycopg sends outside statements (each its own round trip)."""
    import psycopg._connection_base as base

    real = base.BaseConnection._exec_command

    def counted(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        word = command.split()[0] if isinstance(command, bytes | str) else b"(composed)"
        counts[word.decode() if isinstance(word, bytes) else word] += 1
        return real(self, command, *args, **kwargs)

    base.BaseConnection._exec_command = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        base.BaseConnection._exec_command = real  # type: ignore[method-assign]


@contextmanager
def counting_statements(engine: Any, statements: Counter[str], compiled: Counter[str]) -> Iterator[None]:
    from sqlalchemy import event

    def after(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        short = " ".join(statement.split())[:100]
        statements[short] += 1
        if context.cache_hit != context.dialect.CACHE_HIT:
            compiled[f"{context.cache_hit}: {short}"] += 1

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)


def by_package(stats: pstats.Stats) -> Counter[str]:
    """Own time per package; psycopg's wait for the server apart (blocked, not computing)."""
    totals: Counter[str] = Counter()
    for (path, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if name == "wait" and path.endswith("psycopg/connection.py"):
            totals["(psycopg blocked on the server)"] += own
            continue
        for part in ("sqlalchemy", "psycopg", "forwarder/core", "forwarder/adapters/sql", "forwarder/flows"):
            if f"/{part}/" in path:
                totals[part.replace("/", ".")] += own
                break
        else:
            totals["builtins and C" if path == "~" else "other Python"] += own
    return totals


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000, help="measured messages (half timed, half profiled)")
    parser.add_argument("--aliases", type=int, default=1000)
    parser.add_argument("--limits", choices=("generous", "default", "off"), default="generous")
    parser.add_argument("--one-way", action="store_true", help="turn two-way forwarding off")
    parser.add_argument("--profile", default=os.path.join(tempfile.gettempdir(), "othermail-worker.prof"))
    args = parser.parse_args(argv)
    half = max(1, args.messages // 2)

    from forwarder.adapters.senders import MemorySender
    from forwarder.flows.forward import Inbound
    from forwarder.runtime import Runtime

    with database(args.aliases) as url, tempfile.TemporaryDirectory(prefix="othermail-profile-") as data_dir:
        job = scale.Job(url, args.aliases, args.messages, 0, args.limits, not args.one_way, 15, 600.0)
        runtime = Runtime.build(scale._settings(job, data_dir), sender=MemorySender())
        forwarder = runtime.forwarder
        rng = random.Random(15)
        batch = []
        for k in range(WARMUP + OBSERVED + 2 * half):
            to = data.alias_address(rng.randrange(args.aliases))
            message_id = f"profile-{k}@bench.example"
            batch.append((data.message(rng, to, message_id), Inbound(message_id, (to,))))

        def run(items: list[tuple[bytes, Any]]) -> None:
            for raw, inbound in items:
                forwarder.process(raw, inbound)

        try:
            run(batch[:WARMUP])
            observed = batch[WARMUP : WARMUP + OBSERVED]
            commands: Counter[str] = Counter()
            statements: Counter[str] = Counter()
            compiled: Counter[str] = Counter()
            with counting_commands(commands), counting_statements(runtime.engine, statements, compiled):
                run(observed)
            timed = batch[WARMUP + OBSERVED : WARMUP + OBSERVED + half]
            wall, cpu = time.perf_counter(), time.process_time()
            run(timed)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            profiler = cProfile.Profile()
            profiler.runcall(run, batch[WARMUP + OBSERVED + half :])
            profiler.dump_stats(args.profile)
        finally:
            runtime.close()

    two_way = "one-way" if args.one_way else "two-way"
    print(f"one worker, PostgreSQL, {args.aliases:,} aliases, {two_way}, limits {args.limits}, 2 KB messages")
    print(f"  timed over {half} messages: wall {1000 * wall / half:.2f} ms, CPU {1000 * cpu / half:.2f} ms per message")
    per: Callable[[int], str] = lambda n: f"{n / OBSERVED:5.2f}"  # noqa: E731
    print(f"  over {OBSERVED} messages, per message:")
    print(f"    {per(sum(statements.values()))} SQL statements")
    for text, n in statements.most_common():
        print(f"      {per(n)}  {text}")
    round_trips = sum(statements.values()) + sum(commands.values())
    print(f"    {per(round_trips)} round trips to the server: the statements and the commands below")
    print(f"    {per(sum(commands.values()))} other commands (round trips): " + ", ".join(
        f"{word} {n / OBSERVED:.2f}" for word, n in commands.most_common()
    ))  # fmt: skip
    for text, n in compiled.most_common():
        print(f"    compiled again {per(n)}  {text}")
    stats = pstats.Stats(args.profile)
    total = sum(by_package(stats).values())
    print(f"  cProfile of {len(batch) - WARMUP - OBSERVED - half} messages (own time per package, profiled):")
    for name, own in by_package(stats).most_common():
        print(f"    {1000 * own / max(1, args.messages - half):7.3f} ms/message  {100 * own / total:4.1f}%  {name}")
    print(f"  the profile: .venv/bin/python -m pstats {args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
