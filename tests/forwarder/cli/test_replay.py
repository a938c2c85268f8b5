"""``othermail replay``: the dead-letter queue and stored messages, re-driven idempotently.

On ``mock_aws``: an SQS dead-letter queue holding the invocation records Lambda's on-failure
destination writes, the S3 bucket SES writes to, SES v2 sending; SQLite for the database.
"""

from __future__ import annotations

import json
import mailbox
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.stores import LocalStore
from forwarder.cli.main import cli
from forwarder.errors import SendRetryable
from models import Delivery, make_engine, make_session_factory
from tests.forwarder.hosts.lambda_env import BUCKET, DOMAINS, PREFIX, REGION, Env, aws, env, ses_event  # noqa: F401

ALIAS = "shop-7hq2@othermail.example"
OTHER = "news-4kd9@othermail.example"


def message(n: int, to: str = ALIAS) -> bytes:
    return (
        f"From: Jane Doe <jane@example.net>\r\nTo: {to}\r\nSubject: order {n}\r\n"
        f"Message-ID: <o{n}@example.net>\r\nMIME-Version: 1.0\r\n\r\nbody {n}\r\n"
    ).encode()


def invocation_record(event: dict, request_id: str = "7d4f3c11-5f5e-4c57-9b1e-2a9f0b6f4e21") -> str:
    """The body Lambda's on-failure destination puts in the queue after the last retry."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-11-23T10:03:12.345Z",
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:othermail-forwarder:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {
                "errorMessage": "SES TooManyRequestsException: Maximum sending rate exceeded.",
                "errorType": "SendRetryable",
                "requestId": request_id,
                "stackTrace": ['  File "/var/task/forwarder/hosts/lambda_handler.py", line 1, in handler\n'],
            },
        }
    )


class Throttled:
    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        raise SendRetryable("SES TooManyRequestsException: Maximum sending rate exceeded.")


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    return {
        "OTHERMAIL_DATABASE_URL": env.database_url,
        "OTHERMAIL_S3_BUCKET": BUCKET,
        "OTHERMAIL_S3_PREFIX": PREFIX,
        "OTHERMAIL_DOMAINS": ",".join(DOMAINS),
        "OTHERMAIL_AWS_REGION": REGION,
    }


@pytest.fixture
def dlq(env: Env) -> Iterator[tuple[Any, str]]:
    sqs = env.session.client("sqs")
    yield sqs, sqs.create_queue(QueueName="othermail-forwarder-dlq")["QueueUrl"]


def replay(cli_env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["replay", *args], env=cli_env, input=input, catch_exceptions=False)


def waiting(sqs: Any, url: str) -> int:
    """Messages in the queue, visible or not."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


def visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def sent_to(env: Env) -> list[str]:
    return sorted(d for m in env.sent() for d in m.destinations if d.endswith("@real.example"))


def rows(env: Env) -> list[Delivery]:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(Delivery).order_by(Delivery.id)))
    finally:
        engine.dispose()


def summary(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


# -- the dead-letter queue ---------------------------------------------------------------------------


def test_dlq_records_are_replayed_deleted_and_a_second_run_sends_nothing(
    env: Env, cli_env: dict[str, str], dlq: tuple[Any, str]
) -> None:
    sqs, url = dlq
    env.alias(ALIAS, "a@real.example")
    env.alias(OTHER, "b@real.example", "c@real.example")
    env.put(PREFIX + "m1", message(1))
    env.put(PREFIX + "m2", message(2, OTHER))
    # m1 failed in the Lambda after it was claimed: its row says retry
    runtime = env.runtime(sender=Throttled())
    with pytest.raises(SendRetryable):
        runtime.handle(ses_event("m1", ALIAS))
    runtime.close()
    for event in (ses_event("m1", ALIAS), ses_event("m2", OTHER), ses_event("m1", ALIAS)):  # m1 twice
        sqs.send_message(QueueUrl=url, MessageBody=invocation_record(event))

    result = replay(cli_env, "--dlq", url, "--wait-seconds", "0")
    assert result.exit_code == 0, result.output
    assert summary(result) == "replay: replayed=3 handled=3 left=0 duplicate=1 forwarded=3"
    assert sent_to(env) == ["a@real.example", "b@real.example", "c@real.example"]
    assert waiting(sqs, url) == 0
    assert [r.outcome for r in rows(env)] == ["forwarded"] * 3

    # the same records again (a replay that died before deleting): nothing is sent twice
    for event in (ses_event("m1", ALIAS), ses_event("m2", OTHER)):
        sqs.send_message(QueueUrl=url, MessageBody=invocation_record(event))
    again = replay(cli_env, "--dlq", url, "--wait-seconds", "0")
    assert summary(again) == "replay: replayed=2 handled=2 left=0 duplicate=3"
    assert len(sent_to(env)) == 3
    assert waiting(sqs, url) == 0


def test_a_record_that_still_fails_or_holds_no_event_is_left_visible_and_named(
    env: Env, cli_env: dict[str, str], dlq: tuple[Any, str]
) -> None:
    sqs, url = dlq
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", message(1))
    sqs.send_message(QueueUrl=url, MessageBody=invocation_record(ses_event("gone", ALIAS)))  # no object in S3
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    sqs.send_message(QueueUrl=url, MessageBody=invocation_record(ses_event("m1", ALIAS)))

    result = replay(cli_env, "--dlq", url, "--wait-seconds", "0")
    assert result.exit_code == 1
    assert summary(result) == "replay: replayed=3 handled=1 left=2 forwarded=1"
    left = [line for line in result.stderr.splitlines() if line.startswith("left ")]
    assert len(left) == 2
    assert any("MessageNotFound" in line and "inbound/gone" in line and "SendRetryable" in line for line in left)
    assert any("not JSON" in line for line in left)
    assert sent_to(env) == ["a@real.example"]
    assert visible(sqs, url) == 2  # made visible again at once, for the next run


def test_max_limits_the_records_replayed(env: Env, cli_env: dict[str, str], dlq: tuple[Any, str]) -> None:
    sqs, url = dlq
    env.alias(ALIAS, "a@real.example")
    for n in range(3):
        env.put(PREFIX + f"m{n}", message(n))
        sqs.send_message(QueueUrl=url, MessageBody=invocation_record(ses_event(f"m{n}", ALIAS)))
    result = replay(cli_env, "--dlq", url, "--max", "2", "--wait-seconds", "0")
    assert summary(result) == "replay: replayed=2 handled=2 left=0 forwarded=2"
    assert waiting(sqs, url) == 1


def test_the_queue_workers_dead_letters_bare_events_replay_too(
    env: Env, cli_env: dict[str, str], dlq: tuple[Any, str]
) -> None:
    sqs, url = dlq
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", message(1))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(ses_event("m1", ALIAS)))
    result = replay(cli_env, "--dlq", url, "--wait-seconds", "0")
    assert summary(result) == "replay: replayed=1 handled=1 left=0 forwarded=1"


# -- message ids ---------------------------------------------------------------------------------------


def test_a_message_id_is_sent_to_its_recorded_recipients_once_however_often_replayed(
    env: Env, cli_env: dict[str, str]
) -> None:
    env.alias(ALIAS, "a@real.example", "b@real.example")
    # To: names another address: the recipients come from the delivery rows, not the headers
    env.put(PREFIX + "m1", message(1, to="someone@example.net"))
    runtime = env.runtime(sender=Throttled())
    with pytest.raises(SendRetryable):
        runtime.handle(ses_event("m1", ALIAS))
    runtime.close()

    first = replay(cli_env, "--message-id", "m1")
    assert first.exit_code == 0, first.output
    assert summary(first) == "replay: replayed=1 handled=1 left=0 forwarded=2"
    assert sent_to(env) == ["a@real.example", "b@real.example"]
    second = replay(cli_env, "--message-id", "m1")
    assert summary(second) == "replay: replayed=1 handled=1 left=0 duplicate=2"
    assert len(sent_to(env)) == 2


def test_ids_without_rows_use_the_headers_and_come_from_arguments_and_stdin(env: Env, cli_env: dict[str, str]) -> None:
    env.alias(ALIAS, "a@real.example")
    env.alias(OTHER, "b@real.example")
    for n, to in ((1, ALIAS), (2, OTHER), (3, ALIAS)):
        env.put(PREFIX + f"m{n}", message(n, to))
    result = replay(cli_env, "--message-id", "m1", "m2", "--ids-from", "-", input="# from a file\nm3\n\nm1\n")
    assert result.exit_code == 0, result.output
    assert summary(result) == "replay: replayed=3 handled=3 left=0 forwarded=3"
    assert sent_to(env) == ["a@real.example", "a@real.example", "b@real.example"]
    assert {r.inbound_message_id for r in rows(env)} == {"m1", "m2", "m3"}


def test_an_unknown_id_or_one_for_nobody_here_exits_1_naming_why(env: Env, cli_env: dict[str, str]) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", message(1))
    env.put(PREFIX + "stray", message(2, to="someone@example.net"))
    result = replay(cli_env, "--message-id", "m1", "absent", "stray")
    assert result.exit_code == 1
    assert summary(result) == "replay: replayed=3 handled=1 left=2 forwarded=1"
    assert "left absent: MessageNotFound: no raw message at s3://othermail-inbound/inbound/absent" in result.stderr
    assert "left stray: no recipient" in result.stderr


def test_the_one_box_local_store_is_replayed_by_its_spool_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    data = tmp_path / "var"
    local = {"OTHERMAIL_DATA_DIR": str(data), "OTHERMAIL_DOMAINS": "othermail.example"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=local).exit_code == 0
    made = runner.invoke(
        cli, ["alias", "create", "--owner", "o@owner.example", "--destination", "a@real.example"], env=local
    )
    address = made.stdout.strip()
    envelope = Spool(data / "spool", LocalStore(data / "mail")).accept(
        message(1, address), "jane@example.net", (address,)
    )
    message_id = f"smtp-{envelope.spool_id}"
    result = runner.invoke(cli, ["replay", "--message-id", message_id], env=local)
    assert result.exit_code == 0, result.output
    assert summary(result) == "replay: replayed=1 handled=1 left=0 forwarded=1"
    again = runner.invoke(cli, ["replay", "--message-id", message_id], env=local)
    assert summary(again) == "replay: replayed=1 handled=1 left=0 duplicate=1"
    assert len(mailbox.Maildir(str(data / "outbox"), create=False)) == 1


@pytest.mark.parametrize(
    "args", [[], ["--dlq", "https://q", "--message-id", "m1"], ["--message-id", "m1", "--max", "2"]]
)
def test_replay_needs_one_source(cli_env: dict[str, str], args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["replay", *args], env=cli_env)
    assert result.exit_code == 2
    assert "--dlq" in result.output
