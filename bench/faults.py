"""Fault injection through the Lambda path: every message delivered exactly once, or dead-lettered.

    .venv/bin/python bench/faults.py [--messages 1000] [--seed 20261123]

Pushes the messages through ``LambdaRuntime.invoke`` (the real S3 and SES adapters, forwarding
pipeline and SQLite database) with 20% of them meeting injected transient failures (S3 500/503,
SES throttling, database disconnects, crashes right after SES accepted a copy) and 10% of the events
delivered twice, under Lambda's asynchronous retries and a dead-letter queue (the harness is
tests/forwarder/hosts/fault_harness.py). Prints one line, each figure counted from what the fakes
recorded::

    messages=N delivered=D dead_lettered=Q lost=L duplicated=U ambiguous=A

``ambiguous`` counts copies sent again after a failure that came after SES accepted the first one
and before it was recorded: mail is never lost, so such a message may be sent twice. Exits 1 when
a message was lost or duplicated.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.forwarder.hosts.fault_harness import run_faults  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the retry and outcome lines of thousands of invocations
    with tempfile.TemporaryDirectory(prefix="othermail-faults-") as workdir:
        report, _ = run_faults(Path(workdir), args.messages, args.seed)
    print(report.line())
    return 1 if report.lost or report.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
