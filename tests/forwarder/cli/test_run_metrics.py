"""``othermail run`` serves /healthz and /metrics: mail in over SMTP, the counters read back over HTTP."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.forwarder.cli.test_run import ROOT, Run, env, send  # noqa: F401  (env: the fixture)

OFF = "off@othermail.example"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def outcomes(text: str) -> dict[str, float]:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "othermail_messages"]
    assert family.type == "counter"
    return {s.labels["outcome"]: s.value for s in family.samples if s.name == "othermail_messages_total"}


def scalar(text: str, name: str) -> float:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    return family.samples[0].value


def add_switched_off_alias(environment: dict[str, str]) -> None:
    cli = [sys.executable, "-m", "forwarder.cli.main"]
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
            "off",
        ],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    with closing(sqlite3.connect(Path(environment["OTHERMAIL_DATA_DIR"]) / "othermail.db")) as db, db:
        # the user switched it off
        assert db.execute("UPDATE aliases SET enabled = 0 WHERE address = ?", (OFF,)).rowcount == 1


def test_run_serves_healthz_and_metrics_with_the_counters_of_what_it_forwarded(
    env: dict[str, str],  # noqa: F811  (the fixture imported from test_run)
) -> None:
    add_switched_off_alias(env)
    began = time.time()
    run = Run(env, "run", "--web-port", "0", "--smtp-port", "0")
    try:
        web = run.lines["web"]
        status, content_type, text = get(web + "/metrics")
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        assert set(outcomes(text).values()) == {0.0}  # every outcome there, at zero, before any mail

        send(run.smtp_port, ["shop@othermail.example"])  # a known alias: forwarded
        send(run.smtp_port, [OFF])  # accepted at RCPT (it exists), then dropped: switched off
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = get(web + "/metrics")[2]
            counted = {k: v for k, v in outcomes(text).items() if v}
            if sum(counted.values()) >= 2:
                break
            time.sleep(0.1)
        assert counted == {"forwarded": 1.0, "dropped-disabled": 1.0}
        assert scalar(text, "othermail_spool_pending") == 0.0
        assert scalar(text, "othermail_retries") == 0.0
        assert began - 5 <= scalar(text, "process_start_time_seconds") <= time.time()
        assert "@" not in text and "real.example" not in text  # no personal data

        status, content_type, body = get(web + "/healthz")
        assert status == 200 and content_type == "application/json"
        assert json.loads(body) == {"status": "ok", "database": "ok", "spool_pending": 0, "smtp": "listening"}

        # through a reverse proxy every client seems local: without a token, /metrics says no
        assert get(web + "/metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
        assert get(web + "/signin")[0] == 200  # the web app itself is unchanged
    finally:
        code, output = run.stop()
    assert code == 0, output
    # standard error: one JSON line per outcome, without the body or the destination address
    lines = [json.loads(line) for line in output.splitlines() if line.startswith('{"alias_id"')]
    assert sorted(line["outcome"] for line in lines) == ["dropped-disabled", "forwarded"]
    assert all(line["message_id"].startswith("smtp-") and line["duration_ms"] >= 0 for line in lines)
    assert "real.example" not in output and "on its way" not in output


def test_with_a_token_metrics_wants_it(tmp_path: Path) -> None:
    bare = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}  # `run` migrates by itself
    bare.update(
        {
            "OTHERMAIL_DATA_DIR": str(tmp_path / "var"),
            "OTHERMAIL_DOMAINS": "othermail.example",
            "PYTHONPATH": str(ROOT),
            "OTHERMAIL_METRICS_TOKEN": "scrape-me-7",
        }
    )
    run = Run(bare, "run", "--web-port", "0", "--smtp-port", "0")
    try:
        web = run.lines["web"]
        assert get(web + "/metrics")[0] == 401
        status, _, text = get(web + "/metrics", {"Authorization": "Bearer scrape-me-7"})
        assert status == 200 and "othermail_messages_total" in text
        assert get(web + "/healthz")[0] == 200  # health stays open
    finally:
        code, output = run.stop()
    assert code == 0, output
