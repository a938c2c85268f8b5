"""Outbound senders: SES v2 / v1 on moto, error classification with botocore's Stubber, the Maildir
outbox, and one interface test every sender must pass."""

from __future__ import annotations

import mailbox
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws
from moto.ses.models import ses_backends

from forwarder.adapters.senders import MaildirSender, MemorySender, SesV1Sender, SesV2Sender
from forwarder.errors import PermanentSendError, RetryableError, SendRetryable

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
DOMAIN = "othermail.example"
ALIAS = f"shop-7hq2@{DOMAIN}"
DESTINATION = "owner@real.example"

RAW = (
    b'From: "Shop (shop at store.example)" <shop-7hq2@othermail.example>\r\n'
    b"To: shop-7hq2@othermail.example\r\n"
    b"Subject: Your order shipped\r\n"
    b"Reply-To: Shop <shop@store.example>\r\n"
    b"\r\n"
    b"Tracking number 12345.\r\n"
)


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def ses(fake_credentials: None) -> Iterator[boto3.session.Session]:
    """moto's SES with the alias domain verified; clients are created inside the mock."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("ses").verify_domain_identity(Domain=DOMAIN)
        yield session


def sent_messages() -> list[Any]:
    return list(ses_backends[ACCOUNT][REGION].sent_messages)


# --------------------------------------------------------------------------- SES on moto


def test_sesv2_sends_raw_message_from_verified_domain(ses: boto3.session.Session) -> None:
    sender = SesV2Sender(ses.client("sesv2"))
    message_id = sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert isinstance(message_id, str) and message_id
    sent = sent_messages()
    assert len(sent) == 1
    assert sent[0].raw_data == RAW.decode("utf-8")  # CRLF kept
    assert DESTINATION in sent[0].destinations
    assert sent[0].source == ALIAS


def test_sesv1_sends_raw_message_from_verified_domain(ses: boto3.session.Session) -> None:
    sender = SesV1Sender(ses.client("ses"))
    message_id = sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert isinstance(message_id, str) and message_id
    sent = sent_messages()
    assert len(sent) == 1
    assert sent[0].raw_data == RAW.decode("utf-8")
    assert DESTINATION in sent[0].destinations
    assert sent[0].source == ALIAS


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_unverified_sender_is_a_permanent_error(ses: boto3.session.Session, api: str) -> None:
    sender = SesV1Sender(ses.client("ses")) if api == "v1" else SesV2Sender(ses.client("sesv2"))
    raw = RAW.replace(DOMAIN.encode(), b"unverified.example")
    with pytest.raises(PermanentSendError, match="MessageRejected") as info:
        sender.send(raw, sender="shop-7hq2@unverified.example", recipient=DESTINATION)
    assert not isinstance(info.value, RetryableError)
    assert sent_messages() == []


# --------------------------------------------------------------------------- error classification


@pytest.fixture(scope="module")
def real_clients() -> dict[str, Any]:
    """Real botocore clients (built once: that is the slow part), never allowed on the network:
    every call goes through a Stubber. Explicit fake credentials, so no environment is read."""
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
    return {"v2": boto3.client("sesv2", **creds), "v1": boto3.client("ses", **creds)}


@pytest.fixture
def stubbed(real_clients: dict[str, Any]) -> Callable[..., tuple[Any, Stubber, str]]:
    """A real client with a Stubber, the matching sender, and the operation name."""

    def make(api: str, configuration_set: str = "") -> tuple[Any, Stubber, str]:
        client = real_clients[api]
        if api == "v2":
            return SesV2Sender(client, configuration_set), Stubber(client), "send_email"
        return SesV1Sender(client, configuration_set), Stubber(client), "send_raw_email"

    return make


RETRYABLE = [
    ("Throttling", 400),
    ("ThrottlingException", 400),
    ("ServiceUnavailable", 503),
    ("TooManyRequestsException", 429),
    ("LimitExceededException", 400),
    ("InternalFailure", 500),
    ("SendingPausedException", 400),
    ("SomethingNew", 502),  # an unknown code with a 5xx status is still SES's side
    ("SomethingNew", 429),
    ("AccessDenied", 403),  # a role without ses:SendEmail: fixed by the operator, then retried
    ("AccessDeniedException", 403),
    ("ExpiredTokenException", 403),
]
PERMANENT = [
    ("MessageRejected", 400),
    ("MailFromDomainNotVerifiedException", 400),
    ("BadRequestException", 400),
    ("InvalidParameterValue", 400),
]


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("code, status", RETRYABLE)
def test_throttling_and_server_errors_are_retryable(stubbed: Callable, api: str, code: str, status: int) -> None:
    sender, stubber, operation = stubbed(api)
    stubber.add_client_error(operation, service_error_code=code, service_message="slow down", http_status_code=status)
    with stubber, pytest.raises(SendRetryable) as info:
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert not isinstance(info.value, PermanentSendError)
    assert code in str(info.value)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("code, status", PERMANENT)
def test_rejections_are_permanent(stubbed: Callable, api: str, code: str, status: int) -> None:
    sender, stubber, operation = stubbed(api)
    stubber.add_client_error(operation, service_error_code=code, service_message="no", http_status_code=status)
    with stubber, pytest.raises(PermanentSendError) as info:
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert not isinstance(info.value, RetryableError)
    assert f"SES {code}: no" in str(info.value)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_unreachable_endpoint_is_retryable(api: str) -> None:
    class Unreachable:
        def send_email(self, **kwargs: Any) -> dict:
            raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")

        send_raw_email = send_email

    sender = SesV1Sender(Unreachable()) if api == "v1" else SesV2Sender(Unreachable())
    with pytest.raises(SendRetryable, match="unreachable"):
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)


def test_sesv2_request_shape_with_configuration_set(stubbed: Callable) -> None:
    sender, stubber, operation = stubbed("v2", configuration_set="othermail-events")
    stubber.add_response(
        operation,
        {"MessageId": "0100-v2-id"},
        {
            "FromEmailAddress": ALIAS,
            "Destination": {"ToAddresses": [DESTINATION]},
            "Content": {"Raw": {"Data": RAW}},
            "ConfigurationSetName": "othermail-events",
        },
    )
    with stubber:
        assert sender.send(RAW, sender=ALIAS, recipient=DESTINATION) == "0100-v2-id"
    stubber.assert_no_pending_responses()


def test_sesv1_request_shape_with_configuration_set(stubbed: Callable) -> None:
    sender, stubber, operation = stubbed("v1", configuration_set="othermail-events")
    stubber.add_response(
        operation,
        {"MessageId": "0100-v1-id"},
        {
            "Source": ALIAS,
            "Destinations": [DESTINATION],
            "RawMessage": {"Data": RAW},
            "ConfigurationSetName": "othermail-events",
        },
    )
    with stubber:
        assert sender.send(RAW, sender=ALIAS, recipient=DESTINATION) == "0100-v1-id"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_no_configuration_set_parameter_when_none_is_configured(stubbed: Callable, api: str) -> None:
    sender, stubber, operation = stubbed(api)
    if api == "v2":
        expected = {
            "FromEmailAddress": ALIAS,
            "Destination": {"ToAddresses": [DESTINATION]},
            "Content": {"Raw": {"Data": RAW}},
        }
    else:
        expected = {"Source": ALIAS, "Destinations": [DESTINATION], "RawMessage": {"Data": RAW}}
    # Stubber compares the parameters exactly: an extra ConfigurationSetName would fail here.
    stubber.add_response(operation, {"MessageId": "m"}, expected)
    with stubber:
        assert sender.send(RAW, sender=ALIAS, recipient=DESTINATION) == "m"


# --------------------------------------------------------------------------- Maildir outbox


def test_maildir_writes_one_readable_message_with_delivered_to_first(tmp_path: Path) -> None:
    outbox = tmp_path / "var" / "outbox"
    sender = MaildirSender(outbox)
    key = sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert key
    box = mailbox.Maildir(str(outbox), create=False)
    assert list(box.keys()) == [key]
    data = box.get_bytes(key)
    assert data == b"Delivered-To: " + DESTINATION.encode() + b"\r\n" + RAW
    first_line, rest = data.split(b"\r\n", 1)
    assert first_line == b"Delivered-To: owner@real.example"
    assert rest == RAW
    message = box[key]
    assert message["Delivered-To"] == DESTINATION
    assert message["Subject"] == "Your order shipped"
    assert len(list((outbox / "new").iterdir())) == 1


def test_maildir_uses_lf_for_an_lf_message(tmp_path: Path) -> None:
    raw = RAW.replace(b"\r\n", b"\n")
    sender = MaildirSender(tmp_path / "outbox")
    key = sender.send(raw, sender=ALIAS, recipient=DESTINATION)
    data = mailbox.Maildir(str(tmp_path / "outbox"), create=False).get_bytes(key)
    assert data == b"Delivered-To: owner@real.example\n" + raw


def test_maildir_keeps_8bit_bytes_intact(tmp_path: Path) -> None:
    raw = b"Subject: caf\xe9\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n\xe9t\xe9 \xff\x00\r\n"
    sender = MaildirSender(tmp_path / "outbox")
    key = sender.send(raw, sender=ALIAS, recipient=DESTINATION)
    data = mailbox.Maildir(str(tmp_path / "outbox"), create=False).get_bytes(key)
    assert data.split(b"\r\n", 1)[1] == raw


def test_maildir_two_sends_are_two_messages(tmp_path: Path) -> None:
    sender = MaildirSender(tmp_path / "outbox")
    first = sender.send(RAW, sender=ALIAS, recipient="a@real.example")
    second = sender.send(RAW, sender=ALIAS, recipient="b@real.example")
    assert first != second
    box = mailbox.Maildir(str(tmp_path / "outbox"), create=False)
    assert sorted(m["Delivered-To"] for m in box) == ["a@real.example", "b@real.example"]


def test_maildir_unwritable_outbox_is_retryable(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    sender = MaildirSender(outbox)
    # The outbox disappears and a plain file takes its place (a full or broken disk looks the same
    # to the sender: the write fails with an OSError). Runs as root too, unlike a chmod.
    shutil.rmtree(outbox)
    outbox.write_bytes(b"not a folder")
    with pytest.raises(SendRetryable, match="outbox"):
        sender.send(RAW, sender=ALIAS, recipient=DESTINATION)


# --------------------------------------------------------------------------- one interface


@dataclass
class Harness:
    sender: Any
    received: Callable[[str], list[bytes]]  # what the recipient got, as bytes of the message


@pytest.fixture(params=["memory", "maildir", "sesv2-moto"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        memory = MemorySender()
        yield Harness(memory, lambda rcpt: [m.raw for m in memory.sent if m.recipient == rcpt])
    elif request.param == "maildir":
        maildir = MaildirSender(tmp_path / "outbox")

        def from_maildir(rcpt: str) -> list[bytes]:
            box = mailbox.Maildir(str(tmp_path / "outbox"), create=False)
            out = []
            for key in box.keys():
                head, rest = box.get_bytes(key).split(b"\r\n", 1)
                if head == b"Delivered-To: " + rcpt.encode():
                    out.append(rest)
            return out

        yield Harness(maildir, from_maildir)
    else:
        request.getfixturevalue("fake_credentials")
        with mock_aws():
            session = boto3.session.Session(region_name=REGION)
            session.client("ses").verify_domain_identity(Domain=DOMAIN)
            yield Harness(
                SesV2Sender(session.client("sesv2")),
                lambda rcpt: [m.raw_data.encode("utf-8") for m in sent_messages() if rcpt in m.destinations],
            )


def test_every_sender_delivers_the_exact_bytes_to_the_recipient(harness: Harness) -> None:
    assert harness.received(DESTINATION) == []
    message_id = harness.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert isinstance(message_id, str) and message_id.strip()
    assert harness.received(DESTINATION) == [RAW]
    assert harness.received("nobody@real.example") == []


def test_every_sender_gives_distinct_ids(harness: Harness) -> None:
    first = harness.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    second = harness.sender.send(RAW, sender=ALIAS, recipient=DESTINATION)
    assert first and second and first != second
    assert harness.received(DESTINATION) == [RAW, RAW]
