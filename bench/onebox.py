"""One-box throughput: SMTP clients -> ``othermail run`` -> forwarder -> SMTP relay sink, on loopback.

    .venv/bin/python bench/onebox.py [--messages 5000] [--clients 4] [--size-kb 10] [--workers 4]
                                     [--modes processes,threads]

Every part is a separate process, as in production: the relay sink (aiosmtpd), ``othermail run``
(web app, listener, spool, forwarder in worker processes or on threads, SQLite) and the SMTP
clients. For each mode in ``--modes`` (one after the other, in the same run) the script prints
messages per second from the first DATA to the last message at the relay, p50/p99 latency from
DATA to the relay, lost and duplicated counts (each from what the clients were told and what the
sink recorded), the CPU seconds the box (its process and its worker processes) spent per message
while the clients sent and it forwarded (less noisy than wall throughput on a shared machine), with
the part of it spent in the kernel, the CPU the client processes and the relay sink spent per
message on the same machine, the database it used and the time from starting the process to the
first accepted message. ``--profile DIR`` runs the box under cProfile, every thread of the listener's
process and of each worker timed on its own CPU clock (bench/_profile_hook/sitecustomize.py), and
prints where each side spends it; cProfile slows Python calls more than system calls, so read the
shares, not the totals. It exits non-zero when a target is missed in the first mode. Bounded: it
gives up after ``--timeout`` seconds per mode.

Targets (issue 15 point 6): >= 600 messages/s, p99 < 250 ms, 0 lost and 0 duplicated; first
message within 3 s (issue 4).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "bench@othermail.example"
TARGET_RATE = 600.0
TARGET_P99_MS = 250.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- the relay sink (its own process)


def sink_main(port: int, out: str) -> None:

    sys.path.insert(0, str(ROOT))
    from aiosmtpd.controller import Controller

    arrivals: list[tuple[str, float]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.time()
            content = envelope.original_content or b""
            start = content.find(b"X-Bench-Id: ")
            bench_id = content[start + 12 : content.find(b"\r\n", start)].decode() if start >= 0 else "?"
            arrivals.append((bench_id, now))
            return "250 2.0.0 OK"

    from forwarder.adapters.smtp.server import FastSMTP

    class Sink(Controller):
        # the listener's block-reading DATA (forwarder/adapters/smtp/server.py): a relay runs on a machine of
        # its own, so the stand-in should take as little of this one's two cores as it can
        def factory(self) -> FastSMTP:
            return FastSMTP(self.handler, **self.SMTP_kwargs)

    controller = Sink(Handler(), hostname="127.0.0.1", port=port, data_size_limit=10 * 1024 * 1024)
    controller.start()
    done = False

    def finish(*_: object) -> None:
        nonlocal done
        done = True

    signal.signal(signal.SIGTERM, finish)
    print("ready", flush=True)
    while not done:
        time.sleep(0.05)
    controller.stop()
    Path(out).write_text(json.dumps(arrivals))


# ---------------------------------------------------------------- the SMTP clients (own processes)


def message(bench_id: str, size: int) -> bytes:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    body = line * max(1, size // len(line))
    head = (
        f"From: Sender <sender@example.net>\r\nTo: {ALIAS}\r\nSubject: bench {bench_id}\r\n"
        f"Message-ID: <{bench_id}@example.net>\r\nX-Bench-Id: {bench_id}\r\n\r\n"
    ).encode()
    return head + body


def client_main(args: tuple[int, int, int, int]) -> list[tuple[str, float, int]]:
    port, client, count, size = args
    results: list[tuple[str, float, int]] = []
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
    smtp.ehlo()
    for n in range(count):
        bench_id = f"c{client}-{n}"
        raw = message(bench_id, size)
        smtp.mail("sender@example.net")
        smtp.rcpt(ALIAS)
        started = time.time()
        code, _ = smtp.data(raw)
        results.append((bench_id, started, code))
    smtp.quit()
    return results


# ---------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size-kb", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--workers", type=int, default=4, help="othermail's forwarding processes (or threads)")
    parser.add_argument(
        "--modes",
        default="processes",
        help="comma-separated: processes (othermail run), threads (othermail run --threads); each measured in turn",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, database, spool)")
    parser.add_argument(
        "--inbound-auth",
        choices=("own", "off"),
        default="own",
        help="OTHERMAIL_INBOUND_AUTH of the box measured (own: SPF, DKIM and DMARC per message)",
    )
    parser.add_argument(
        "--two-way",
        choices=("true", "false"),
        default="true",
        help="OTHERMAIL_TWO_WAY of the box measured (true, the default: reverse addresses for every sender)",
    )
    parser.add_argument("--record", metavar="PATH", help="merge the first mode's msg/s a core into this measured.json")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every thread of the box and of its workers on thread CPU time into DIR "
        "(bench/_profile_hook), and print where the listener and the workers spend it",
    )
    options = parser.parse_args()
    per_client = options.messages // options.clients
    total = per_client * options.clients

    modes = [m.strip() for m in options.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"processes", "threads"}:
        parser.error("--modes takes processes and/or threads")
    results: dict[str, dict[str, float]] = {}
    status = 0
    for n, mode in enumerate(modes):
        work = Path(tempfile.mkdtemp(prefix="othermail-onebox-"))
        try:
            print(f"--- {mode}: othermail run{' --threads' if mode == 'threads' else ''} --workers {options.workers}")
            code, figures = run(options, per_client, total, work, mode)
            results[mode] = figures
            if n == 0:
                status = code
        finally:
            if not options.keep:
                shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2 and all(results.values()):
        p, t = results["processes"], results["threads"]
        print(
            f"processes / threads, same run: throughput {p['rate'] / t['rate']:.2f}x, "
            f"CPU per message {p['cpu_ms'] / t['cpu_ms']:.2f}x, p99 {p['p99'] / t['p99']:.2f}x"
        )
    if options.record and results.get(modes[0]):  # for othermail cost: 1000 / the box's CPU ms a message
        from forwarder.ops.measured import record

        command = f".venv/bin/python bench/onebox.py --messages {options.messages} --modes {modes[0]}"
        record(
            Path(options.record),
            "onebox_msgs_per_second_per_core",
            round(1000 / results[modes[0]]["cpu_ms"], 1),
            command,
        )
    return status


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have ended and been waited for."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def tree_cpu(pid: int) -> tuple[float, dict[int, float], dict[int, float]]:
    """CPU seconds (user + system) of ``pid`` and of its live children, each of them, and the
    system (kernel) seconds of each, read from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    system: dict[int, float] = {}

    def one(p: int) -> None:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        found[p] = (int(fields[11]) + int(fields[12])) / tick
        system[p] = int(fields[12]) / tick
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            for child in task.read_text().split():
                one(int(child))

    one(pid)
    return sum(found.values()), found, system


def run(
    options: argparse.Namespace, per_client: int, total: int, work: Path, mode: str
) -> tuple[int, dict[str, float]]:
    relay_port, smtp_port, web_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    env.update(
        {
            "OTHERMAIL_DATA_DIR": str(work / "var"),
            "OTHERMAIL_DOMAINS": "othermail.example",
            "OTHERMAIL_SENDER": "smtp",
            "OTHERMAIL_RELAY_HOST": "127.0.0.1",
            "OTHERMAIL_RELAY_PORT": str(relay_port),
            "OTHERMAIL_RELAY_SECURITY": "none",
            "OTHERMAIL_INBOUND_AUTH": options.inbound_auth,
            "OTHERMAIL_TWO_WAY": options.two_way,
            "PYTHONPATH": str(ROOT),
        }
    )
    # thousands of messages to one alias: the hourly and daily limits (docs/limits.md) would drop them
    env.update(
        {
            f"OTHERMAIL_LIMIT_{name}": "0"
            for name in ("ALIAS_PER_HOUR", "ALIAS_PER_DAY", "USER_PER_HOUR", "USER_PER_DAY")
        }
    )
    cli = [sys.executable, "-m", "forwarder.cli.main"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=ROOT)
    subprocess.run(
        [
            *cli,
            "alias",
            "create",
            "--owner",
            "bench@example.org",
            "--destination",
            "me@real.example",
            "--local-part",
            "bench",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )

    arrivals_file = work / "arrivals.json"
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(relay_port), str(arrivals_file)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"

    began = time.monotonic()
    # Its standard error (a JSON line per outcome) goes to a file: a pipe nobody reads fills up
    # after a few hundred lines and then blocks the forwarder.
    box_log = open(work / "box.log", "w")
    box_out = open(work / "box.out", "w")
    threads = ["--threads"] if mode == "threads" else []
    box_env = dict(env)
    if options.profile:
        Path(options.profile).mkdir(parents=True, exist_ok=True)
        box_env["ONEBOX_PROFILE"] = str(Path(options.profile, mode).resolve())
        Path(box_env["ONEBOX_PROFILE"]).mkdir(exist_ok=True)
        box_env["PYTHONPATH"] = os.pathsep.join((str(ROOT), str(ROOT / "bench" / "_profile_hook")))
    box = subprocess.Popen(
        [
            *cli,
            "run",
            "--smtp-port",
            str(smtp_port),
            "--web-port",
            str(web_port),
            "--workers",
            str(options.workers),
            *threads,
        ],
        env=box_env,
        cwd=ROOT,
        stdout=box_out,
        stderr=box_log,
        text=True,
    )
    first_accepted = None
    while time.monotonic() - began < 30:
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as probe:
                if probe.sendmail("sender@example.net", [ALIAS], message("warmup", 1024)) == {}:
                    first_accepted = time.monotonic() - began
                    break
        except (OSError, smtplib.SMTPException):
            time.sleep(0.02)
    if first_accepted is None:
        box.kill()
        sink.terminate()
        print(
            f"othermail run did not accept a message within 30 s (see {work / 'box.log'}; --keep keeps it)",
            file=sys.stderr,
        )
        return 1, {}
    spool = work / "var" / "spool" / "pending"
    while time.monotonic() - began < 60 and any(spool.glob("*.json")):  # the warm-up message forwarded
        time.sleep(0.05)

    cpu_before, before_per_process, system_before = tree_cpu(box.pid)
    sink_before = tree_cpu(sink.pid)[0]
    clients_before = _children_cpu()
    with multiprocessing.Pool(options.clients) as pool:
        batches = pool.map(
            client_main, [(smtp_port, c, per_client, options.size_kb * 1024) for c in range(options.clients)]
        )
    clients_cpu = _children_cpu() - clients_before  # the pool's processes, reaped as it closed
    sent = [item for batch in batches for item in batch]
    accepted = {bench_id: started for bench_id, started, code in sent if code == 250}

    deadline = time.monotonic() + options.timeout
    while time.monotonic() < deadline and any(spool.glob("*.json")):
        time.sleep(0.05)
    cpu_after, per_process, system_after = tree_cpu(box.pid)
    sink_cpu = tree_cpu(sink.pid)[0] - sink_before
    box.send_signal(signal.SIGTERM)
    box.wait(timeout=60)
    box_log.close()
    box_out.close()
    database = next(
        (line.split(None, 1)[1] for line in (work / "box.out").read_text().splitlines() if line.startswith("database")),
        "?",
    )
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=60)
    arrivals = [(i, t) for i, t in json.loads(arrivals_file.read_text()) if i != "warmup"]

    seen: dict[str, float] = {}
    duplicated = 0
    for bench_id, at in arrivals:
        if bench_id in seen:
            duplicated += 1
        else:
            seen[bench_id] = at
    lost = sum(1 for bench_id in accepted if bench_id not in seen)
    refused = total - len(accepted)
    latencies = sorted((seen[i] - accepted[i]) * 1000 for i in accepted if i in seen)
    first_data = min(accepted.values())
    last_relay = max(seen.values())
    rate = len(seen) / (last_relay - first_data)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    cpu_ms = (cpu_after - cpu_before) * 1000 / max(1, len(seen))
    listener_ms = (per_process.get(box.pid, 0.0) - before_per_process.get(box.pid, 0.0)) * 1000 / max(1, len(seen))
    kernel_ms = (sum(system_after.values()) - sum(system_before.values())) * 1000 / max(1, len(seen))
    listener_kernel_ms = (system_after.get(box.pid, 0.0) - system_before.get(box.pid, 0.0)) * 1000 / max(1, len(seen))
    print(f"messages={total} size_kb={options.size_kb} clients={options.clients} refused={refused}")
    print(f"database: {database}; inbound auth {options.inbound_auth}; two-way {options.two_way}")
    print(f"throughput: {rate:.0f} messages/s, {rate / TARGET_RATE:.2f}x the target (>= {TARGET_RATE:.0f})")
    print(f"latency DATA->relay: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms)")
    print(f"lost={lost} duplicated={duplicated} (target 0 and 0)")
    print(
        f"CPU of the box: {cpu_ms:.2f} ms per message ({cpu_after - cpu_before:.1f} s over {len(seen)} messages; "
        f"listener's process {listener_ms:.2f} ms, "
        f"{len(per_process) - 1} worker process(es) {cpu_ms - listener_ms:.2f} ms; "
        f"of it in the kernel {kernel_ms:.2f} ms, {listener_kernel_ms:.2f} ms of it the listener's)"
    )
    print(
        f"CPU of the rest of this machine's bench: {clients_cpu * 1000 / max(1, len(seen)):.2f} ms per message in the "
        f"{options.clients} client processes, {sink_cpu * 1000 / max(1, len(seen)):.2f} ms in the relay sink"
    )
    print(f"first message accepted {first_accepted:.2f} s after starting othermail run (target <= 3 s)")
    ok = (
        rate >= TARGET_RATE
        and p99 < TARGET_P99_MS
        and lost == 0
        and duplicated == 0
        and refused == 0
        and first_accepted <= 3
    )
    print("PASS" if ok else "FAIL")
    if options.profile:
        print_profiles(Path(options.profile, mode), box.pid)
    return (0 if ok else 1), {"rate": rate, "p99": p99, "cpu_ms": cpu_ms}


def print_profiles(folder: Path, listener: int, top: int = 25) -> None:
    """The functions with the most own CPU time in the listener's process and in the workers."""
    import pstats

    for title, files in (
        ("listener's process", sorted(folder.glob(f"{listener}-*.prof"))),
        ("worker processes", sorted(f for f in folder.glob("*.prof") if not f.name.startswith(f"{listener}-"))),
    ):
        if not files:
            continue
        stats = pstats.Stats(*map(str, files))
        total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]  # pstats keeps its table there
        print(f"profile, {title}: {total:.1f} s of thread CPU time (under cProfile), top {top} by own time")
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
        for (path, line, name), (_, calls, own, cumulative, _) in rows:
            where = f"{Path(path).name}:{line}({name})" if line else name
            print(f"  {own:7.2f} s {100 * own / max(total, 1e-9):5.1f}%  cum {cumulative:7.2f} s  {calls:8d}  {where}")
    print(f"profiles in {folder} (python -m pstats)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        sink_main(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(main())
