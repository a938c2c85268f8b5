"""Fault injection through the Lambda path (see fault_harness.py): with transient S3, SES and database
failures, crashes after a send and duplicate deliveries, every message ends delivered exactly once,
or in the dead-letter queue; copies sent twice only where a failure after the send explains them.

``bench/faults.py`` runs the same harness on 1,000 messages and prints the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forwarder.adapters.sql.directory import Claim, ClaimState, SqlDirectory
from forwarder.flows.replay import DlqReplay
from tests.forwarder.hosts.fault_harness import LambdaEmulator, Script, run_faults

SEED = 20261123
#: What the injected faults surface as, once the retries are spent.
INJECTED = {"StoreUnavailable", "SendRetryable", "DatabaseUnavailable", "DeliveryInProgress", "SimulatedCrash"}


class StubQueue:
    """The dead-letter queue as ``DlqReplay`` calls it, over the emulator's records."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.messages = {f"dl-{n}": json.dumps(record) for n, record in enumerate(records)}
        self.deleted: list[str] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        waiting = [k for k in self.messages if k not in self.deleted]
        return {"Messages": [{"MessageId": k, "ReceiptHandle": k, "Body": self.messages[k]} for k in waiting[:10]]}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803
        self.deleted.append(ReceiptHandle)

    def change_message_visibility(self, **_: Any) -> None:
        pass


def test_200_messages_with_injected_faults_end_delivered_once_or_dead_lettered(tmp_path: Path) -> None:
    report, emulator = run_faults(tmp_path, 200, SEED)
    fired = emulator.faults.fired

    assert report.messages == 200
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.delivered + report.dead_lettered == report.messages
    # every kind of trouble happened, so the figures above mean something
    assert min(fired["s3"], fired["ses"], fired["db"], fired["crash"]) > 0
    assert emulator.duplicates > 0 and report.dead_lettered > 0
    assert len(emulator.faults.scripts) == pytest.approx(0.2 * 200, abs=15)
    # copies sent twice are exactly the failures after an accepted send that were retried
    assert report.ambiguous == emulator.resent_after_post_send_failure()
    assert 0 < report.ambiguous <= fired["post-send"]
    for record in emulator.dead_letters:
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 3
        # only injected trouble ends there, never a bug
        assert record["responsePayload"]["errorType"] in INJECTED


def test_replaying_the_dead_letter_queue_once_the_faults_are_gone_delivers_the_rest(tmp_path: Path) -> None:
    report, emulator = run_faults(tmp_path, 200, SEED)
    assert report.dead_lettered > 0
    emulator.faults.scripts.clear()  # the outage is over
    queue = StubQueue(emulator.dead_letters)
    runtime = emulator.cold_start()
    redrive = DlqReplay(runtime, queue, "dlq")
    results = [redrive.replay(message) for message in redrive.messages()]
    runtime.close()

    assert all(r.done for r in results)
    assert sorted(queue.deleted) == sorted(queue.messages)
    after = emulator.report()
    assert (after.delivered, after.dead_lettered, after.lost, after.duplicated) == (200, 0, 0, 0)


def test_a_crash_after_ses_accepted_is_one_ambiguous_copy_not_a_duplicate(tmp_path: Path) -> None:
    emulator = LambdaEmulator(tmp_path, 6, SEED, fault_rate=0.0, duplicate_rate=0.0)
    emulator.faults.scripts["m00002"] = Script("crash", 1)  # team-3: two destinations
    report = emulator.run()

    assert emulator.crashes == 1
    assert (report.delivered, report.lost, report.duplicated, report.ambiguous) == (6, 0, 0, 1)
    assert emulator.copies()[("m00002", "cat@real.example")] == 2  # sent, crashed, re-sent
    assert emulator.copies()[("m00002", "dan@real.example")] == 1


def test_an_endless_outage_dead_letters_its_event_after_three_invocations(tmp_path: Path) -> None:
    emulator = LambdaEmulator(tmp_path, 3, SEED, fault_rate=0.0, duplicate_rate=0.0)
    emulator.faults.scripts["m00001"] = Script("s3", None)
    report = emulator.run()

    assert (report.delivered, report.dead_lettered, report.lost) == (2, 1, 0)
    assert emulator.invocations == 2 + 3
    (record,) = emulator.dead_letters
    assert record["requestPayload"]["Records"][0]["ses"]["mail"]["messageId"] == "m00001"
    assert record["responsePayload"]["errorType"] == "StoreUnavailable"


def test_the_accounting_catches_a_forwarder_that_sends_a_redelivery_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims that never say DONE: every duplicate delivery sends again, and the report says so."""
    monkeypatch.setattr(SqlDirectory, "_take_over", lambda self, *row: Claim(ClaimState.RESUMED, "pending", 2))
    emulator = LambdaEmulator(tmp_path, 10, SEED, fault_rate=0.0, duplicate_rate=1.0)
    report = emulator.run()

    assert emulator.duplicates == 10
    # team-3 messages (every third) have two destinations
    assert report.duplicated == sum(len(d) for d in (emulator.expected(m) for m in emulator.recipient))
    assert report.ambiguous == 0 and report.lost == 0
