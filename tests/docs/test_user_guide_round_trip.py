"""The user guide's two-way round trip runs as printed: a forward, then a reply from the alias.

The block is read from docs/user-guide.md; only the command's path and the data folder differ."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def round_trip() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "docs" / "user-guide.md").read_text(), re.DOTALL)
    (block,) = [b for b in blocks if "contact create hello@othermail.example" in b]
    return block


def test_the_round_trip_in_the_user_guide_forwards_and_replies(tmp_path: Path) -> None:
    othermail = f"{sys.executable} -m forwarder.cli.main"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    env.update({"OTHERMAIL_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)})
    setup = (
        f"{othermail} db upgrade\n"  # what othermail run does first
        f"{othermail} user create you@example.org --password-stdin <<< 'a long passphrase'\n"
        f"{othermail} alias create --owner you@example.org --destination you@example.org --local-part hello\n"
    )
    script = setup + round_trip().replace(".venv/bin/othermail", othermail)
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outbox = sorted((tmp_path / "var" / "outbox" / "new").iterdir())
    copies = [p.read_bytes() for p in outbox]
    assert len(copies) == 2
    [to_you] = [c for c in copies if c.startswith(b"Delivered-To: you@example.org")]
    [to_jane] = [c for c in copies if c.startswith(b"Delivered-To: jane@shop.example")]
    assert b"jane@shop.example" not in to_you.split(b"\r\n\r\n", 1)[0].split(b"\r\n", 1)[1]
    assert b"From: hello@othermail.example" in to_jane and b"you@example.org" not in to_jane
    assert b"In-Reply-To: <o1@shop.example>" in to_jane
    assert '"outcome": "replied"' in ran.stdout
