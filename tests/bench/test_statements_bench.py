"""bench/statements.py --record: each figure is the most any server backend measured, on its own;
--show: what the drivers send besides the statements.

It recorded the statements and the transactions of the one backend with the most statements: with
PostgreSQL and MariaDB both at three, PostgreSQL's (listed first) 0 transactions, which
``record`` refused, and MariaDB's two went unrecorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_record_takes_the_most_statements_and_the_most_transactions_of_the_servers(tmp_path: Path) -> None:
    path = tmp_path / "measured.json"
    run = subprocess.run(
        [sys.executable, "bench/statements.py", "--backends", "postgresql,mariadb", "--show", "--record", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    steady = [line.split() for line in run.stdout.splitlines() if line.split()[1:2] == ["steady"]]
    assert [row[0] for row in steady] == ["postgresql", "mariadb"]
    statements = max(int(row[2]) for row in steady)
    transactions = max(int(row[3]) for row in steady)
    figures = json.loads(path.read_text())["figures"]
    assert figures["statements_per_message"]["value"] == statements
    assert figures["transactions_per_message"]["value"] == transactions
    assert transactions > 0  # MariaDB's COMMITs, though PostgreSQL sends none
    # --show: what each driver sends besides the statements, each one more round trip (a steady
    # message: PostgreSQL nothing; MariaDB the claim's and the settle's COMMIT, the pool's ROLLBACK)
    sent = [line.strip() for line in run.stdout.splitlines() if "sent besides" in line]
    assert sent[1] == "psycopg sent besides: nothing"
    assert sent[4] == "PyMySQL sent besides: COMMIT COMMIT ROLLBACK"
