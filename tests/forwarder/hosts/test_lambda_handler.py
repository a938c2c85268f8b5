"""The Lambda handler's promises: once per destination, retries that finish, named failures."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from forwarder.adapters.aws.ses import SesV2Sender
from forwarder.adapters.senders import MemorySender
from forwarder.errors import DatabaseUnavailable, DeliveryInProgress, MessageNotFound, SendRetryable
from forwarder.hosts import lambda_handler
from models import Alias, Delivery, make_engine, make_session_factory
from tests.conftest import BACKEND_PARAMS, fresh_database
from tests.forwarder.hosts.lambda_env import BUCKET, PREFIX, Env, make_env, ses_event
from tests.support.races import race

ALIAS = "shop-7hq2@othermail.example"
MESSAGE = (
    b"Return-Path: <jane@example.net>\r\n"
    b"DKIM-Signature: v=1; d=example.net; b=abc\r\n"
    b"From: Jane Doe <jane@example.net>\r\n"
    b"To: shop-7hq2@othermail.example\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    b"Body line one\r\n"
    b"Body line two, no final newline"
)


def deliveries(env: Env) -> list[Delivery]:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(Delivery).order_by(Delivery.id)))
    finally:
        engine.dispose()


def alias_row(env: Env) -> Alias:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return db.scalars(select(Alias).where(Alias.address == ALIAS)).one()
    finally:
        engine.dispose()


def test_forwards_through_sesv2_one_message_per_destination(env: Env) -> None:
    env.alias(ALIAS, "a@real.example", "b@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    summary = env.runtime().handle(ses_event("m1", ALIAS))
    assert summary["outcomes"] == {"forwarded": 2}
    sent = env.sent()
    assert [m.destinations for m in sent] == [["a@real.example"], ["b@real.example"]] or all(
        len(m.destinations) >= 1 for m in sent
    )
    assert {d for m in sent for d in m.destinations} >= {"a@real.example", "b@real.example"}
    for message in sent:
        data = message.raw_data.encode()
        assert data.endswith(b"\r\n\r\nBody line one\r\nBody line two, no final newline")
        assert data.count(b"MIME-Version") == 1
        assert b"DKIM-Signature" not in data
        assert message.source == ALIAS
    rows = deliveries(env)
    assert [(r.outcome, r.destination_key > 0) for r in rows] == [("forwarded", True), ("forwarded", True)]
    assert all(r.provider_message_id for r in rows)
    row = alias_row(env)
    assert (row.message_count, row.forwarded_count, row.blocked_count) == (1, 1, 0)
    assert row.last_used_at is not None


def test_sesv1_is_selectable(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime(ses_api="v1")
    assert runtime.settings.max_bytes == 10 * 1024 * 1024
    assert runtime.handle(ses_event("m1", ALIAS))["outcomes"] == {"forwarded": 1}
    assert len(env.sent()) == 1


def test_the_same_event_twice_sends_once_per_destination(env: Env) -> None:
    env.alias(ALIAS, "a@real.example", "b@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime()
    first = runtime.handle(ses_event("m1", ALIAS))
    second = runtime.handle(ses_event("m1", ALIAS))
    assert first["outcomes"] == {"forwarded": 2}
    assert second["outcomes"] == {"duplicate": 2}
    assert len(env.sent()) == 2
    assert len(deliveries(env)) == 2
    assert alias_row(env).message_count == 1


def test_redelivered_drop_is_recorded_once(env: Env) -> None:
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime()
    assert runtime.handle(ses_event("m1", "nobody@othermail.example"))["outcomes"] == {"dropped-unknown-alias": 1}
    assert runtime.handle(ses_event("m1", "nobody@othermail.example"))["outcomes"] == {"duplicate": 1}
    assert [r.outcome for r in deliveries(env)] == ["dropped-unknown-alias"]


class ThrottledOnce:
    """A SESv2 client whose first send is throttled, as SES does under its rate limit."""

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


def test_a_throttled_send_raises_and_its_retry_completes_without_duplicates(env: Env) -> None:
    env.alias(ALIAS, "a@real.example", "b@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    flaky = ThrottledOnce(env.session.client("sesv2"))
    runtime = env.runtime(sender=SesV2Sender(flaky))
    with pytest.raises(SendRetryable):
        runtime.handle(ses_event("m1", ALIAS))
    assert [r.outcome for r in deliveries(env)] == ["retry"]
    retried = runtime.handle(ses_event("m1", ALIAS))
    assert retried["outcomes"] == {"forwarded": 2}
    assert len(env.sent()) == 2
    rows = deliveries(env)
    assert [r.outcome for r in rows] == ["forwarded", "forwarded"]
    assert rows[0].attempts == 2
    third = runtime.handle(ses_event("m1", ALIAS))
    assert third["outcomes"] == {"duplicate": 2}
    assert len(env.sent()) == 2
    assert alias_row(env).message_count == 1


def test_a_rejected_message_is_recorded_as_failed(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime()
    runtime.forwarder.sender = SesV2Sender(env.session.client("sesv2"))
    env.session.client("ses").delete_identity(Identity="othermail.example")
    summary = runtime.handle(ses_event("m1", ALIAS))
    assert summary["outcomes"] == {"failed-rejected": 1}
    (row,) = deliveries(env)
    assert row.outcome == "failed-rejected" and "SES" in row.reason


def test_a_missing_object_raises_message_not_found(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    with pytest.raises(MessageNotFound, match="inbound/absent"):
        env.runtime().handle(ses_event("absent", ALIAS))


def test_an_unreachable_database_raises_a_retryable_error(env: Env) -> None:
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(DatabaseUnavailable):
        runtime.handle(ses_event("m1", ALIAS))


def test_verdicts_decide(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    runtime = env.runtime(sender=MemorySender())
    cases = {
        "virus": ({"virus": "FAIL"}, "dropped-virus"),
        "spam": ({"spam": "FAIL"}, "dropped-spam"),
        "dmarc": ({"dmarc": "FAIL", "dmarc_policy": "reject"}, "dropped-dmarc"),
        "quarantine": ({"dmarc": "FAIL", "dmarc_policy": "quarantine"}, "forwarded"),
        "gray": ({"spam": "GRAY", "virus": "PROCESSING_FAILED"}, "forwarded"),
    }
    for message_id, (verdicts, expected) in cases.items():
        env.put(PREFIX + message_id, MESSAGE)
        assert runtime.handle(ses_event(message_id, ALIAS, **verdicts))["outcomes"] == {expected: 1}
    assert alias_row(env).blocked_count == 3


def test_spam_policy_is_configurable(env: Env) -> None:
    from forwarder.core import Policy

    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime(sender=MemorySender(), policy=Policy(drop_spam=False))
    assert runtime.handle(ses_event("m1", ALIAS, spam="FAIL"))["outcomes"] == {"forwarded": 1}


def test_s3_object_created_and_sns_notifications_are_accepted(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    stored = (
        b"X-SES-Spam-Verdict: PASS\r\nReceived: from mx by inbound-smtp.us-east-1.amazonaws.com\r\n"
        b" for shop-7hq2@othermail.example; Mon, 23 Nov 2026 10:00:00 +0000\r\n" + MESSAGE
    )
    env.put(PREFIX + "s3-created", stored)
    s3_event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": PREFIX + "s3-created"}},
            }
        ]
    }
    assert runtime.handle(s3_event)["outcomes"] == {"forwarded": 1}

    env.put(PREFIX + "via-sns", MESSAGE)
    notification = {
        "notificationType": "Received",
        "mail": {"messageId": "via-sns", "source": "jane@example.net"},
        "receipt": {
            "recipients": [ALIAS],
            "spamVerdict": {"status": "PASS"},
            "action": {"type": "S3", "bucketName": BUCKET, "objectKey": PREFIX + "via-sns"},
        },
    }
    sqs_event = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "body": json.dumps({"Type": "Notification", "Message": json.dumps(notification)}),
            }
        ]
    }
    assert runtime.handle(sqs_event)["outcomes"] == {"forwarded": 1}
    assert len(memory.sent) == 2


def test_handler_builds_its_runtime_once_from_the_environment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", env.database_url)
    monkeypatch.setenv("OTHERMAIL_S3_BUCKET", BUCKET)
    monkeypatch.setenv("OTHERMAIL_S3_PREFIX", PREFIX)
    monkeypatch.setenv("OTHERMAIL_DOMAINS", "othermail.example")
    assert lambda_handler.handler(ses_event("m1", ALIAS), None)["outcomes"] == {"forwarded": 1}
    first = lambda_handler._runtime
    assert lambda_handler.handler(ses_event("m1", ALIAS), None)["outcomes"] == {"duplicate": 1}
    assert lambda_handler._runtime is first


def test_a_stale_claim_is_taken_over_and_a_fresh_one_is_not(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)

    class Crash(Exception):
        pass

    class Dies:
        def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
            raise Crash("the process died mid-send")

    runtime = env.runtime(sender=Dies())
    with pytest.raises(Crash):
        runtime.handle(ses_event("m1", ALIAS))
    # A crash that skipped the release (power loss) leaves the row pending: simulate it.
    engine = make_engine(env.database_url)
    with make_session_factory(engine)() as db:
        row = db.scalars(select(Delivery)).one()
        row.outcome = "pending"
        db.commit()
    memory = MemorySender()
    busy = env.runtime(sender=memory)
    with pytest.raises(DeliveryInProgress):
        busy.handle(ses_event("m1", ALIAS))
    assert memory.sent == []
    with make_session_factory(engine)() as db:
        row = db.scalars(select(Delivery)).one()
        row.updated_at = row.updated_at - timedelta(hours=1)
        db.commit()
    engine.dispose()
    assert busy.handle(ses_event("m1", ALIAS))["outcomes"] == {"forwarded": 1}
    assert len(memory.sent) == 1
    assert deliveries(env)[0].attempts == 2  # the first try, then the take-over; BUSY does not count


def test_message_limit_expires_the_alias(env: Env) -> None:
    env.alias(ALIAS, "a@real.example", max_messages=2)
    runtime = env.runtime(sender=MemorySender())
    outcomes = []
    for n in range(4):
        env.put(PREFIX + f"m{n}", MESSAGE)
        outcomes += list(runtime.handle(ses_event(f"m{n}", ALIAS))["outcomes"])
    assert outcomes == ["forwarded", "forwarded", "dropped-expired-count", "dropped-expired-count"]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_concurrent_deliveries_of_one_message_send_it_once(aws: boto3.session.Session, backend: str) -> None:
    """Two invocations racing on the same event, on each real database: one send per destination."""
    with fresh_database(backend) as url:
        env = make_env(aws, url)
        env.alias(ALIAS, "a@real.example", "b@real.example")
        env.put(PREFIX + "race", MESSAGE)
        memory = MemorySender()
        runtimes = [env.runtime(sender=memory) for _ in range(4)]

        def run(runtime: Any) -> None:
            for _ in range(20):
                try:
                    runtime.handle(ses_event("race", ALIAS))
                    return
                except DeliveryInProgress:
                    threading.Event().wait(0.02)

        race([partial(run, r) for r in runtimes], within=60)
        assert sorted(m.recipient for m in memory.sent) == ["a@real.example", "b@real.example"]
        assert [r.outcome for r in deliveries(env)] == ["forwarded", "forwarded"]
        assert alias_row(env).message_count == 1
        for runtime in runtimes:
            runtime.close()


def test_the_raw_message_key_is_recorded_when_the_bucket_keeps_it(env: Env) -> None:
    """The owner downloads it, or releases it from quarantine, from that key (web/services/messages.py)."""
    import base64

    env.alias(ALIAS, "a@real.example")
    runtime = env.runtime(sender=MemorySender())
    env.put(PREFIX + "kept", MESSAGE)
    runtime.handle(ses_event("kept", ALIAS, spam="FAIL"))
    inline = {
        "notificationType": "Received",
        "content": base64.b64encode(MESSAGE).decode(),
        "mail": {"messageId": "inline", "source": "jane@example.net"},
        "receipt": {"recipients": [ALIAS], "action": {"type": "SNS", "encoding": "BASE64"}},
    }
    runtime.handle({"Type": "Notification", "Message": json.dumps(inline)})
    elsewhere = {
        "notificationType": "Received",
        "mail": {"messageId": "elsewhere", "source": "jane@example.net"},
        "receipt": {
            "recipients": [ALIAS],
            "action": {"type": "S3", "bucketName": "another-bucket", "objectKey": "x/elsewhere"},
        },
    }
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="another-bucket")
    boto3.client("s3", region_name="us-east-1").put_object(Bucket="another-bucket", Key="x/elsewhere", Body=MESSAGE)
    # another bucket's object is not read at all (issue 12.26, tests/forwarder/hosts/test_lambda_event_scope.py)
    assert runtime.handle({"Type": "Notification", "Message": json.dumps(elsewhere)})["outcomes"] == {
        "skipped:object-outside-bucket": 1
    }
    keys = {r.inbound_message_id: r.raw_key for r in deliveries(env)}
    # an SNS action's inline copy is not where the web app looks
    assert keys == {"kept": PREFIX + "kept", "inline": None}


def test_the_lambda_enforces_the_configured_mail_limits(env: Env) -> None:
    from forwarder.flows.mail_limits import MailLimits
    from forwarder.settings import DEFAULT_MAIL_LIMITS

    defaults = env.runtime()
    assert defaults.forwarder.directory.limits == DEFAULT_MAIL_LIMITS  # from the settings
    defaults.close()
    env.alias(ALIAS, "a@real.example", "b@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory, mail_limits=MailLimits(alias_per_hour=1))
    for message_id in ("m1", "m2"):
        env.put(PREFIX + message_id, MESSAGE)
    assert runtime.handle(ses_event("m1", ALIAS))["outcomes"] == {"forwarded": 2}
    assert runtime.handle(ses_event("m2", ALIAS))["outcomes"] == {"dropped-rate-limited": 1}
    assert sorted(m.recipient for m in memory.sent) == ["a@real.example", "b@real.example"]  # m1 only
    row = alias_row(env)
    assert (row.message_count, row.blocked_count) == (1, 1)
    runtime.close()
