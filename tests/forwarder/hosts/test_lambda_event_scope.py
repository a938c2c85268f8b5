"""Issue 12.26: the Lambda reads raw mail only from the configured bucket and prefix, and logs an
invalid event truncated and without message content. On moto."""

from __future__ import annotations

import json
import logging

import pytest

from forwarder.adapters.aws.events import INVALID_EVENT_LOG_CHARS, describe_event
from forwarder.adapters.senders import MemorySender
from tests.forwarder.hosts.lambda_env import BUCKET, PREFIX, Env, ses_event

ALIAS = "shop-7hq2@othermail.example"
MESSAGE = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hello\r\n\r\nbody\r\n"


def _s3_event(bucket: str, key: str) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
        ]
    }


def _sns_s3_action(bucket: str, key: str, message_id: str) -> dict:
    notification = {
        "notificationType": "Received",
        "mail": {"messageId": message_id, "source": "jane@example.net"},
        "receipt": {"recipients": [ALIAS], "action": {"type": "S3", "bucketName": bucket, "objectKey": key}},
    }
    return {"Type": "Notification", "Message": json.dumps(notification)}


@pytest.mark.parametrize(
    "make_event",
    [
        lambda: _s3_event("someone-elses-bucket", PREFIX + "m1"),
        lambda: _s3_event(BUCKET, "private/m1"),  # the right bucket, outside the prefix
        lambda: _sns_s3_action("someone-elses-bucket", PREFIX + "m1", "m1"),
        lambda: _sns_s3_action(BUCKET, "private/m1", "m1"),
    ],
    ids=["s3-other-bucket", "s3-other-prefix", "sns-other-bucket", "sns-other-prefix"],
)
def test_an_object_outside_the_configured_bucket_and_prefix_is_never_read(env: Env, make_event, caplog) -> None:
    env.alias(ALIAS, "a@real.example")
    env.session.client("s3").create_bucket(Bucket="someone-elses-bucket")
    env.put(PREFIX + "m1", MESSAGE, bucket="someone-elses-bucket")
    env.put("private/m1", MESSAGE)
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    read: list[tuple[str, str | None]] = []
    original_get = runtime.store.get
    runtime.store.get = lambda key, bucket=None: read.append((key, bucket)) or original_get(key, bucket=bucket)  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="othermail"):
        summary = runtime.handle(make_event())
    assert summary["outcomes"] == {"skipped:object-outside-bucket": 1}
    assert read == [] and memory.sent == []
    assert "object-outside-bucket" in caplog.text


def test_objects_inside_the_bucket_and_prefix_are_still_forwarded(env: Env) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "ok1", MESSAGE)
    env.put(PREFIX + "ok2", b"X-SES-Spam-Verdict: PASS\r\n" + MESSAGE)
    runtime = env.runtime(sender=MemorySender())
    assert runtime.handle(ses_event("ok1", ALIAS))["outcomes"] == {"forwarded": 1}
    assert runtime.handle(_s3_event(BUCKET, PREFIX + "ok2"))["outcomes"] == {"forwarded": 1}


def test_an_invalid_event_is_logged_truncated_and_without_message_content(env: Env, caplog) -> None:
    secret_subject = "Your account statement 4711"
    headers = [{"name": "Subject", "value": secret_subject}, {"name": "From", "value": "jane@example.net"}]
    padding = [{"name": f"X-Pad-{n}", "value": "p" * 200} for n in range(200)]
    event = {
        "Records": [
            {
                "eventSource": "aws:ses",
                "ses": {
                    "mail": {
                        "messageId": "a/b",
                        "source": "jane@example.net",
                        "headers": headers + padding,
                        "commonHeaders": {"subject": secret_subject, "from": ["Jane <jane@example.net>"]},
                    },
                    "receipt": {"recipients": [ALIAS]},
                },
            }
        ]
    }
    runtime = env.runtime(sender=MemorySender())
    with caplog.at_level(logging.INFO, logger="othermail"):
        summary = runtime.handle(event)
    assert summary["outcomes"] == {"skipped:invalid-event": 1}
    logged = [json.loads(r.getMessage()) for r in caplog.records if "invalid-event" in r.getMessage()]
    assert len(logged) == 1
    detail = logged[0]["detail"]
    assert secret_subject not in detail and "jane@example.net" not in detail and "X-Pad" not in detail
    assert "messageId" in detail  # still says what was wrong and where
    assert len(detail) <= INVALID_EVENT_LOG_CHARS + 200  # the reason plus the truncated event


def test_an_sns_or_sqs_wrapped_invalid_event_is_redacted_inside_its_json_strings() -> None:
    inner = {
        "notificationType": "Received",
        "content": "Subject: secret\r\n\r\nbody",
        "mail": {"commonHeaders": {"subject": "secret"}, "headers": [{"name": "Subject", "value": "secret"}]},
    }
    wrapped = {
        "Records": [
            {"eventSource": "aws:sqs", "body": json.dumps({"Type": "Notification", "Message": json.dumps(inner)})}
        ]
    }
    text = describe_event(wrapped)
    assert "secret" not in text and "body" in text and len(text) <= INVALID_EVENT_LOG_CHARS
    assert len(describe_event({"x": "y" * 10_000})) <= INVALID_EVENT_LOG_CHARS
    assert describe_event(b"\x00not json") == "<bytes>"
