"""parse_feedback: SES bounce and complaint notifications in both shapes, the ignored event types,
and malformed input as InvalidFeedback.

The Firefox Relay samples come from the shared corpus (OTHERMAIL_CORPUS, or the default path of
tests/forwarder/hosts/lambda_env.py), read at test time; the configuration-set events are written
here after the SES developer guide's examples ("Examples of event data that Amazon SES publishes
to Amazon SNS").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from forwarder.errors import InvalidEvent, InvalidFeedback
from forwarder.flows.feedback import (
    BOUNCE_PERMANENT,
    BOUNCE_TRANSIENT,
    COMPLAINT,
    Feedback,
    Ignored,
    parse_feedback,
)
from tests.forwarder.hosts.lambda_env import corpus  # noqa: F401  (fixture)

RELAY = Path("ses-events") / "mozilla-fx-private-relay"
MESSAGE_ID = "0100017e6dde5594-4912fac5-bd85-4358-98d4-7b8d8b89fc60-000000"
FEEDBACK_ID = "0100017e6dde5726-6164bdc9-7da9-42f7-ba58-8f4692799d89-000000"
AT = datetime(2022, 1, 18, 15, 46, 34, tzinfo=UTC)


def sns_message(corpus: Path, name: str) -> str:
    """The SNS ``Message`` of a corpus sample: the SES notification as JSON text."""
    body = json.loads((corpus / RELAY / name).read_text(encoding="utf-8"))
    assert body["Type"] == "Notification"
    return body["Message"]


def mail(message_id: str = "0102018f-ses-id") -> dict[str, Any]:
    return {
        "timestamp": "2026-11-23T10:00:00.000Z",
        "source": "shop-7hq2@othermail.example",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/othermail.example",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": ["me@real.example"],
        "tags": {"ses:configuration-set": ["othermail"]},
    }


def bounce_event(bounce_type: str = "Permanent", sub_type: str = "General", **recipient: Any) -> dict[str, Any]:
    entry = {
        "emailAddress": "me@real.example",
        "action": "failed",
        "status": "5.1.1",
        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
        **recipient,
    }
    return {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": "0100018f-bounce-1",
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [entry],
            "timestamp": "2026-11-23T10:00:02.000Z",
            "reportingMTA": "dns; a8-23.smtp-out.amazonses.com",
        },
        "mail": mail(),
    }


def complaint_event(**complaint: Any) -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "complaint": {
            "feedbackId": "0100018f-complaint-1",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": "me@real.example"}],
            "timestamp": "2026-11-23T11:00:00.000Z",
            "userAgent": "Mozilla/5.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-23T10:59:00.000Z",
            **complaint,
        },
        "mail": mail(),
    }


# ------------------------------------------------------------------------------- the corpus


def test_the_hard_bounce_sample(corpus: Path) -> None:
    (item,) = parse_feedback(sns_message(corpus, "hard_bounce_sns_body.json"))
    assert item == Feedback(
        feedback_id=FEEDBACK_ID,
        kind=BOUNCE_PERMANENT,
        sub_type="OnAccountSuppressionList",
        message_id=MESSAGE_ID,
        recipient="relayuser@test.com",
        detail=item.detail,
        occurred_at=AT,
    )
    assert item.detail.startswith(
        "Amazon SES did not send the message to this address because it is on the suppression list"
    )
    assert item.is_bounce


@pytest.mark.parametrize(
    ("name", "sub_type", "detail"),
    [
        ("soft_bounce_sns_body.json", "SRETeamEatenByDinosaurs", "Amazon SES did not send the message"),
        ("spam_bounce_sns_body.json", "StopRelayingSpamForThisUser", "Message considered as spam."),
    ],
)
def test_the_soft_bounce_samples(corpus: Path, name: str, sub_type: str, detail: str) -> None:
    (item,) = parse_feedback(sns_message(corpus, name))
    assert (item.kind, item.sub_type, item.message_id, item.recipient) == (
        BOUNCE_TRANSIENT,
        sub_type,
        MESSAGE_ID,
        "relayuser@test.com",
    )
    assert item.detail.startswith(detail)
    assert item.occurred_at == AT


def test_the_samples_parse_the_same_from_a_dict_and_from_bytes(corpus: Path) -> None:
    text = sns_message(corpus, "hard_bounce_sns_body.json")
    assert parse_feedback(json.loads(text)) == parse_feedback(text) == parse_feedback(text.encode())


# ------------------------------------------------------------------ configuration-set events


def test_a_configuration_set_permanent_bounce() -> None:
    (item,) = parse_feedback(bounce_event())
    assert item == Feedback(
        "0100018f-bounce-1",
        BOUNCE_PERMANENT,
        "General",
        "0102018f-ses-id",
        "me@real.example",
        "smtp; 550 5.1.1 user unknown",
        datetime(2026, 11, 23, 10, 0, 2, tzinfo=UTC),
    )


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_transient_and_undetermined_bounces_are_soft(bounce_type: str) -> None:
    (item,) = parse_feedback(bounce_event(bounce_type, "MailboxFull"))
    assert (item.kind, item.sub_type) == (BOUNCE_TRANSIENT, "MailboxFull")


def test_one_feedback_per_bounced_recipient_lowercased_without_a_display_name() -> None:
    event = bounce_event()
    event["bounce"]["bouncedRecipients"] = [
        {"emailAddress": "Me@Real.Example", "status": "5.1.1", "action": "failed"},
        {"emailAddress": '"Other Box" <other@real.example>'},
    ]
    first, second = parse_feedback(event)
    assert (first.recipient, first.detail) == ("me@real.example", "5.1.1 failed")  # no diagnosticCode
    assert (second.recipient, second.detail) == ("other@real.example", "")
    assert first.feedback_id == second.feedback_id


def test_a_configuration_set_complaint() -> None:
    (item,) = parse_feedback(complaint_event())
    assert (item.kind, item.sub_type, item.recipient, item.message_id) == (
        COMPLAINT,
        "abuse",
        "me@real.example",
        "0102018f-ses-id",
    )
    assert item.detail == "reported through Mozilla/5.0"
    assert item.occurred_at == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    assert not item.is_bounce


def test_a_complaint_without_a_feedback_type_uses_its_sub_type_or_nothing() -> None:
    event = complaint_event(complaintFeedbackType=None, complaintSubType="OnAccountSuppressionList", userAgent=None)
    (item,) = parse_feedback(event)
    assert (item.sub_type, item.detail) == ("OnAccountSuppressionList", "")
    (item,) = parse_feedback(complaint_event(complaintFeedbackType=None))
    assert item.sub_type == ""


def test_an_identity_notification_complaint() -> None:
    event = complaint_event()
    event["notificationType"] = event.pop("eventType")
    (item,) = parse_feedback(event)
    assert item.kind == COMPLAINT


def test_a_missing_or_naive_timestamp_falls_back_and_stays_aware() -> None:
    event = bounce_event()
    del event["bounce"]["timestamp"]
    (item,) = parse_feedback(event)
    assert item.occurred_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # mail.timestamp
    event["mail"]["timestamp"] = "2026-11-23T12:30:00"
    (item,) = parse_feedback(event)
    assert item.occurred_at == datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    event["mail"]["timestamp"] = "yesterday"
    (item,) = parse_feedback(event)
    assert item.occurred_at is None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("Delivery", "ses-delivery"),
        ("Send", "ses-send"),
        ("Reject", "ses-reject"),
        ("DeliveryDelay", "ses-delivery-delay"),
        ("Open", "ses-open"),
        ("Click", "ses-click"),
        ("Rendering Failure", "ses-rendering-failure"),
        ("Subscription", "ses-subscription"),
        ("AmazonSnsSubscriptionSucceeded", "ses-subscription-succeeded"),
        ("SomethingNew", "ses-unknown-event"),
    ],
)
def test_other_event_types_are_ignored_by_name(kind: str, reason: str) -> None:
    assert parse_feedback({"eventType": kind, "mail": mail()}) == Ignored(reason, f"SES {kind} notification")


# ------------------------------------------------------------------------------- malformed


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    event = bounce_event()
    node = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("not json", "not JSON"),
        ([1, 2], "JSON object"),
        (None, "JSON object"),
        ({"mail": mail()}, "without eventType"),
        (_without(("bounce",)), "'bounce'"),
        (_without(("mail",)), "'mail'"),
        (_without(("mail", "messageId")), "messageId"),
        (_without(("bounce", "feedbackId")), "feedbackId"),
        (_without(("bounce", "bounceType")), "bounceType"),
        (_without(("bounce", "bouncedRecipients")), "bouncedRecipients"),
        ({**bounce_event(), "bounce": {**bounce_event()["bounce"], "bouncedRecipients": []}}, "non-empty list"),
        (
            {**bounce_event(), "bounce": {**bounce_event()["bounce"], "bouncedRecipients": ["me@real.example"]}},
            "not an object",
        ),
        (
            {
                **bounce_event(),
                "bounce": {**bounce_event()["bounce"], "bouncedRecipients": [{"emailAddress": "nobody"}]},
            },
            "not an address",
        ),
        (
            {**bounce_event(), "bounce": {**bounce_event()["bounce"], "bouncedRecipients": [{"emailAddress": 7}]}},
            "emailAddress",
        ),
        ({**bounce_event(), "bounce": {**bounce_event()["bounce"], "feedbackId": ""}}, "feedbackId"),
        ({**complaint_event(), "complaint": "abuse"}, "'complaint'"),
        ({**complaint_event(), "complaint": {"feedbackId": "f", "complainedRecipients": None}}, "complainedRecipients"),
    ],
)
def test_malformed_notifications_raise_invalid_feedback(message: Any, words: str) -> None:
    with pytest.raises(InvalidFeedback, match=words) as caught:
        parse_feedback(message)
    assert isinstance(caught.value, InvalidEvent)  # the runtime logs it as invalid-event, never crashes
