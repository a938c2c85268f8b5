"""The README's "try it end to end" snippet runs as printed against a running one box, and the
message it sends comes out in the outbox (issue 12, item 24).

The snippet is read from README.md, not copied here; only what differs on a test machine is
substituted: the interpreter, the data folder (OTHERMAIL_DATA_DIR) and the SMTP port (a free one).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def end_to_end_snippet() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (snippet,) = [block for block in blocks if "smtplib" in block]
    return snippet


def test_the_readme_snippet_sends_a_message_through_the_one_box(tmp_path: Path) -> None:
    snippet = end_to_end_snippet()
    assert ".venv/bin/othermail" in snippet and "2525" in snippet
    othermail = f"{sys.executable} -m forwarder.cli.main"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    env.update({"OTHERMAIL_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)})
    box = subprocess.Popen(
        [*othermail.split(), "run", "--web-port", "0", "--smtp-port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert box.stdout is not None
        smtp = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = box.stdout.readline()
            assert line, box.communicate()
            if line.startswith("smtp "):
                smtp = line
            if line.startswith("ready in"):
                break
        port = re.search(r"127\.0\.0\.1:(\d+) ", smtp).group(1)  # type: ignore[union-attr]
        # the interpreter first, at the start of a line only: sys.executable may end in python3
        script = (
            re.sub(r"^python3 ", f"{sys.executable} ", snippet, flags=re.MULTILINE)
            .replace(".venv/bin/othermail", othermail)
            .replace("2525", port)
        )
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0 and "Traceback" not in ran.stderr, (ran.stdout, ran.stderr)
        new = tmp_path / "var" / "outbox" / "new"
        deadline = time.monotonic() + 20
        while not (new.is_dir() and any(new.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)
        (delivered,) = [path.read_bytes() for path in new.iterdir()]
        assert b"Subject: hi" in delivered and delivered.rstrip().endswith(b"hello")
    finally:
        box.send_signal(signal.SIGTERM)
        box.communicate(timeout=30)
