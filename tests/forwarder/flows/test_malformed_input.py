"""Malformed input at the adapters' edges gets a named error, never a stray exception."""

from __future__ import annotations

import json
import mailbox
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from forwarder.accounts import AccountError, parse_duration
from forwarder.adapters.aws.events import parse_event
from forwarder.adapters.senders import MaildirSender
from forwarder.cli.main import cli
from forwarder.errors import InvalidEvent, OthermailError, PermanentSendError, SendRetryable

RAW = b"From: a@othermail.example\r\nTo: b@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


def _ses_record(ses: Any) -> dict:
    return {"Records": [{"eventSource": "aws:ses", "ses": ses}]}


# The module contract (forwarder/adapters/aws/events.py): "Anything else raises InvalidEvent", which the Lambda
# handler logs as ``invalid-event``; a stray AttributeError would make Lambda retry an event that can
# never succeed.
MALFORMED = {
    "ses-not-an-object": _ses_record("not an object"),
    "receipt-action-not-an-object": _ses_record(
        {"mail": {"messageId": "m1"}, "receipt": {"recipients": ["a@othermail.example"], "action": "Lambda"}}
    ),
    "sns-not-an-object": {"Records": [{"EventSource": "aws:sns", "Sns": "not an object"}]},
    "s3-key-not-a-string": {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": 12345}},
            }
        ]
    },
}


@pytest.mark.parametrize("event", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_event_parts_raise_invalid_event(event: dict) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(event, bucket="othermail-inbound", prefix="inbound/")


@pytest.mark.parametrize("content", [None, 42, {"raw": "x"}])
def test_sns_action_content_that_is_not_a_string_is_invalid(content: Any) -> None:
    # Today ``content: null`` becomes the 4-byte message b"None" and is forwarded as mail.
    message = {
        "notificationType": "Received",
        "mail": {"messageId": "m1", "source": "s@example.net"},
        "receipt": {"recipients": ["a@othermail.example"], "action": {"type": "SNS", "encoding": "UTF8"}},
        "content": content,
    }
    with pytest.raises(InvalidEvent):
        parse_event({"Type": "Notification", "Message": json.dumps(message)})


def test_parse_duration_refuses_an_absurd_duration_with_account_error() -> None:
    # Today: OverflowError ("Python int too large to convert to C int") from timedelta.
    with pytest.raises(AccountError):
        parse_duration("99999999999w")


@pytest.mark.parametrize("expires_in", ["99999999999w", "5000000d"])
def test_alias_create_with_an_absurd_expiry_is_a_clean_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expires_in: str
) -> None:
    # Today: an uncaught OverflowError traceback (from parse_duration for the first value, from
    # ``now + expires_in`` in create_alias for the second: a date past year 9999).
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    runner = CliRunner()
    env = {"OTHERMAIL_DATA_DIR": str(tmp_path / "var")}
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(
        cli,
        ["alias", "create", "--owner", "o@example.org", "--destination", "d@example.org", "--expires-in", expires_in],
        env=env,
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)


def test_maildir_sender_on_an_unusable_path_raises_an_othermail_error(tmp_path: Path) -> None:
    # Today the constructor raises a bare FileExistsError when the outbox path lies under a regular
    # file; the CLI shows a traceback instead of a message naming the outbox.
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OthermailError):
        MaildirSender(tmp_path / "file" / "outbox")


def test_maildir_sender_non_ascii_recipient_is_delivered_or_a_send_error(tmp_path: Path) -> None:
    # Destinations are stored as given (normalize_email accepts UTF-8 local parts). Today the Maildir
    # sender raises UnicodeEncodeError, which the pipeline treats as retryable: the claim is
    # released and the event retried forever. Expected: deliver (UTF-8 Delivered-To, RFC 6532) or
    # raise one of the sender errors.
    sender = MaildirSender(tmp_path / "outbox")
    try:
        key = sender.send(RAW, sender="a@othermail.example", recipient="j\u00f6rg@example.org")
    except (PermanentSendError, SendRetryable):
        return
    data = mailbox.Maildir(str(tmp_path / "outbox"), create=False).get_bytes(key)
    assert data.endswith(RAW)
