"""Secrets from SSM Parameter Store and Secrets Manager (moto), laid over the environment at the edge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from forwarder.adapters.aws.secrets import environ_with_secrets, fetch_secrets
from forwarder.errors import SettingsError
from forwarder.hosts import lambda_handler
from forwarder.settings import Settings

REGION = "us-east-1"
PATH = "/othermail/production"
DB_URL = "mysql+pymysql://othermail:s3cr%40t@db.internal:3306/othermail"
SNS_CONFIRMATION = {
    "Records": [
        {
            "EventSource": "aws:sns",
            "Sns": {
                "Type": "SubscriptionConfirmation",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:othermail-inbound",
                "Message": "You have chosen to subscribe",
                "SubscribeURL": "https://sns.example/confirm",
            },
        }
    ]
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "OTHERMAIL_SSM_PATH", "OTHERMAIL_SECRETS_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def put_parameters(session: boto3.session.Session, values: dict[str, str], path: str = PATH) -> None:
    ssm = session.client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=f"{path}/{name}", Value=value, Type="SecureString")


def put_secret(
    session: boto3.session.Session, value: Any, name: str = "othermail/production", region: str = REGION
) -> str:
    client = session.client("secretsmanager", region_name=region)
    text = value if isinstance(value, str) else json.dumps(value)
    return client.create_secret(Name=name, SecretString=text)["ARN"]


class NoAws:
    """A session that must not be used."""

    def client(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may be fetched when neither source is set")


def test_nothing_is_fetched_when_neither_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boto3.session, "Session", NoAws)
    env = {"OTHERMAIL_DATABASE_URL": "sqlite:///x.db", "OTHERMAIL_SSM_PATH": "", "OTHERMAIL_SECRETS_ARN": " "}
    assert fetch_secrets(env) == {}
    assert environ_with_secrets(env) == env
    assert environ_with_secrets(env) is not env  # a copy: the caller's mapping is left alone


def test_ssm_path_values_are_decrypted_and_overlay_the_environment(aws: boto3.session.Session) -> None:
    put_parameters(aws, {"OTHERMAIL_DATABASE_URL": DB_URL, "OTHERMAIL_WEB_SECRET_KEY": "k" * 40})
    aws.client("ssm").put_parameter(Name=f"{PATH}/nested/OTHERMAIL_DOMAINS", Value="deeper.example", Type="String")
    env = {"OTHERMAIL_SSM_PATH": PATH, "OTHERMAIL_DATABASE_URL": "sqlite:///plain.db", "OTHERMAIL_DOMAINS": "a.example"}
    merged = environ_with_secrets(env)
    assert merged["OTHERMAIL_DATABASE_URL"] == DB_URL
    assert merged["OTHERMAIL_WEB_SECRET_KEY"] == "k" * 40
    assert merged["OTHERMAIL_DOMAINS"] == "a.example"  # only the path's own parameters, not nested ones
    assert Settings.from_env(merged).database_url == DB_URL
    assert env["OTHERMAIL_DATABASE_URL"] == "sqlite:///plain.db"


def test_ssm_reads_every_page(aws: boto3.session.Session) -> None:
    values = {f"OTHERMAIL_X{i:02}": str(i) for i in range(23)}  # GetParametersByPath returns 10 a page
    put_parameters(aws, values, path="/big/")
    assert fetch_secrets({"OTHERMAIL_SSM_PATH": "/big"}) == values


def test_secrets_manager_json_overlays_the_environment(aws: boto3.session.Session) -> None:
    put_secret(aws, {"OTHERMAIL_DATABASE_URL": DB_URL, "OTHERMAIL_RELAY_PORT": 465, "OTHERMAIL_DROP_SPAM": False})
    merged = environ_with_secrets({"OTHERMAIL_SECRETS_ARN": "othermail/production", "OTHERMAIL_S3_BUCKET": "inbound"})
    settings = Settings.from_env(merged)
    assert (settings.database_url, settings.relay_port, settings.policy.drop_spam) == (DB_URL, 465, False)
    assert settings.s3_bucket == "inbound"


def test_a_secret_arn_names_its_own_region(aws: boto3.session.Session) -> None:
    arn = put_secret(aws, {"OTHERMAIL_DATABASE_URL": DB_URL}, region="eu-west-1")
    assert ":eu-west-1:" in arn
    assert fetch_secrets({"OTHERMAIL_SECRETS_ARN": arn, "AWS_REGION": "us-east-1"}) == {
        "OTHERMAIL_DATABASE_URL": DB_URL
    }


def test_both_sources_secrets_manager_wins(aws: boto3.session.Session) -> None:
    put_parameters(aws, {"OTHERMAIL_DATABASE_URL": "sqlite:///from-ssm.db", "OTHERMAIL_DOMAINS": "ssm.example"})
    arn = put_secret(aws, {"OTHERMAIL_DATABASE_URL": DB_URL})
    fetched = fetch_secrets({"OTHERMAIL_SSM_PATH": PATH, "OTHERMAIL_SECRETS_ARN": arn})
    assert fetched == {"OTHERMAIL_DATABASE_URL": DB_URL, "OTHERMAIL_DOMAINS": "ssm.example"}


@pytest.mark.parametrize(
    "value, message",
    [
        ("not json {", "is not JSON"),
        (["OTHERMAIL_DATABASE_URL"], "must hold a JSON object"),
        ({"DATABASE_URL": DB_URL}, "'DATABASE_URL' is not an OTHERMAIL_* setting"),
        ({"OTHERMAIL_SSM_PATH": "/elsewhere"}, "is not an OTHERMAIL_* setting"),
        ({"OTHERMAIL_DOMAINS": ["a.example"]}, "OTHERMAIL_DOMAINS must be a string"),
    ],
)
def test_a_malformed_secret_is_a_settings_error(aws: boto3.session.Session, value: Any, message: str) -> None:
    arn = put_secret(aws, value)
    with pytest.raises(SettingsError, match="Secrets Manager secret .*OTHERMAIL_SECRETS_ARN") as caught:
        fetch_secrets({"OTHERMAIL_SECRETS_ARN": arn})
    assert message in str(caught.value)
    assert DB_URL not in str(caught.value)  # values are never repeated in errors


def test_a_binary_secret_is_a_settings_error(aws: boto3.session.Session) -> None:
    aws.client("secretsmanager").create_secret(Name="bin", SecretBinary=b"\x00\x01")
    with pytest.raises(SettingsError, match="is binary"):
        fetch_secrets({"OTHERMAIL_SECRETS_ARN": "bin"})


def test_a_missing_secret_is_a_clear_settings_error(aws: boto3.session.Session) -> None:
    with pytest.raises(SettingsError) as caught:
        fetch_secrets({"OTHERMAIL_SECRETS_ARN": "othermail/nope"})
    text = str(caught.value)
    assert "could not read the secrets from Secrets Manager secret othermail/nope (OTHERMAIL_SECRETS_ARN)" in text
    assert "ResourceNotFoundException" in text


def test_an_empty_or_malformed_ssm_path_is_a_settings_error(aws: boto3.session.Session) -> None:
    with pytest.raises(SettingsError, match=r"SSM Parameter Store path /othermail/none .* holds no parameters"):
        fetch_secrets({"OTHERMAIL_SSM_PATH": "/othermail/none"})
    with pytest.raises(SettingsError, match="must be a parameter path starting with '/'"):
        fetch_secrets({"OTHERMAIL_SSM_PATH": "othermail/production"})
    put_parameters(aws, {"database_url": DB_URL})
    with pytest.raises(SettingsError, match="'database_url' is not an OTHERMAIL_"):
        fetch_secrets({"OTHERMAIL_SSM_PATH": PATH})


def test_an_unreachable_service_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No moto here: botocore's own failure (connection refused) becomes a SettingsError."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    }.items():
        monkeypatch.setenv(name, value)
    expected = r"could not read the secrets from SSM Parameter Store path /o \(OTHERMAIL_SSM_PATH\)"
    with pytest.raises(SettingsError, match=expected):
        fetch_secrets({"OTHERMAIL_SSM_PATH": "/o", "AWS_REGION": REGION})


def test_the_lambda_cold_start_reads_the_secret(
    aws: boto3.session.Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'from-secret.db'}"
    arn = put_secret(aws, {"OTHERMAIL_DATABASE_URL": url, "OTHERMAIL_S3_BUCKET": "secret-bucket"})
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setenv("OTHERMAIL_SECRETS_ARN", arn)
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", "sqlite:///plain-environment.db")
    monkeypatch.delenv("OTHERMAIL_S3_BUCKET", raising=False)
    summary = lambda_handler.handler(SNS_CONFIRMATION, None)
    runtime = lambda_handler._runtime
    assert runtime is not None
    try:
        assert summary["outcomes"] == {"skipped:sns-subscription-confirmation": 1}
        assert (runtime.settings.database_url, runtime.settings.s3_bucket) == (url, "secret-bucket")
    finally:
        runtime.close()


def test_the_lambda_cold_start_fails_clearly_when_the_secret_cannot_be_read(
    aws: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setenv("OTHERMAIL_SECRETS_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf")
    with pytest.raises(SettingsError, match="could not read the secrets from Secrets Manager secret"):
        lambda_handler.handler(SNS_CONFIRMATION, None)
    assert lambda_handler._runtime is None  # the next invocation tries again


def test_the_contact_keys_come_from_the_secret_the_web_app_and_the_lambda_share(aws: boto3.session.Session) -> None:
    """Issue 14: OTHERMAIL_CONTACT_KEYS in the one secret both functions read gives both the same keys."""
    import base64
    import secrets

    key = secrets.token_bytes(32)
    entry = "k2:" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    put_secret(aws, {"OTHERMAIL_DATABASE_URL": DB_URL, "OTHERMAIL_CONTACT_KEYS": entry})
    for plain in ({"OTHERMAIL_S3_BUCKET": "inbound"}, {"OTHERMAIL_PUBLIC_URL": "https://app.example"}):
        settings = Settings.from_env(environ_with_secrets({"OTHERMAIL_SECRETS_ARN": "othermail/production", **plain}))
        assert settings.contact_keys == (("k2", key),)
