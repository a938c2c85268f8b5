"""What the one box writes is its own: the database, the raw mail store, the spool, the outbox and
the secret key get no group or other permission bits, even when the operator's umask is the usual
022 (issue 12, item 25)."""

from __future__ import annotations

import os
import signal
import smtplib
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MESSAGE = b"From: a@sender.example\r\nTo: shop@othermail.example\r\nSubject: hi\r\n\r\nhello\r\n"


def othermail(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "forwarder.cli.main", *args],
        cwd=ROOT,
        env=env,
        umask=0o022,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def not_private(root: Path) -> list[str]:
    """Every file and folder under ``root`` (``root`` included) with a group or other bit."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_one_box_data_has_no_group_or_other_bits(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    env.update({"OTHERMAIL_DATA_DIR": str(data), "OTHERMAIL_DOMAINS": "othermail.example", "PYTHONPATH": str(ROOT)})
    upgrade = othermail(env, "db", "upgrade")
    assert upgrade.wait(60) == 0, upgrade.communicate()
    upgrade.communicate()
    create = othermail(
        env, "alias", "create", "--owner", "o@example.org", "--destination", "me@real.example", "--local-part", "shop"
    )
    assert create.wait(60) == 0, create.communicate()
    create.communicate()

    run = othermail(env, "run", "--web-port", "0", "--smtp-port", "0")
    try:
        assert run.stdout is not None
        lines: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = run.stdout.readline()
            assert line, run.communicate()
            if line.startswith("ready in"):
                break
            name, _, where = line.strip().partition(" ")
            lines[name] = where.strip()
        with urllib.request.urlopen(lines["web"] + "/signin", timeout=10) as page:
            assert page.status == 200
        port = int(lines["smtp"].split(" ")[0].rpartition(":")[2])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@sender.example", ["shop@othermail.example"], MESSAGE)
        deadline = time.monotonic() + 15
        while not list((data / "outbox" / "new").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
    # what there is to check: each kind of file the one box writes
    assert (data / "othermail.db").is_file() and (data / "secret_key").is_file()
    assert list((data / "mail").rglob("*")) and (data / "spool" / "pending").is_dir()
    assert list((data / "outbox" / "new").glob("*"))
    assert not_private(data) == []
