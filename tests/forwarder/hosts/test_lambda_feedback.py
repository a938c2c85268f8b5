"""SES feedback through the Lambda (SNS invokes it) and the queue worker (SNS -> SQS): bounces pause
the destination, complaints switch the alias off, one JSON line each without the address, and
nothing is ever sent because of feedback: not to the original sender, not to anyone."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.hosts.queue_worker import QueueWorker
from models import Alias, Delivery, Destination, FeedbackEvent, make_engine, make_session_factory
from tests.forwarder.hosts.lambda_env import ACCOUNT, PREFIX, REGION, Env, ses_event

ALIAS = "shop-7hq2@othermail.example"
ORIGINAL_SENDER = "sender@example.net"  # ses_event's mail.source
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:othermail-FeedbackTopic-1"
MESSAGE = (
    b"From: Jane Doe <sender@example.net>\r\n"
    b"To: shop-7hq2@othermail.example\r\n"
    b"Subject: your order\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"\r\n"
    b"Body\r\n"
)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="othermail")


def rows(env: Env, model: Any) -> list[Any]:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(model).order_by(model.id)))
    finally:
        engine.dispose()


def provider_id(env: Env, destination: str) -> str:
    """The SES message id of the forwarded copy that went to ``destination``."""
    ids = {d.id: d.email for d in rows(env, Destination)}
    (found,) = [
        r.provider_message_id
        for r in rows(env, Delivery)
        if r.outcome == "forwarded" and ids.get(r.destination_id) == destination
    ]
    return found


def bounce(message_id: str, recipient: str, bounce_type: str = "Permanent", feedback_id: str = "fb-1") -> dict:
    """A configuration-set Bounce event, as SES publishes it to the topic."""
    return {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": feedback_id,
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{recipient}>: no such user",
                }
            ],
            "timestamp": "2026-11-23T10:00:05.000Z",
            "reportingMTA": "dns; a8-1.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-11-23T10:00:01.000Z",
            "source": ALIAS,
            "messageId": message_id,
            "destination": [recipient],
            "tags": {"ses:configuration-set": ["othermail"]},
        },
    }


def complaint(message_id: str, recipient: str, feedback_id: str = "fb-c") -> dict:
    return {
        "eventType": "Complaint",
        "complaint": {
            "feedbackId": feedback_id,
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": "2026-11-23T11:00:00.000Z",
            "complaintFeedbackType": "abuse",
        },
        "mail": {
            "timestamp": "2026-11-23T10:00:01.000Z",
            "source": ALIAS,
            "messageId": message_id,
            "destination": [recipient],
        },
    }


def sns_body(notification: dict) -> dict:
    return {
        "Type": "Notification",
        "MessageId": "9a1b7c2e-0000-4000-8000-00000000000f",
        "TopicArn": TOPIC,
        "Message": json.dumps(notification),
        "Timestamp": "2026-11-23T10:00:06.000Z",
        "SignatureVersion": "1",
    }


def sns_lambda_event(notification: dict) -> dict:
    """What SNS hands the forwarder Lambda (the template's FeedbackSubscription)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{TOPIC}:0b7e6f9e-1111-4c1e-9f00-000000000001",
                "Sns": sns_body(notification),
            }
        ]
    }


def feedback_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "othermail.outcome"]
    return [line for line in lines if line["event"] == "feedback"]


def forward(env: Env, runtime: Any, message_id: str) -> dict:
    env.put(PREFIX + message_id, MESSAGE)
    return runtime.handle(ses_event(message_id, ALIAS))


def test_a_hard_bounce_through_sns_pauses_only_that_destination(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.alias(ALIAS, "gone@real.example", "fine@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    assert forward(env, runtime, "m1")["outcomes"] == {"forwarded": 2}
    sent_before = list(memory.sent)

    event = sns_lambda_event(bounce(provider_id(env, "gone@real.example"), "gone@real.example"))
    assert runtime.handle(event)["outcomes"] == {"feedback:bounce-permanent": 1}
    # a redelivery by SNS changes nothing
    assert runtime.handle(event)["outcomes"] == {"feedback:duplicate": 1}

    gone, fine = rows(env, Destination)
    assert gone.is_paused and gone.bounce_count == 1 and "no such user" in gone.pause_reason
    assert not fine.is_paused
    (recorded,) = rows(env, FeedbackEvent)
    assert (recorded.destination_id, recorded.alias_id) == (gone.id, rows(env, Alias)[0].id)
    # feedback sends nothing at all: not to the original sender, not to the destinations
    assert memory.sent == sent_before
    assert all(m.recipient != ORIGINAL_SENDER for m in memory.sent)

    first, second = feedback_lines(caplog)
    assert (first["kind"], first["destination_id"], first["paused_destination"], first["duplicate"]) == (
        "bounce-permanent",
        gone.id,
        True,
        False,
    )
    assert second["duplicate"] is True
    assert "<destination #%d>" % gone.id in first["detail"]
    assert not any("gone@real.example" in r.getMessage() for r in caplog.records)

    # the next message: the paused destination gets a dropped-paused row, the other one the mail
    caplog.clear()
    summary = forward(env, runtime, "m2")
    assert summary["outcomes"] == {"forwarded": 1, "dropped-paused": 1}
    assert [m.recipient for m in memory.sent[len(sent_before) :]] == ["fine@real.example"]
    paused_row = [r for r in rows(env, Delivery) if r.inbound_message_id == "m2" and r.outcome == "dropped-paused"]
    assert [r.destination_id for r in paused_row] == [gone.id]
    assert paused_row[0].reason.startswith("destination paused on ")
    assert not any("gone@real.example" in r.getMessage() for r in caplog.records)
    runtime.close()


def test_a_complaint_through_sns_switches_the_alias_off(env: Env) -> None:
    env.alias(ALIAS, "me@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    forward(env, runtime, "m1")
    event = sns_lambda_event(complaint(provider_id(env, "me@real.example"), "me@real.example"))
    assert runtime.handle(event)["outcomes"] == {"feedback:complaint": 1}
    (alias,) = rows(env, Alias)
    assert not alias.enabled and "spam complaint (abuse)" in (alias.disabled_reason or "")
    assert rows(env, Destination)[0].complaint_count == 1
    assert forward(env, runtime, "m2")["outcomes"] == {"dropped-disabled": 1}
    assert len(memory.sent) == 1  # the first message only
    runtime.close()


def test_the_complaint_action_setting_only_counts(env: Env) -> None:
    env.alias(ALIAS, "me@real.example")
    runtime = env.runtime(sender=MemorySender(), complaint_action="count")
    forward(env, runtime, "m1")
    runtime.handle(sns_lambda_event(complaint(provider_id(env, "me@real.example"), "me@real.example")))
    assert rows(env, Alias)[0].enabled and rows(env, Destination)[0].complaint_count == 1
    runtime.close()


def test_soft_bounces_pause_at_the_configured_limit(env: Env) -> None:
    env.alias(ALIAS, "full@real.example")
    runtime = env.runtime(sender=MemorySender(), soft_bounce_limit=2)
    forward(env, runtime, "m1")
    ses_id = provider_id(env, "full@real.example")
    runtime.handle(sns_lambda_event(bounce(ses_id, "full@real.example", "Transient", "s1")))
    assert not rows(env, Destination)[0].is_paused
    runtime.handle(sns_lambda_event(bounce(ses_id, "full@real.example", "Transient", "s2")))
    assert rows(env, Destination)[0].is_paused
    runtime.close()


def test_feedback_for_a_message_never_sent_here_is_recorded_and_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.alias(ALIAS, "me@real.example")
    runtime = env.runtime(sender=MemorySender())
    assert runtime.handle(sns_lambda_event(bounce("not-ours", "me@real.example")))["outcomes"] == {
        "feedback:bounce-permanent": 1
    }
    (recorded,) = rows(env, FeedbackEvent)
    assert recorded.destination_id is None and recorded.provider_message_id == "not-ours"
    assert not rows(env, Destination)[0].is_paused
    (line,) = feedback_lines(caplog)
    assert line["known_message"] is False and "[recipient]" in line["detail"]
    runtime.close()


def test_other_events_of_the_topic_are_skipped_and_malformed_ones_logged(env: Env) -> None:
    runtime = env.runtime(sender=MemorySender())
    delay = {"eventType": "DeliveryDelay", "mail": {"messageId": "x"}, "deliveryDelay": {"delayType": "MailboxFull"}}
    assert runtime.handle(sns_lambda_event(delay))["outcomes"] == {"skipped:ses-delivery-delay": 1}
    broken = {"eventType": "Bounce", "mail": {"messageId": "x"}}
    assert runtime.handle(sns_lambda_event(broken))["outcomes"] == {"skipped:invalid-event": 1}
    assert rows(env, FeedbackEvent) == []
    runtime.close()


def test_the_invocation_counts_feedback_in_its_metrics_line(env: Env) -> None:
    runtime = env.runtime(sender=MemorySender())
    lines: list[str] = []
    runtime.invoke(sns_lambda_event(bounce("not-ours", "me@real.example")), emit=lines.append)
    (line,) = lines
    assert json.loads(line)["feedback:bounce-permanent"] == 1
    runtime.close()


@pytest.mark.parametrize("raw_delivery", [False, True])
def test_the_queue_worker_applies_feedback_and_deletes_the_message(env: Env, raw_delivery: bool) -> None:
    env.alias(ALIAS, "gone@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    forward(env, runtime, "m1")
    notification = bounce(provider_id(env, "gone@real.example"), "gone@real.example")
    sqs = env.session.client("sqs")
    url = sqs.create_queue(QueueName="othermail-feedback", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    body = json.dumps(notification) if raw_delivery else json.dumps(sns_body(notification))
    for _ in range(2):  # SNS and SQS deliver at least once
        sqs.send_message(QueueUrl=url, MessageBody=body)
    worker = QueueWorker(runtime, sqs, url, wait_seconds=0)
    result = worker.run_once()
    assert (result.received, result.deleted, result.left) == (2, 2, 0)
    assert result.outcomes == {"feedback:bounce-permanent": 1, "feedback:duplicate": 1}
    (destination,) = rows(env, Destination)
    assert destination.is_paused and destination.bounce_count == 1
    assert len(memory.sent) == 1
    runtime.close()
