"""What is particular to SES and to the Maildir outbox: SES error classification and request shapes
with botocore's Stubber, the Maildir's Delivered-To line and line endings. What every sender shares
(exact bytes, ids, threads, SendRetryable / PermanentSendError) is the contract suite in
tests/forwarder/adapters/test_sender_interface.py."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from forwarder.adapters.aws.ses import SesV1Sender, SesV2Sender
from forwarder.adapters.senders import MaildirSender
from forwarder.errors import PermanentSendError, RetryableError, SendRetryable

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
