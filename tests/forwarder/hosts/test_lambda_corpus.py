"""Every message and SES event of the shared corpus through the whole Lambda path.

Each message is stored in S3 (moto) and announced with an SES receipt event; the handler reads it,
resolves the alias in SQL, decides, rewrites and sends. It must end forwarded, with the body bytes
identical and the pre-flight validator passing, or dropped with a named reason; nothing may raise.

moto's SES crashes on raw messages that are not UTF-8 (real SES accepts them), so every message
goes through an in-memory sender, and those moto can take also go through moto's SESv2.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter
from pathlib import Path

from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, validate_bytes
from forwarder.core.message import split_message
from forwarder.flows.mail_limits import MailLimits
from tests.forwarder.hosts.lambda_env import BUCKET, PREFIX, Env, ses_event

ALIAS = "shop-7hq2@othermail.example"


def corpus_messages(corpus: Path) -> list[Path]:
    files = sorted(corpus.rglob("*.eml"))
    assert len(files) > 300, f"the corpus at {corpus} looks incomplete"
    return files


def _decoded_parts(raw: bytes) -> list[bytes]:
    """Each leaf part's decoded content: what a repair must leave unchanged."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [bytes(part.get_payload(decode=True) or b"") for part in message.walk() if not part.is_multipart()]


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_every_corpus_message_is_forwarded_intact_or_dropped_with_a_reason(env: Env, corpus: Path) -> None:
    env.alias(ALIAS, "owner@real.example", "second@real.example")
    memory = MemorySender()
    runtime = env.runtime(sender=memory, mail_limits=MailLimits())  # hundreds of messages to one alias
    outcomes: Counter[str] = Counter()
    for index, path in enumerate(corpus_messages(corpus)):
        raw = path.read_bytes()
        message_id = f"corpus{index:04d}"
        env.put(PREFIX + message_id, raw)
        before = len(memory.sent)
        summary = runtime.handle(ses_event(message_id, ALIAS))
        sent = memory.sent[before:]
        assert sum(summary["outcomes"].values()) >= 1, path
        outcomes.update(summary["outcomes"])
        if not sent:
            (outcome,) = summary["outcomes"]
            assert Outcome(outcome).blocked, f"{path}: {summary}"
            continue
        assert [m.recipient for m in sent] == ["owner@real.example", "second@real.example"], path
        body = bytes(split_message(raw).body)
        for message in sent:
            assert validate_bytes(message.raw) == [], path
            assert message.sender == ALIAS
            if not message.raw.endswith(body):
                assert "body-line-too-long" in summary["repairs"], f"{path}: body changed without a repair"
                assert _decoded_parts(message.raw) == _decoded_parts(raw), path
    assert outcomes["forwarded"] >= 700, outcomes
    assert set(outcomes) <= {o.value for o in Outcome}, outcomes


def test_utf8_corpus_messages_go_through_moto_ses(env: Env, corpus: Path) -> None:
    env.alias(ALIAS, "owner@real.example")
    runtime = env.runtime(mail_limits=MailLimits())
    bodies: list[bytes] = []
    for index, path in enumerate(corpus_messages(corpus)):
        raw = path.read_bytes()
        if not _utf8(raw):
            continue
        message_id = f"moto{index:04d}"
        env.put(PREFIX + message_id, raw)
        summary = runtime.handle(ses_event(message_id, ALIAS))
        if summary["outcomes"].get("forwarded") and not summary["repairs"].get("body-line-too-long"):
            bodies.append(bytes(split_message(raw).body))
        elif summary["outcomes"].get("forwarded"):
            bodies.append(b"")
    sent = env.sent()
    assert len(sent) == len(bodies) > 250
    for message, body in zip(sent, bodies):
        data = message.raw_data.encode("utf-8")
        assert validate_bytes(data) == []
        assert "owner@real.example" in message.destinations
        assert data.endswith(body)


def _event_files(corpus: Path) -> list[Path]:
    files = sorted((corpus / "ses-events").rglob("*.json"))
    assert len(files) >= 14
    return files


def _recipients(event: dict) -> list[str]:
    found: list[str] = []
    records = event.get("Records") or []
    for record in records:
        found += ((record.get("ses") or {}).get("receipt") or {}).get("recipients") or []
    found += (_notification(event).get("receipt") or {}).get("recipients") or []
    return found


def _notification(event: dict) -> dict:
    if event.get("Type") != "Notification":
        return {}
    return json.loads(event["Message"])


def test_every_corpus_ses_event_is_handled_without_an_exception(env: Env, corpus: Path) -> None:
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    sample = (corpus / "arithmetric-aws-lambda-ses-forwarder" / "message.eml").read_bytes()
    seen: Counter[str] = Counter()
    created: set[str] = set()
    for path in _event_files(corpus):
        event = json.loads(path.read_bytes())
        for recipient in _recipients(event):
            if recipient.lower() not in created:
                env.alias(recipient, "owner@real.example")
                created.add(recipient.lower())
        action = (_notification(event).get("receipt") or {}).get("action") or {}
        handling = runtime
        if action.get("type") == "S3":
            s3 = env.session.client("s3")
            if action["bucketName"] != BUCKET:
                s3.create_bucket(Bucket=action["bucketName"])
                # the Lambda reads only its configured bucket (issue 12.26): configure the sample's
                handling = env.runtime(sender=memory, s3_bucket=action["bucketName"], s3_prefix="")
            env.put(action["objectKey"], sample, bucket=action["bucketName"])
        for record in event.get("Records") or []:
            message_id = ((record.get("ses") or {}).get("mail") or {}).get("messageId")
            if message_id:
                env.put(PREFIX + message_id, sample)
        summary = handling.handle(event)
        if handling is not runtime:
            handling.close()
        assert summary["outcomes"], path
        seen.update(summary["outcomes"])
    assert seen["forwarded"] >= 6, seen
    assert seen["dropped-dmarc"] == 1, seen
    assert seen["dropped-spam"] == 1, seen
    # the three bounce samples share one feedbackId and recipient: applied once, then duplicates
    assert (seen["feedback:bounce-permanent"], seen["feedback:duplicate"]) == (1, 2), seen
    assert seen["skipped:sns-subscription-confirmation"] == 1, seen
    assert seen["skipped:invalid-event"] == 1, seen  # HumbleForwarder's sample has no mail section
