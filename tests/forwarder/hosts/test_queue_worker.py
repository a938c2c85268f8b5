"""The queue worker (EC2 mode): a queue message is deleted only once its mail is delivered or
dropped for a reason; failures come back, then go to the dead-letter queue; nothing is sent twice.

The first tests run in-process on ``mock_aws``. The end-to-end ones start moto's
``ThreadedMotoServer`` on 127.0.0.1, build the SES -> S3 + SNS -> SQS chain on it and run
``othermail worker`` as a real process against it (``AWS_ENDPOINT_URL``, dummy credentials).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from sqlalchemy import select

from forwarder.adapters.aws.ses import SesV2Sender
from forwarder.adapters.senders import MemorySender
from forwarder.errors import SendRetryable
from forwarder.hosts.lambda_handler import LambdaRuntime
from forwarder.hosts.queue_worker import QueueWorker, backoff_seconds
from models import Delivery, make_engine, make_session_factory
from tests.forwarder.hosts.lambda_env import ACCOUNT, BUCKET, PREFIX, REGION, Env, make_env

ROOT = Path(__file__).parents[3]
ALIAS = "shop-7hq2@othermail.example"
MESSAGE = (
    b"From: Jane Doe <jane@example.net>\r\n"
    b"To: shop-7hq2@othermail.example\r\n"
    b"Subject: hello through the queue\r\n"
    b"Message-ID: <q1@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Body line one\r\n"
)


def ses_notification(message_id: str, recipient: str, bucket: str = BUCKET, topic_arn: str = "") -> dict:
    """What SES publishes to SNS for a receipt rule's S3 action with a topic (the shape of the
    corpus's ``s3_stored_email_sns_body.json`` Message, trimmed)."""
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-11-23T10:00:00.000Z",
            "source": "jane@example.net",
            "messageId": message_id,
            "destination": [recipient],
            "headersTruncated": False,
            "commonHeaders": {"from": ["Jane Doe <jane@example.net>"], "to": [recipient], "subject": "hello"},
        },
        "receipt": {
            "timestamp": "2026-11-23T10:00:00.000Z",
            "processingTimeMillis": 310,
            "recipients": [recipient],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {
                "type": "S3",
                "topicArn": topic_arn,
                "bucketName": bucket,
                "objectKeyPrefix": PREFIX,
                "objectKey": PREFIX + message_id,
            },
        },
    }


def sns_body(notification: dict) -> str:
    """The SQS message body SNS delivers with raw message delivery off."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "0b0c6a59-6f6e-5e55-9d7e-1f2c6f0b1a11",
            "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:othermail-inbound",
            "Subject": "Amazon SES Email Receipt Notification",
            "Message": json.dumps(notification),
            "Timestamp": "2026-11-23T10:00:01.000Z",
            "SignatureVersion": "1",
        }
    )


def make_queue(sqs: Any, name: str = "othermail-inbound", max_receives: int | None = None) -> str:
    attributes: dict[str, str] = {"VisibilityTimeout": "30"}
    if max_receives is not None:
        dlq_url = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def deliveries(database_url: str) -> list[Delivery]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(Delivery).order_by(Delivery.id)))
    finally:
        engine.dispose()


def outcome_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == logger]


@pytest.fixture
def sqs(env: Env) -> Any:
    return env.session.client("sqs")


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="othermail")


def worker_for(runtime: LambdaRuntime, sqs: Any, url: str, **options: Any) -> QueueWorker:
    options.setdefault("wait_seconds", 0)
    options.setdefault("backoff_base", 0)
    return QueueWorker(runtime, sqs, url, **options)


# -- in-process, on mock_aws ---------------------------------------------------------------------


def test_a_forwarded_message_is_deleted(env: Env, sqs: Any) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("m1", ALIAS)))
    runtime = env.runtime()
    result = worker_for(runtime, sqs, url).run_once()
    assert (result.received, result.deleted, result.left) == (1, 1, 0)
    assert result.outcomes == {"forwarded": 1}
    assert len(env.sent()) == 1 and "a@real.example" in env.sent()[0].destinations
    assert queue_counts(sqs, url) == (0, 0)
    runtime.close()


class ThrottledOnce:
    """A SESv2 client whose first send is throttled (HTTP 429), as SES does over its rate."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def send_email(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "SendEmail",
            )
        return self._client.send_email(**kwargs)


def test_a_throttled_send_leaves_the_message_until_its_backoff_and_the_retry_sends_once(
    env: Env, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("m1", ALIAS)))
    runtime = env.runtime(sender=SesV2Sender(ThrottledOnce(env.session.client("sesv2"))))
    worker = worker_for(runtime, sqs, url, backoff_base=1)

    first = worker.run_once()
    assert (first.received, first.deleted, first.left) == (1, 0, 1)
    (retry,) = [line for line in outcome_lines(caplog, "othermail.queue") if line["event"] == "queue-retry"]
    assert retry["error"] == "SendRetryable" and "TooManyRequests" in retry["detail"]
    assert (retry["receive_count"], retry["retry_in_seconds"]) == (1, 1)
    assert [r.outcome for r in deliveries(env.database_url)] == ["retry"]
    assert env.sent() == []

    assert worker.run_once().received == 0  # invisible for its backoff
    assert queue_counts(sqs, url) == (0, 1)
    time.sleep(1.2)
    second = worker.run_once()
    assert (second.received, second.deleted, second.left) == (1, 1, 0)
    assert second.outcomes == {"forwarded": 1}
    assert len(env.sent()) == 1
    (row,) = deliveries(env.database_url)
    assert (row.outcome, row.attempts) == ("forwarded", 2)
    assert queue_counts(sqs, url) == (0, 0)
    assert (worker.totals.received, worker.totals.deleted, worker.totals.left) == (2, 1, 1)
    runtime.close()


def test_a_body_that_is_not_json_and_an_unknown_event_are_deleted_with_named_reasons(
    env: Env, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="this is { not json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))
    runtime = env.runtime(sender=MemorySender())
    result = worker_for(runtime, sqs, url).run_once()
    assert (result.received, result.deleted, result.left) == (2, 2, 0)
    assert result.outcomes == {"skipped:invalid-queue-message": 1, "skipped:invalid-event": 1}
    skipped = {line["reason"]: line["detail"] for line in outcome_lines(caplog, "othermail.outcome")}
    assert "this is { not json" not in skipped["invalid-queue-message"]  # it may be mail (issue 12.26)
    assert "body is not JSON (18 characters)" in skipped["invalid-queue-message"]
    assert '"hello": "world"' in skipped["invalid-event"]
    assert queue_counts(sqs, url) == (0, 0)
    runtime.close()


def test_sns_raw_message_delivery_is_understood(env: Env, sqs: Any) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "raw", MESSAGE)
    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(ses_notification("raw", ALIAS)))
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    assert worker_for(runtime, sqs, url).run_once().outcomes == {"forwarded": 1}
    assert len(memory.sent) == 1
    runtime.close()


def test_an_unexpected_error_leaves_its_message_logged_with_a_traceback_and_the_batch_goes_on(
    env: Env, sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env.alias(ALIAS, "a@real.example")
    env.alias("other@othermail.example", "boom@real.example")
    env.put(PREFIX + "bad", MESSAGE)
    env.put(PREFIX + "good", MESSAGE)
    memory = MemorySender()

    class Buggy:
        def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
            if recipient == "boom@real.example":
                raise KeyError("a bug")
            return memory.send(raw, sender=sender, recipient=recipient)

    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("bad", "other@othermail.example")))
    sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("good", ALIAS)))
    runtime = env.runtime(sender=Buggy())
    result = worker_for(runtime, sqs, url).run_once()
    assert (result.received, result.deleted, result.left) == (2, 1, 1)
    assert result.outcomes == {"forwarded": 1}
    assert [m.recipient for m in memory.sent] == ["a@real.example"]
    (error,) = [r for r in caplog.records if r.name == "othermail.queue" and r.levelno == logging.ERROR]
    assert json.loads(error.getMessage())["error"] == "KeyError"
    assert error.exc_info is not None
    assert queue_counts(sqs, url) == (1, 0)  # backoff 0: back at once
    runtime.close()


def test_repeated_failures_move_the_message_to_the_dead_letter_queue(env: Env, sqs: Any) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    url = make_queue(sqs, max_receives=2)
    dlq_url = sqs.get_queue_url(QueueName="othermail-inbound-dlq")["QueueUrl"]
    body = sns_body(ses_notification("m1", ALIAS))
    sqs.send_message(QueueUrl=url, MessageBody=body)

    class AlwaysThrottled:
        calls = 0

        def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
            self.calls += 1
            raise SendRetryable("SES TooManyRequestsException: Maximum sending rate exceeded.")

    sender = AlwaysThrottled()
    runtime = env.runtime(sender=sender)
    worker = worker_for(runtime, sqs, url)
    results = [worker.run_once() for _ in range(3)]
    assert [(r.received, r.left) for r in results] == [(1, 1), (1, 1), (0, 0)]
    assert sender.calls == 2
    assert queue_counts(sqs, url) == (0, 0)
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert dead["Body"] == body
    assert [r.outcome for r in deliveries(env.database_url)] == ["retry"]
    runtime.close()


def test_run_loops_until_the_stop_event_then_returns_its_totals(env: Env, sqs: Any) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    url = make_queue(sqs)
    runtime = env.runtime(sender=MemorySender())
    stop = threading.Event()
    worker = worker_for(runtime, sqs, url, wait_seconds=1, stop_event=stop)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("m1", ALIAS)))
        deadline = time.monotonic() + 20
        while worker.totals.deleted < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert (worker.totals.received, worker.totals.deleted, worker.totals.left) == (1, 1, 0)
    assert worker.batches >= 1
    runtime.close()


def test_a_failing_receive_does_not_end_the_loop(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()

    class Flaky:
        calls = 0

        def receive_message(self, **kwargs: Any) -> dict:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("the queue is unreachable")
            stop.set()
            return {}

    runtime = env.runtime(sender=MemorySender())
    worker = QueueWorker(runtime, Flaky(), "https://sqs.invalid/q", wait_seconds=0, stop_event=stop)
    worker.run()
    (line,) = outcome_lines(caplog, "othermail.queue")
    assert line["event"] == "queue-receive-failed" and line["retry_in_seconds"] == 1
    runtime.close()


def test_a_failed_delete_is_counted_and_logged(env: Env, sqs: Any, caplog: pytest.LogCaptureFixture) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    url = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody=sns_body(ses_notification("m1", ALIAS)))

    class DeleteFails:
        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def delete_message_batch(self, **kwargs: Any) -> dict:
            return {
                "Successful": [],
                "Failed": [
                    {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "Message": "expired", "SenderFault": True}
                    for e in kwargs["Entries"]
                ],
            }

    runtime = env.runtime(sender=MemorySender())
    result = worker_for(runtime, DeleteFails(sqs), url).run_once()
    assert (result.received, result.deleted, result.delete_failed) == (1, 0, 1)
    assert any(
        line["event"] == "queue-delete-failed" and line["code"] == "ReceiptHandleIsInvalid"
        for line in outcome_lines(caplog, "othermail.queue")
    )
    runtime.close()


def test_every_corpus_sns_body_ends_deleted(env: Env, sqs: Any, corpus: Path) -> None:
    """The real SNS bodies of the corpus, as SQS delivers them: mail forwarded or dropped, feedback
    and confirmations skipped; every queue message deleted, none left."""
    sample = (corpus / "arithmetric-aws-lambda-ses-forwarder" / "message.eml").read_bytes()
    files = sorted((corpus / "ses-events" / "mozilla-fx-private-relay").glob("*_sns_body.json"))
    assert len(files) >= 12
    url = make_queue(sqs)
    s3 = env.session.client("s3")
    aliases: set[str] = set()
    for path in files:
        body = path.read_text()
        envelope = json.loads(body)
        message = json.loads(envelope["Message"]) if envelope["Type"] == "Notification" else {}
        receipt = message.get("receipt") or {}
        for recipient in receipt.get("recipients") or []:
            if recipient not in aliases:
                env.alias(recipient, "owner@real.example")
                aliases.add(recipient)
        action = receipt.get("action") or {}
        if action.get("type") == "S3":
            if action["bucketName"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=action["bucketName"])
            env.put(action["objectKey"], sample, bucket=action["bucketName"])
        sqs.send_message(QueueUrl=url, MessageBody=body)
    # the samples' S3 action writes to "test-bucket", keys from the bucket's root: configure that,
    # since the runtime reads only its own bucket and prefix (issue 12.26)
    runtime = env.runtime(sender=MemorySender(), s3_bucket="test-bucket", s3_prefix="")
    worker = worker_for(runtime, sqs, url)
    while worker.run_once().received:
        pass
    totals = worker.totals
    assert (totals.received, totals.deleted, totals.left) == (len(files), len(files), 0)
    # the three bounce samples share one feedbackId and recipient: applied once, then duplicates
    assert (totals.outcomes["feedback:bounce-permanent"], totals.outcomes["feedback:duplicate"]) == (1, 2)
    assert totals.outcomes["skipped:sns-subscription-confirmation"] == 1
    assert totals.outcomes["forwarded"] >= 5 and totals.outcomes["dropped-spam"] == 1
    assert queue_counts(sqs, url) == (0, 0)
    runtime.close()


def test_backoff_doubles_with_each_receive_up_to_its_cap() -> None:
    assert [backoff_seconds(n, 30, 900) for n in (0, 1, 2, 3, 5, 6, 50)] == [30, 30, 60, 120, 480, 900, 900]
    assert backoff_seconds(7, 0, 900) == 0
    with pytest.raises(ValueError):
        QueueWorker(object(), object(), "url", batch=11)  # type: ignore[arg-type]


def test_the_command_names_the_missing_queue_setting(tmp_path: Path) -> None:
    from forwarder.cli.main import cli

    env = {"OTHERMAIL_QUEUE_URL": "", "OTHERMAIL_DATA_DIR": str(tmp_path), "OTHERMAIL_S3_BUCKET": BUCKET}
    result = CliRunner().invoke(cli, ["worker", "--once"], env=env)
    assert result.exit_code == 1
    assert "OTHERMAIL_QUEUE_URL" in result.output


# -- two workers, one message, every database ------------------------------------------------------


def test_two_workers_holding_the_same_message_send_it_once(aws: boto3.session.Session, database_url: str) -> None:
    """SNS and SQS are at-least-once: two copies of one notification reach two workers at the same
    moment. The delivery claim lets one send; the other finds it done (or busy, then done)."""
    env = make_env(aws, database_url)
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "race", MESSAGE)
    sqs = aws.client("sqs")
    url = make_queue(sqs)
    body = sns_body(ses_notification("race", ALIAS))
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    runtimes = [env.runtime() for _ in range(2)]  # each its own engine and SES client (moto)
    barrier = threading.Barrier(2)  # the first handle of each worker starts at the same moment
    for runtime in runtimes:
        handle, first = runtime.handle, threading.Event()

        def gated(event: Any, handle: Any = handle, first: threading.Event = first) -> dict:
            if not first.is_set():
                first.set()
                barrier.wait(timeout=10)
            return handle(event)

        runtime.handle = gated  # type: ignore[method-assign]
    workers = [worker_for(r, aws.client("sqs"), url, batch=1) for r in runtimes]
    errors: list[BaseException] = []

    def drain(worker: QueueWorker) -> None:
        try:
            for _ in range(50):
                worker.run_once()
                if worker.totals.deleted >= 1:
                    return
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        outcomes: Counter[str] = Counter()
        for worker in workers:
            outcomes.update(worker.totals.outcomes)
        assert outcomes == {"forwarded": 1, "duplicate": 1}
        assert sum(w.totals.deleted for w in workers) == 2
        assert len(env.sent()) == 1
        assert [r.outcome for r in deliveries(database_url)] == ["forwarded"]
        assert queue_counts(sqs, url) == (0, 0)
    finally:
        for runtime in runtimes:
            runtime.close()


# -- end to end: moto's server on 127.0.0.1, the worker as a process ------------------------------


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _reset(endpoint)
    try:
        yield endpoint
    finally:
        _reset(endpoint)
        server.stop()


def _reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=10).read()


def _sent_through_server(endpoint: str) -> list[dict]:
    """The raw messages SES sent, as the server itself reports them."""
    with urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=10) as response:
        return list(json.loads(response.read())["ses"]["RawMessage"])


@dataclass
class Stack:
    """SES's side of the EC2 mode, on the moto server: bucket, topic, queue, dead-letter queue."""

    endpoint: str
    session: boto3.session.Session
    queue_url: str
    dlq_url: str
    topic_arn: str
    env: dict[str, str]

    def client(self, name: str) -> Any:
        return self.session.client(name, endpoint_url=self.endpoint)

    def othermail(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from forwarder.cli.main import main; main()", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def receive_mail(self, message_id: str, raw: bytes, recipient: str) -> None:
        """What SES does for a receipt rule with an S3 action and a topic: store, then notify."""
        self.client("s3").put_object(Bucket=BUCKET, Key=PREFIX + message_id, Body=raw)
        self.client("sns").publish(
            TopicArn=self.topic_arn,
            Subject="Amazon SES Email Receipt Notification",
            Message=json.dumps(ses_notification(message_id, recipient, topic_arn=self.topic_arn)),
        )

    def sent(self) -> list:
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)


@pytest.fixture
def stack(moto_server: str, tmp_path: Path) -> Stack:
    session = boto3.session.Session(region_name=REGION)
    endpoint = moto_server

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint)

    client("s3").create_bucket(Bucket=BUCKET)
    client("ses").verify_domain_identity(Domain="othermail.example")
    sqs = client("sqs")
    queue_url = make_queue(sqs, max_receives=3)
    dlq_url = sqs.get_queue_url(QueueName="othermail-inbound-dlq")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = client("sns")
    topic_arn = sns.create_topic(Name="othermail-inbound")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)  # raw delivery off, as for SES
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env = {
        **keep,
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "OTHERMAIL_DATA_DIR": str(tmp_path / "var"),
        "OTHERMAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'othermail.db'}",
        "OTHERMAIL_DOMAINS": "othermail.example",
        "OTHERMAIL_S3_BUCKET": BUCKET,
        "OTHERMAIL_S3_PREFIX": PREFIX,
        "OTHERMAIL_QUEUE_URL": queue_url,
        "OTHERMAIL_QUEUE_WAIT_SECONDS": "1",
    }
    built = Stack(endpoint, session, queue_url, dlq_url, topic_arn, env)
    for args in (
        ("db", "upgrade"),
        (
            "alias",
            "create",
            "--owner",
            "owner@owner.example",
            "--destination",
            "a@real.example",
            "--local-part",
            "shop-7hq2",
        ),
    ):
        done = built.othermail(*args)
        assert done.returncode == 0, done.stderr
    assert ALIAS in done.stdout
    return built


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_end_to_end_ses_s3_sns_sqs_worker_and_a_redelivery_that_sends_nothing(stack: Stack) -> None:
    sqs = stack.client("sqs")
    stack.receive_mail("e2e-1", MESSAGE, ALIAS)
    # Keep a copy of the queue message SNS delivered (a receive with visibility 0 leaves it there).
    (peeked,) = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(peeked["Body"])
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == stack.topic_arn

    first = stack.othermail("worker", "--once", "--wait-seconds", "1")
    assert first.returncode == 0, first.stderr
    assert f"queue {stack.queue_url}" in first.stdout and f"s3://{BUCKET}/{PREFIX}" in first.stdout
    assert "sqlite:///" in first.stdout and "dead-letter queue" in first.stdout
    summary = _last_json(first.stdout)
    assert (summary["received"], summary["deleted"], summary["left"]) == (1, 1, 0)
    assert summary["outcomes"] == {"forwarded": 1}
    (sent,) = stack.sent()
    assert sent.source == ALIAS and "a@real.example" in sent.destinations
    assert sent.raw_data.endswith("\r\n\r\nBody line one\r\n")
    assert queue_counts(sqs, stack.queue_url) == (0, 0)

    # SQS (or SNS) delivers the same message again.
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=peeked["Body"])
    again = stack.othermail("worker", "--once", "--wait-seconds", "1")
    assert again.returncode == 0, again.stderr
    summary = _last_json(again.stdout)
    assert (summary["received"], summary["deleted"], summary["left"]) == (1, 1, 0)
    assert summary["outcomes"] == {"duplicate": 1}
    lines = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "message" and line["duplicate"] is True for line in lines)
    assert len(stack.sent()) == 1
    assert len(_sent_through_server(stack.endpoint)) == 1
    assert queue_counts(sqs, stack.queue_url) == (0, 0)
    assert queue_counts(sqs, stack.dlq_url) == (0, 0)


def test_end_to_end_s3_object_created_through_sns(stack: Stack) -> None:
    """The other wiring: the bucket notifies the topic of each new object (SES writes the object).
    Recipients then come from the stored message's ``Received: ... for`` line."""
    stack.client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "TopicArn": stack.topic_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX}]}},
                },
            ]
        },
    )
    stored = (
        b"Received: from mx by inbound-smtp.us-east-1.amazonaws.com\r\n for shop-7hq2@othermail.example;"
        b" Mon, 23 Nov 2026 10:00:00 +0000\r\nX-SES-Spam-Verdict: PASS\r\n"
    ) + MESSAGE
    stack.client("s3").put_object(Bucket=BUCKET, Key=PREFIX + "via-s3-event", Body=stored)
    done = stack.othermail("worker", "--once", "--wait-seconds", "1")
    assert done.returncode == 0, done.stderr
    summary = _last_json(done.stdout)
    assert summary["outcomes"].get("forwarded") == 1, summary
    assert summary["deleted"] == summary["received"] and summary["left"] == 0
    assert len(stack.sent()) == 1


def test_the_worker_finishes_its_batch_and_exits_0_on_sigterm(stack: Stack) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from forwarder.cli.main import main; main()", "worker", "--wait-seconds", "1"],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("worker: queue ")
        stack.receive_mail("e2e-sig", MESSAGE, ALIAS)
        deadline = time.monotonic() + 30
        while not stack.sent() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(stack.sent()) == 1
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    summary = _last_json(out)
    assert summary["event"] == "worker-stopped" and summary["deleted"] == 1 and summary["left"] == 0
    assert queue_counts(stack.client("sqs"), stack.queue_url) == (0, 0)
