"""``othermail run`` as a real process: what it prints, mail in through SMTP and out to the outbox,
the web app answering, a clean stop on SIGTERM and SIGINT, and mail that a killed process had
accepted but not forwarded going out once at the next start."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.forwarder.adapters.smtp.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[3]
MESSAGE = (
    b"From: Shop <orders@store.example>\r\nTo: shop@othermail.example\r\nSubject: Parcel\r\n"
    b"Message-ID: <p-1@store.example>\r\n\r\nYour parcel \xc3\xa9 is on its way.\r\n.dot line\r\n"
)
BODY = MESSAGE.split(b"\r\n\r\n", 1)[1]


class Run:
    """One ``othermail`` process, stopped by the test."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "forwarder.cli.main", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, str] = {}
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(
                    f"othermail run ended early: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            if line.startswith("ready in"):
                self.ready = line
                return
            name, _, where = line.strip().partition(" ")
            self.lines[name] = where.strip()
        raise AssertionError("othermail run did not get ready within 30 s")

    @property
    def smtp_port(self) -> int:
        return int(re.match(r"127\.0\.0\.1:(\d+) ", self.lines["smtp"]).group(1))  # type: ignore[union-attr]

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out + err

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    clean.update(
        {"OTHERMAIL_DATA_DIR": str(tmp_path / "var"), "OTHERMAIL_DOMAINS": "othermail.example", "PYTHONPATH": str(ROOT)}
    )
    cli = [sys.executable, "-m", "forwarder.cli.main"]
    subprocess.run([*cli, "db", "upgrade"], cwd=ROOT, env=clean, check=True, capture_output=True)
    subprocess.run(
        [
            *cli,
            "alias",
            "create",
            "--owner",
            "o@example.org",
            "--destination",
            "me@real.example",
            "--local-part",
            "shop",
        ],
        cwd=ROOT,
        env=clean,
        check=True,
        capture_output=True,
    )
    yield clean


def send(port: int, recipients: list[str] | None = None) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.mail("orders@store.example")
        for recipient in recipients or ["shop@othermail.example"]:
            client.rcpt(recipient)
        code, reply = client.data(MESSAGE)
    assert code == 250, reply
    return reply


def outbox_messages(path: Path, count: int, timeout: float = 15) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (path / "new").is_dir():
            found = [f.read_bytes() for f in sorted((path / "new").iterdir())]
            if len(found) >= count:
                return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} message(s) in {path}")


def test_run_prints_what_it_started_forwards_to_the_outbox_and_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(env, "run", "--web-port", "0", "--smtp-port", "0")
    try:
        assert set(run.lines) >= {"database", "sender", "web", "smtp", "spool"}
        assert "local outbox" in run.lines["sender"] and "othermail.db" in run.lines["database"]
        web = run.lines["web"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", web)
        with urllib.request.urlopen(web + "/signin", timeout=10) as page:
            assert page.status == 200 and b"Sign in" in page.read()
        send(run.smtp_port)
        (delivered,) = outbox_messages(tmp_path / "var" / "outbox", 1)
        assert delivered.startswith(b"Delivered-To: me@real.example")
        assert delivered.split(b"\r\n\r\n", 1)[1] == BODY  # the body leaves byte for byte as it came
        # two-way by default: the sender is named by a reverse address on the alias's domain, and
        # its own address only spelled out in the display name
        head = delivered.split(b"\r\n\r\n", 1)[0]
        assert b"orders@store.example" not in head and b"orders at store.example" in head
        assert re.search(rb"\r\nFrom: .*<[a-z2-7]{16}@othermail\.example>", head)
    finally:
        code, output = run.stop(signal.SIGTERM)
    assert code == 0 and "stopped" in output


@pytest.mark.parametrize(
    ("options", "forwarder"),
    [((), "4 worker processes"), (("--threads", "--workers", "2"), "2 threads of this process")],
)
def test_workers_forward_in_processes_by_default_or_in_threads(
    env: dict[str, str], tmp_path: Path, options: tuple[str, ...], forwarder: str
) -> None:
    """Issue 15: othermail smtp forwards in worker processes; --threads keeps the old threads."""
    run = Run(env, "smtp", "--port", "0", *options)
    try:
        assert run.lines["forwarder"] == forwarder
        send(run.smtp_port)
        (delivered,) = outbox_messages(tmp_path / "var" / "outbox", 1)
        assert delivered.startswith(b"Delivered-To: me@real.example")
    finally:
        code, _output = run.stop(signal.SIGTERM)
    assert code == 0


def test_sigint_stops_it_too_and_the_smtp_only_command_has_no_web(env: dict[str, str]) -> None:
    run = Run(env, "smtp", "--port", "0")
    assert "web" not in run.lines and "smtp" in run.lines
    code, output = run.stop(signal.SIGINT)
    assert code == 0 and "stopped" in output


def test_mail_accepted_by_a_killed_process_goes_out_once_at_the_next_start(env: dict[str, str], tmp_path: Path) -> None:
    sink = SmtpSink()  # the relay: down while the first process runs
    relay = {
        **env,
        "OTHERMAIL_SENDER": "smtp",
        "OTHERMAIL_RELAY_HOST": "127.0.0.1",
        "OTHERMAIL_RELAY_PORT": str(sink.port),
        "OTHERMAIL_RELAY_SECURITY": "none",
    }
    first = Run(relay, "smtp", "--port", "0")
    reply = send(first.smtp_port)
    spool_id = reply.decode().rsplit(" ", 1)[1]
    pending = tmp_path / "var" / "spool" / "pending" / f"{spool_id}.json"
    time.sleep(0.5)  # it tries, fails (relay down), schedules a retry
    assert pending.exists()
    first.kill()  # SIGKILL: no clean stop
    with sink:
        second = Run(relay, "smtp", "--port", "0")
        try:
            assert "(1 left from last run)" in second.lines["spool"]
            deadline = time.monotonic() + 15
            while pending.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not pending.exists()
        finally:
            second.stop()
        third = Run(relay, "smtp", "--port", "0")
        third.stop()
        deliveries = sink.deliveries
    assert [d.rcpt_tos for d in deliveries] == [("me@real.example",)]
    assert deliveries[0].content.split(b"\r\n\r\n", 1)[1] == BODY
