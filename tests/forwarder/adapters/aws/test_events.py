"""parse_event: every event shape it accepts, and the ones it must reject with InvalidEvent.

The real SES / SNS samples come from the shared corpus (OTHERMAIL_CORPUS, default
/work/shared/corpus), read at test time; the other shapes are built here.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from forwarder.adapters.aws.events import FeedbackJob, Job, Skipped, parse_event
from forwarder.core import Verdicts
from forwarder.errors import InvalidEvent

BUCKET = "othermail-inbound"
PREFIX = "inbound/"


# --------------------------------------------------------------------------- corpus samples


@pytest.fixture
def ses_events() -> Path:
    corpus = Path(os.environ.get("OTHERMAIL_CORPUS") or "/work/shared/corpus")
    folder = corpus / "ses-events"
    if not folder.is_dir():
        pytest.skip(f"the shared corpus's ses-events folder is not at {folder} (set OTHERMAIL_CORPUS)")
    return folder


def load(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def only(items: list) -> Any:
    assert len(items) == 1, items
    return items[0]


def test_lambda_action_event_names_the_object_by_prefix_and_message_id(ses_events: Path) -> None:
    event = load(ses_events, "arithmetric-aws-lambda-ses-forwarder/event.json")
    job = only(parse_event(event, bucket=BUCKET, prefix=PREFIX))
    assert isinstance(job, Job)
    assert job.message_id == "o3vrnil0e2ic28trm7dakrc2v0clambda4nbp0g1"
    assert job.bucket == BUCKET
    assert job.key == PREFIX + "o3vrnil0e2ic28trm7dakrc2v0clambda4nbp0g1"
    assert job.content is None
    assert job.recipients == ("info@example.com",)
    assert not job.recipients_from_headers
    assert job.mail_from == "janedoe@example.com"
    assert job.received_at == datetime(1970, 1, 1, tzinfo=UTC)
    # No dmarcVerdict in this sample: it defaults to PASS, and no policy is invented.
    assert job.verdicts == Verdicts(spam="PASS", virus="PASS", spf="PASS", dkim="PASS", dmarc="PASS")
    assert job.verdicts.dmarc_policy is None


def test_lambda_action_event_without_a_configured_bucket_is_invalid(ses_events: Path) -> None:
    event = load(ses_events, "arithmetric-aws-lambda-ses-forwarder/event.json")
    with pytest.raises(InvalidEvent, match="OTHERMAIL_S3_BUCKET"):
        parse_event(event, bucket="", prefix=PREFIX)


def test_humbleforwarder_event_without_a_mail_section_is_invalid(ses_events: Path) -> None:
    # The sample carries spamVerdict FAIL and virusVerdict DISABLED but no ``mail`` section: with no
    # messageId there is no object to read, so it cannot become a job.
    event = load(ses_events, "kjpgit-HumbleForwarder/event.json")
    receipt = event["Records"][0]["ses"]["receipt"]
    assert receipt["spamVerdict"] == {"status": "FAIL"} and receipt["virusVerdict"] == {"status": "DISABLED"}
    with pytest.raises(InvalidEvent, match="mail and receipt"):
        parse_event(event, bucket=BUCKET, prefix=PREFIX)


def test_humbleforwarder_verdicts_pass_through_once_a_mail_section_is_present(ses_events: Path) -> None:
    event = load(ses_events, "kjpgit-HumbleForwarder/event.json")
    event["Records"][0]["ses"]["mail"] = {"messageId": "humble0001", "source": "x@sender.example"}
    job = only(parse_event(event, bucket=BUCKET, prefix=PREFIX))
    assert job.verdicts.spam == "FAIL"
    assert job.verdicts.virus == "DISABLED"
    assert job.recipients == ("code@coder.dev", "code2@coder.dev")
    assert job.key == PREFIX + "humble0001"


RELAY = "mozilla-fx-private-relay/"


@pytest.mark.parametrize("name", ["s3_stored_email_sns_body.json", "s3_stored_replies_email_sns_body.json"])
def test_sns_notification_of_an_s3_action_names_bucket_and_object_key(ses_events: Path, name: str) -> None:
    job = only(parse_event(load(ses_events, RELAY + name), bucket=BUCKET, prefix=PREFIX))
    assert isinstance(job, Job)
    # The action's own bucket and key win over the configured ones.
    assert (job.bucket, job.key) == ("test-bucket", "/emails/objectkey123")
    assert job.message_id == "objectkey123"
    assert job.content is None
    assert job.mail_from == "source@sender.com"
    assert len(job.recipients) == 1 and job.recipients[0].endswith("@test.com")
    assert job.verdicts.dmarc == "PASS" and job.verdicts.dmarc_policy is None


def test_sns_notification_of_an_s3_action_needs_no_configured_bucket(ses_events: Path) -> None:
    job = only(parse_event(load(ses_events, RELAY + "s3_stored_email_sns_body.json")))
    assert (job.bucket, job.key) == ("test-bucket", "/emails/objectkey123")


def test_dmarc_failure_carries_the_reject_policy(ses_events: Path) -> None:
    job = only(parse_event(load(ses_events, RELAY + "dmarc_failed_email_sns_body.json"), bucket=BUCKET))
    assert job.verdicts.dmarc == "FAIL"
    assert job.verdicts.dmarc_policy == "reject"
    assert job.verdicts.spf == "FAIL"
    assert job.verdicts.spam == "PASS"


@pytest.mark.parametrize(
    "name, recipient",
    [
        ("single_recipient_email_sns_body.json", "ebsbdsan7@test.com"),
        ("single_recipient_list_email_sns_body.json", "ebsbdsan7@test.com"),
        ("domain_recipient_email_sns_body.json", "wildcard@subdomain.test.com"),
        ("replies_email_sns_body.json", "replies@test.com"),
        ("spamVerdict_FAIL_email_sns_body.json", "ebsbdsan7@test.com"),
    ],
)
def test_sns_action_notification_carries_the_message_itself(ses_events: Path, name: str, recipient: str) -> None:
    body = load(ses_events, RELAY + name)
    content = json.loads(body["Message"])["content"]
    job = only(parse_event(body, bucket=BUCKET, prefix=PREFIX))
    assert isinstance(job, Job)
    assert job.content == content.encode("utf-8")
    assert job.content.startswith((b"Return-Path:", b"List-Unsubscribe:"))
    assert job.bucket is None and job.key is None
    assert job.recipients == (recipient,)
    assert job.message_id == "s08vnjngg8o82cpus2084722eiate3c6ig885f01"
    assert job.mail_from == "fxastage@protonmail.com"
    assert job.received_at == datetime(2022, 1, 13, 21, 2, 45, 441000, tzinfo=UTC)


def test_sns_action_spam_verdict_fail_is_kept(ses_events: Path) -> None:
    job = only(parse_event(load(ses_events, RELAY + "spamVerdict_FAIL_email_sns_body.json")))
    assert job.verdicts.spam == "FAIL"
    assert job.verdicts.virus == "PASS"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("hard_bounce_sns_body.json", "bounce-permanent"),
        ("soft_bounce_sns_body.json", "bounce-transient"),
        ("spam_bounce_sns_body.json", "bounce-transient"),
    ],
)
def test_sending_side_bounce_notifications_become_feedback(ses_events: Path, name: str, kind: str) -> None:
    item = only(parse_event(load(ses_events, RELAY + name), bucket=BUCKET, prefix=PREFIX))
    assert isinstance(item, FeedbackJob)
    (feedback,) = item.feedback
    assert (feedback.kind, feedback.recipient) == (kind, "relayuser@test.com")
    assert feedback.message_id == "0100017e6dde5594-4912fac5-bd85-4358-98d4-7b8d8b89fc60-000000"


def test_subscription_confirmation_is_skipped_never_confirmed(ses_events: Path) -> None:
    body = load(ses_events, RELAY + "subscription_confirmation_invalid_sns_body.json")
    item = only(parse_event(body, bucket=BUCKET, prefix=PREFIX))
    assert isinstance(item, Skipped)
    assert item.reason == "sns-subscription-confirmation"
    assert body["TopicArn"] in item.detail
    assert "not confirmed" in item.detail


def test_corpus_samples_wrapped_for_lambda_and_sqs_give_the_same_items(ses_events: Path) -> None:
    for path in sorted((ses_events / "mozilla-fx-private-relay").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        bare = parse_event(body, bucket=BUCKET, prefix=PREFIX)
        assert parse_event(sns_record_event(body), bucket=BUCKET, prefix=PREFIX) == bare, path.name
        assert parse_event(sqs_event(body), bucket=BUCKET, prefix=PREFIX) == bare, path.name


# --------------------------------------------------------------------------- built events


def ses_message(
    message_id: str = "abc123",
    recipients: Any = ("shop-7hq2@othermail.example",),
    action: dict | None = None,
    **receipt_extra: Any,
) -> dict:
    mail = {
        "timestamp": "2026-11-23T10:00:00.000Z",
        "source": "sender@example.net",
        "messageId": message_id,
        "destination": ["shop-7hq2@othermail.example", "someone@elsewhere.example"],
    }
    receipt = {
        "timestamp": "2026-11-23T10:00:00.500Z",
        "recipients": list(recipients) if isinstance(recipients, tuple) else recipients,
        "spamVerdict": {"status": "PASS"},
        "virusVerdict": {"status": "PASS"},
        "spfVerdict": {"status": "PASS"},
        "dkimVerdict": {"status": "PASS"},
        "dmarcVerdict": {"status": "PASS"},
        "action": action if action is not None else {"type": "Lambda", "invocationType": "Event"},
        **receipt_extra,
    }
    return {"mail": mail, "receipt": receipt}


def ses_event(*messages: dict) -> dict:
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": m} for m in messages]}


def sns_body(message: dict | str, kind: str = "Notification") -> dict:
    return {
        "Type": kind,
        "MessageId": "5f1e2b3c-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:othermail-inbound",
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-11-23T10:00:01.000Z",
    }


def sns_record_event(body: dict) -> dict:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": body}]}


def sqs_event(*bodies: Any) -> dict:
    return {
        "Records": [
            {"messageId": f"sqs-{i}", "eventSource": "aws:sqs", "body": b if isinstance(b, str) else json.dumps(b)}
            for i, b in enumerate(bodies)
        ]
    }


def s3_event(key: str, event_name: str = "ObjectCreated:Put", bucket: str = "raw-mail") -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T10:00:02.000Z",
                "eventName": event_name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1234}},
            }
        ]
    }


def received(message: dict, content: str | None = None, encoding: str | None = None) -> dict:
    """An SES ``Received`` notification (as SES publishes it to SNS) built from ``ses_message``."""
    out = {"notificationType": "Received", **message}
    if content is not None:
        action = {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:t"}
        if encoding is not None:
            action["encoding"] = encoding
        out["receipt"] = {**out["receipt"], "action": action}
        out["content"] = content
    return out


def test_ses_lambda_event_with_several_records_gives_one_job_each() -> None:
    event = ses_event(ses_message("m1"), ses_message("m2", recipients=("a@othermail.example", "b@othermail.example")))
    jobs = parse_event(event, bucket=BUCKET, prefix=PREFIX)
    assert [j.key for j in jobs] == [PREFIX + "m1", PREFIX + "m2"]
    assert jobs[1].recipients == ("a@othermail.example", "b@othermail.example")


def test_ses_event_routes_on_receipt_recipients_not_mail_destination() -> None:
    job = only(parse_event(ses_event(ses_message()), bucket=BUCKET, prefix=PREFIX))
    assert job.recipients == ("shop-7hq2@othermail.example",)


def test_ses_verdicts_and_dmarc_policy_are_read() -> None:
    message = ses_message(dmarcPolicy="quarantine")
    message["receipt"].update(
        spamVerdict={"status": "GRAY"},
        virusVerdict={"status": "FAIL"},
        spfVerdict={"status": "PROCESSING_FAILED"},
        dkimVerdict={"status": "FAIL"},
        dmarcVerdict={"status": "FAIL"},
    )
    job = only(parse_event(ses_event(message), bucket=BUCKET, prefix=PREFIX))
    assert job.verdicts == Verdicts(
        spam="GRAY", virus="FAIL", spf="PROCESSING_FAILED", dkim="FAIL", dmarc="FAIL", dmarc_policy="quarantine"
    )


def test_missing_verdicts_default_to_pass() -> None:
    message = ses_message()
    for name in ("spamVerdict", "virusVerdict", "spfVerdict", "dkimVerdict", "dmarcVerdict"):
        del message["receipt"][name]
    job = only(parse_event(ses_event(message), bucket=BUCKET, prefix=PREFIX))
    assert job.verdicts == Verdicts()


def test_unparseable_timestamp_gives_no_received_at() -> None:
    message = ses_message()
    message["mail"]["timestamp"] = "yesterday"
    assert only(parse_event(ses_event(message), bucket=BUCKET)).received_at is None


@pytest.mark.parametrize(
    "key, expected_key, expected_id",
    [
        ("inbound/abc123", "inbound/abc123", "abc123"),
        ("inbound/with+space", "inbound/with space", "with space"),
        ("inbound%2Fencoded-slash", "inbound/encoded-slash", "encoded-slash"),
        ("a%2Bplus%3Dsign", "a+plus=sign", "a+plus=sign"),
        ("deep/er/key%20x", "deep/er/key x", "key x"),
    ],
)
def test_s3_object_created_key_is_url_decoded(key: str, expected_key: str, expected_id: str) -> None:
    job = only(parse_event(s3_event(key), bucket=BUCKET, prefix=PREFIX))
    assert isinstance(job, Job)
    assert job.bucket == "raw-mail"  # the event's bucket, not the configured one
    assert job.key == expected_key
    assert job.message_id == expected_id
    # An S3 event says nothing of recipients or verdicts: they come from the stored message.
    assert job.recipients == () and job.recipients_from_headers
    assert job.verdicts == Verdicts()
    assert job.mail_from is None
    assert job.received_at == datetime(2026, 11, 23, 10, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize("name", ["ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy"])
def test_every_s3_object_created_variant_is_accepted(name: str) -> None:
    assert only(parse_event(s3_event("inbound/x", event_name=name))).key == "inbound/x"


@pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "ObjectRestore:Completed", "s3:TestEvent"])
def test_other_s3_events_are_invalid(name: str) -> None:
    with pytest.raises(InvalidEvent, match="ObjectCreated"):
        parse_event(s3_event("inbound/x", event_name=name))


@pytest.mark.parametrize(
    "record",
    [
        {"eventSource": "aws:s3", "s3": {"object": {"key": "k"}}},
        {"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}}},
        {"eventSource": "aws:s3"},
        {"eventSource": "aws:s3", "s3": None},
    ],
)
def test_s3_event_without_bucket_or_key_is_invalid(record: dict) -> None:
    with pytest.raises(InvalidEvent, match="bucket name and object key"):
        parse_event({"Records": [record]})


def test_sns_to_lambda_record_of_an_s3_action() -> None:
    action = {
        "type": "S3",
        "topicArn": "arn:t",
        "bucketName": "raw-mail",
        "objectKeyPrefix": "in/",
        "objectKey": "in/m9",
    }
    body = sns_body(received(ses_message("m9", action=action)))
    job = only(parse_event(sns_record_event(body), bucket=BUCKET, prefix=PREFIX))
    assert (job.bucket, job.key, job.message_id) == ("raw-mail", "in/m9", "m9")


def test_s3_action_notification_without_object_key_falls_back_to_configured_bucket_and_prefix() -> None:
    action = {"type": "S3", "bucketName": "raw-mail"}
    job = only(parse_event(sns_body(received(ses_message("m9", action=action))), bucket=BUCKET, prefix=PREFIX))
    assert (job.bucket, job.key) == (BUCKET, PREFIX + "m9")


def test_sqs_records_wrapping_sns_bodies() -> None:
    action = {"type": "S3", "bucketName": "raw-mail", "objectKey": "in/m1"}
    event = sqs_event(
        sns_body(received(ses_message("m1", action=action))),
        sns_body(received(ses_message("m2"), content="Subject: hi\r\n\r\nbody\r\n")),
        sns_body(
            {
                "notificationType": "Complaint",
                "mail": {"messageId": "x"},
                "complaint": {"feedbackId": "f", "complainedRecipients": [{"emailAddress": "Me@Real.example"}]},
            }
        ),
    )
    first, second, third = parse_event(event, bucket=BUCKET, prefix=PREFIX)
    assert (first.bucket, first.key) == ("raw-mail", "in/m1")
    assert second.content == b"Subject: hi\r\n\r\nbody\r\n" and second.message_id == "m2"
    assert isinstance(third, FeedbackJob) and [f.recipient for f in third.feedback] == ["me@real.example"]


def test_sqs_record_wrapping_an_s3_event() -> None:
    job = only(parse_event(sqs_event(s3_event("inbound/q%2Bz")), bucket=BUCKET))
    assert (job.bucket, job.key) == ("raw-mail", "inbound/q+z")


def test_sns_wrapping_an_s3_event() -> None:
    job = only(parse_event(sns_body(s3_event("inbound/m+1"))))
    assert (job.bucket, job.key, job.message_id) == ("raw-mail", "inbound/m 1", "m 1")


def test_sns_wrapping_an_s3_event_with_two_records_is_invalid() -> None:
    event = s3_event("a")
    event["Records"] *= 2
    with pytest.raises(InvalidEvent, match="one record"):
        parse_event(sns_body(event))


@pytest.mark.parametrize("encoding", ["BASE64", "Base64", "base64"])
def test_sns_content_in_base64_is_decoded_to_the_exact_bytes(encoding: str) -> None:
    raw = b"Subject: caf\xe9\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n\xe9t\xe9\r\n\x00\xff"
    body = sns_body(received(ses_message("b64"), content=base64.b64encode(raw).decode("ascii"), encoding=encoding))
    job = only(parse_event(body, bucket=BUCKET, prefix=PREFIX))
    assert job.content == raw
    assert job.bucket is None and job.key is None


@pytest.mark.parametrize("encoding", ["UTF8", "UTF-8", None])
def test_sns_content_in_utf8_is_encoded_back_to_utf8(encoding: str | None) -> None:
    text = "Subject: caf\u00e9\r\n\r\n\u00e9t\u00e9 \u2603\r\n"
    job = only(parse_event(sns_body(received(ses_message("u8"), content=text, encoding=encoding))))
    assert job.content == text.encode("utf-8")


def test_sns_content_with_invalid_base64_is_invalid() -> None:
    body = sns_body(received(ses_message("bad"), content="not base64 at all!!", encoding="BASE64"))
    with pytest.raises(InvalidEvent, match="base64"):
        parse_event(body)


def test_sns_content_keeps_the_message_id_check() -> None:
    body = sns_body(received(ses_message("a/b"), content="x", encoding="UTF8"))
    with pytest.raises(InvalidEvent, match="messageId"):
        parse_event(body)


def test_configuration_set_events_that_are_not_feedback_are_skipped_by_name() -> None:
    expected = {
        "Delivery": "ses-delivery",
        "Send": "ses-send",
        "Reject": "ses-reject",
        "DeliveryDelay": "ses-delivery-delay",
        "Open": "ses-open",
    }
    for kind, reason in expected.items():
        item = only(parse_event(sns_body({"eventType": kind, "mail": {"messageId": "x"}})))
        assert item == Skipped(reason, f"SES {kind} notification")


def test_configuration_set_bounce_and_complaint_become_feedback() -> None:
    mail = {"messageId": "ses-1", "timestamp": "2026-11-23T10:00:00.000Z"}
    bounce = {
        "feedbackId": "f1",
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "me@real.example"}],
    }
    complaint = {"feedbackId": "f2", "complainedRecipients": [{"emailAddress": "me@real.example"}]}
    first, second = parse_event(
        sqs_event(
            sns_body({"eventType": "Bounce", "mail": mail, "bounce": bounce}),
            sns_body({"eventType": "Complaint", "mail": mail, "complaint": complaint}),
        )
    )
    assert [(f.kind, f.feedback_id, f.message_id) for f in first.feedback] == [("bounce-permanent", "f1", "ses-1")]
    assert [(f.kind, f.feedback_id) for f in second.feedback] == [("complaint", "f2")]


@pytest.mark.parametrize(
    "message",
    [
        {"mail": {"messageId": "x"}},  # no type at all
        {"eventType": "Bounce", "mail": {"messageId": "x"}},  # no bounce section
        {"notificationType": "Complaint", "complaint": {"feedbackId": "f"}, "mail": {"messageId": "x"}},
    ],
)
def test_malformed_feedback_is_an_invalid_event(message: dict) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(sns_body(message))


def test_unsubscribe_confirmation_is_skipped() -> None:
    body = sns_body("You have chosen to deactivate subscription", kind="UnsubscribeConfirmation")
    item = only(parse_event(body))
    assert item.reason == "sns-unsubscribe-confirmation"
    assert "othermail-inbound" in item.detail


def test_subscription_confirmation_with_only_a_token_is_skipped() -> None:
    body = {"Type": "SubscriptionConfirmation", "Token": "abc", "TopicArn": "arn:aws:sns:us-east-1:1:t"}
    assert only(parse_event(body)).reason == "sns-subscription-confirmation"


# --------------------------------------------------------------------------- rejected shapes


@pytest.mark.parametrize("event", [None, "a string", 42, ["Records"], b"{}"])
def test_event_that_is_not_an_object_is_invalid(event: Any) -> None:
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_event(event, bucket=BUCKET)


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": None}, {"Records": {"a": 1}}, {"records": [{}]}])
def test_event_without_records_is_invalid(event: dict) -> None:
    with pytest.raises(InvalidEvent, match="no Records"):
        parse_event(event, bucket=BUCKET)


@pytest.mark.parametrize("record", ["aws:ses", None, 3])
def test_record_that_is_not_an_object_is_invalid(record: Any) -> None:
    with pytest.raises(InvalidEvent, match="record must be"):
        parse_event({"Records": [record]}, bucket=BUCKET)


@pytest.mark.parametrize("source", ["aws:kinesis", "aws:dynamodb", None, "AWS:SES"])
def test_unknown_event_source_is_invalid(source: Any) -> None:
    record = {"eventSource": source, "ses": ses_message()}
    with pytest.raises(InvalidEvent, match="unknown event source"):
        parse_event({"Records": [record]}, bucket=BUCKET)


def test_one_bad_record_invalidates_the_whole_event() -> None:
    event = ses_event(ses_message("good"))
    event["Records"].append({"eventSource": "aws:kinesis"})
    with pytest.raises(InvalidEvent):
        parse_event(event, bucket=BUCKET)


@pytest.mark.parametrize("message_id", ["inbound/../x", "a/b", "/", "", None, 17, ["m"]])
def test_unusable_message_id_is_invalid(message_id: Any) -> None:
    with pytest.raises(InvalidEvent, match="messageId"):
        parse_event(ses_event(ses_message(message_id)), bucket=BUCKET, prefix=PREFIX)


def test_message_id_with_a_slash_is_invalid_inside_sns_too() -> None:
    with pytest.raises(InvalidEvent, match="messageId"):
        parse_event(sns_body(received(ses_message("x/y"))), bucket=BUCKET)


@pytest.mark.parametrize("recipients", ["shop@othermail.example", {"a": "b"}, [1, 2], ["ok@x.example", None], 5])
def test_recipients_not_a_list_of_addresses_is_invalid(recipients: Any) -> None:
    with pytest.raises(InvalidEvent, match="recipients"):
        parse_event(ses_event(ses_message(recipients=recipients)), bucket=BUCKET)


@pytest.mark.parametrize(
    "ses",
    [
        {},
        {"mail": {"messageId": "m"}},
        {"receipt": {"recipients": ["a@b.example"]}},
        {"mail": "m", "receipt": {}},
        {"mail": {"messageId": "m"}, "receipt": ["a@b.example"]},
    ],
)
def test_ses_record_without_mail_and_receipt_objects_is_invalid(ses: dict) -> None:
    with pytest.raises(InvalidEvent, match="mail and receipt"):
        parse_event({"Records": [{"eventSource": "aws:ses", "ses": ses}]}, bucket=BUCKET)


@pytest.mark.parametrize("message", ["{not json", "", None])
def test_sns_notification_whose_message_is_not_json_is_invalid(message: Any) -> None:
    body = {"Type": "Notification", "Message": message}
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_event(body)


@pytest.mark.parametrize("message", ["[1, 2]", '"text"', "42", "null"])
def test_sns_notification_whose_message_is_not_an_object_is_invalid(message: str) -> None:
    with pytest.raises(InvalidEvent, match="not an object"):
        parse_event(sns_body(message))


def test_sns_record_without_message_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_event({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification"}}]})


@pytest.mark.parametrize("mail, receipt", [(None, {}), ({"messageId": "m"}, None), ("m", "r")])
def test_received_notification_without_mail_and_receipt_is_invalid(mail: Any, receipt: Any) -> None:
    with pytest.raises(InvalidEvent, match="without mail and receipt"):
        parse_event(sns_body({"notificationType": "Received", "mail": mail, "receipt": receipt}), bucket=BUCKET)


@pytest.mark.parametrize("body", ["{not json", None, 5])
def test_sqs_record_whose_body_is_not_json_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_event({"Records": [{"eventSource": "aws:sqs", "body": body}]})


def test_sqs_record_without_body_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_event({"Records": [{"eventSource": "aws:sqs"}]})


@pytest.mark.parametrize("body", ["[1]", '"x"', "{}", '{"Records": []}'])
def test_sqs_body_that_is_not_an_accepted_event_is_invalid(body: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_event({"Records": [{"eventSource": "aws:sqs", "body": body}]})


def test_the_s3_test_event_of_a_new_bucket_notification_is_skipped_by_name() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-30T00:00:00.000Z",
        "Bucket": "mail-bucket",
        "RequestId": "R",
        "HostId": "H",
    }
    sns = {
        "Type": "Notification",
        "MessageId": "1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "Message": json.dumps(test_event),
    }
    (item,) = parse_event({"Records": [{"eventSource": "aws:sqs", "body": json.dumps(sns)}]}, bucket="", prefix="")
    assert item == Skipped("s3-test-event", "bucket mail-bucket")
