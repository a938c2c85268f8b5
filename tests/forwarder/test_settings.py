"""Settings.from_env: defaults, every OTHERMAIL_* variable, and errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

import forwarder.settings as settings_module
from forwarder.core import SESV1_MAX_BYTES, SESV2_MAX_BYTES, Policy
from forwarder.errors import SettingsError
from forwarder.settings import Settings


class ExplodingEnviron(Mapping[str, str]):
    """Stands in for os.environ: any read fails the test."""

    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"os.environ was read ({key})")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("os.environ was iterated")

    def __len__(self) -> int:
        raise AssertionError("os.environ was measured")

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        raise AssertionError(f"os.environ was read ({key})")


def test_defaults_from_an_empty_mapping() -> None:
    s = Settings.from_env({})
    assert s.data_dir == Path("var")
    assert s.database_url == ""
    assert s.resolved_database_url == f"sqlite:///{(Path('var') / 'othermail.db').resolve()}"
    assert s.domains == ("othermail.example",)
    assert s.ses_api == "v2"
    assert s.max_bytes == SESV2_MAX_BYTES == 40 * 1024 * 1024
    assert s.aws_region == "us-east-1"
    assert s.s3_bucket == ""
    assert s.s3_prefix == "inbound/"
    assert s.ses_configuration_set == ""
    assert s.sender == "ses"
    assert s.outbox == Path("var") / "outbox"
    assert s.policy == Policy(drop_spam=True, drop_dmarc_reject=True, drop_bounces=True, drop_auto_replies=True)
    assert s.claim_timeout_seconds == 900


def test_from_env_defaults_match_the_dataclass_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_every_variable_is_parsed(tmp_path: Path) -> None:
    env = {
        "OTHERMAIL_DATA_DIR": str(tmp_path / "data"),
        "OTHERMAIL_DATABASE_URL": "postgresql+psycopg://u:p@db/othermail",
        "OTHERMAIL_DOMAINS": " Alias.Example , second.example,,  ",
        "OTHERMAIL_SES_API": " V1 ",
        "OTHERMAIL_AWS_REGION": "eu-west-1",
        "OTHERMAIL_S3_BUCKET": "raw-mail",
        "OTHERMAIL_S3_PREFIX": "mail/in/",
        "OTHERMAIL_SES_CONFIGURATION_SET": "othermail-events",
        "OTHERMAIL_SENDER": "OUTBOX",
        "OTHERMAIL_OUTBOX": str(tmp_path / "box"),
        "OTHERMAIL_DROP_SPAM": "false",
        "OTHERMAIL_DROP_DMARC_REJECT": "0",
        "OTHERMAIL_DROP_BOUNCES": "no",
        "OTHERMAIL_DROP_AUTO_REPLIES": "Off",
        "OTHERMAIL_CLAIM_TIMEOUT_SECONDS": "60",
    }
    s = Settings.from_env(env)
    assert s.data_dir == tmp_path / "data"
    assert s.database_url == "postgresql+psycopg://u:p@db/othermail"
    assert s.resolved_database_url == "postgresql+psycopg://u:p@db/othermail"
    assert s.domains == ("alias.example", "second.example")
    assert s.ses_api == "v1"
    assert s.max_bytes == SESV1_MAX_BYTES == 10 * 1024 * 1024
    assert s.aws_region == "eu-west-1"
    assert s.s3_bucket == "raw-mail"
    assert s.s3_prefix == "mail/in/"
    assert s.ses_configuration_set == "othermail-events"
    assert s.sender == "outbox"
    assert s.outbox == tmp_path / "box"
    assert s.policy == Policy(drop_spam=False, drop_dmarc_reject=False, drop_bounces=False, drop_auto_replies=False)
    assert s.claim_timeout_seconds == 60


def test_outbox_defaults_under_the_data_dir(tmp_path: Path) -> None:
    s = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path)})
    assert s.outbox == tmp_path / "outbox"
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'othermail.db').resolve()}"


def test_empty_s3_prefix_is_kept_empty() -> None:
    assert Settings.from_env({"OTHERMAIL_S3_PREFIX": ""}).s3_prefix == ""


@pytest.mark.parametrize(
    "env, region",
    [
        ({"AWS_REGION": "ap-south-1"}, "ap-south-1"),
        ({"AWS_REGION": "ap-south-1", "OTHERMAIL_AWS_REGION": "eu-central-1"}, "eu-central-1"),
        ({"OTHERMAIL_AWS_REGION": "", "AWS_REGION": ""}, "us-east-1"),
    ],
)
def test_aws_region_falls_back_to_aws_region(env: dict, region: str) -> None:
    assert Settings.from_env(env).aws_region == region


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_true_booleans(raw: str) -> None:
    assert Settings.from_env({"OTHERMAIL_DROP_SPAM": raw}).policy.drop_spam is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", " NO "])
def test_false_booleans(raw: str) -> None:
    policy = Settings.from_env({"OTHERMAIL_DROP_BOUNCES": raw}).policy
    assert policy.drop_bounces is False
    assert policy.drop_spam is True  # the others keep their default


def test_empty_boolean_keeps_the_default() -> None:
    assert Settings.from_env({"OTHERMAIL_DROP_AUTO_REPLIES": ""}).policy.drop_auto_replies is True


@pytest.mark.parametrize("name", ["DROP_SPAM", "DROP_DMARC_REJECT", "DROP_BOUNCES", "DROP_AUTO_REPLIES"])
@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled", "-1"])
def test_invalid_boolean_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"OTHERMAIL_{name} must be true or false") as info:
        Settings.from_env({f"OTHERMAIL_{name}": raw})
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize("raw", ["abc", "1.5", "ten", "9e3"])
def test_non_integer_claim_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_CLAIM_TIMEOUT_SECONDS must be a whole number"):
        Settings.from_env({"OTHERMAIL_CLAIM_TIMEOUT_SECONDS": raw})


@pytest.mark.parametrize("raw", ["0", "-5"])
def test_claim_timeout_below_one_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_CLAIM_TIMEOUT_SECONDS must be at least 1"):
        Settings.from_env({"OTHERMAIL_CLAIM_TIMEOUT_SECONDS": raw})


def test_claim_timeout_accepts_one_and_blank() -> None:
    assert Settings.from_env({"OTHERMAIL_CLAIM_TIMEOUT_SECONDS": "1"}).claim_timeout_seconds == 1
    assert Settings.from_env({"OTHERMAIL_CLAIM_TIMEOUT_SECONDS": ""}).claim_timeout_seconds == 900


@pytest.mark.parametrize("raw", ["v3", "sesv2", "2", "smtp"])
def test_invalid_ses_api_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_SES_API must be one of v2, v1"):
        Settings.from_env({"OTHERMAIL_SES_API": raw})


@pytest.mark.parametrize("raw", ["relay", "maildir", "memory"])
def test_invalid_sender_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_SENDER must be one of ses, outbox, smtp"):
        Settings.from_env({"OTHERMAIL_SENDER": raw})


@pytest.mark.parametrize("raw", [",", " , ,", "   "])
def test_domains_without_a_domain_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_DOMAINS"):
        Settings.from_env({"OTHERMAIL_DOMAINS": raw})


def test_settings_error_points_at_the_configuration_reference() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"OTHERMAIL_SES_API": "v3"})
    assert "docs/configuration.md" in str(info.value)


@pytest.mark.parametrize("api, limit", [("v1", SESV1_MAX_BYTES), ("v2", SESV2_MAX_BYTES)])
def test_max_bytes_follows_the_ses_api(api: str, limit: int) -> None:
    assert Settings.from_env({"OTHERMAIL_SES_API": api}).max_bytes == limit
    assert Settings(ses_api=api).max_bytes == limit


def test_a_given_mapping_means_os_environ_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # forwarder.settings reaches the environment only through its module global ``os``.
    monkeypatch.setattr(settings_module, "os", SimpleNamespace(environ=ExplodingEnviron()))
    s = Settings.from_env({"OTHERMAIL_SES_API": "v1"})
    assert s.ses_api == "v1"
    # An empty mapping is a mapping too: it must not fall back to os.environ.
    assert Settings.from_env({}) == Settings()


def test_os_environ_values_do_not_leak_into_an_explicit_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHERMAIL_SES_API", "v3")
    monkeypatch.setenv("OTHERMAIL_DOMAINS", "leak.example")
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    s = Settings.from_env({})
    assert s.ses_api == "v2" and s.domains == ("othermail.example",) and s.aws_region == "us-east-1"


def test_without_a_mapping_os_environ_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OTHERMAIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTHERMAIL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OTHERMAIL_SENDER", "outbox")
    s = Settings.from_env()
    assert s.data_dir == tmp_path and s.sender == "outbox"
    monkeypatch.setenv("OTHERMAIL_SES_API", "v9")
    with pytest.raises(SettingsError, match="OTHERMAIL_SES_API"):
        Settings.from_env()


def test_one_box_settings_and_their_defaults(tmp_path: Path) -> None:
    plain = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path)}, default_sender="outbox")
    assert (plain.sender, plain.smtp_host, plain.smtp_port, plain.store) == ("outbox", "127.0.0.1", 2525, "local")
    assert plain.store_dir == tmp_path / "mail" and plain.relay_security == "starttls"
    assert Settings.from_env({}).sender == "ses"  # the Lambda's default
    relay = Settings.from_env(
        {
            "OTHERMAIL_SENDER": "smtp",
            "OTHERMAIL_RELAY_HOST": "mx.example",
            "OTHERMAIL_RELAY_PORT": "465",
            "OTHERMAIL_RELAY_SECURITY": "tls",
            "OTHERMAIL_QUEUE_URL": "https://sqs/q",
            "OTHERMAIL_STORE": "s3",
        }
    )
    assert (relay.sender, relay.relay_host, relay.relay_port, relay.relay_security) == (
        "smtp",
        "mx.example",
        465,
        "tls",
    )
    assert (relay.queue_url, relay.store) == ("https://sqs/q", "s3")
    with pytest.raises(SettingsError, match="OTHERMAIL_RELAY_SECURITY must be one of starttls, tls, none"):
        Settings.from_env({"OTHERMAIL_RELAY_SECURITY": "ssl3"})
    with pytest.raises(SettingsError, match="OTHERMAIL_SMTP_MAX_BYTES must be at least 1024"):
        Settings.from_env({"OTHERMAIL_SMTP_MAX_BYTES": "10"})


def test_mail_limits_default_and_parse() -> None:
    from forwarder.flows.mail_limits import MailLimits

    assert Settings.from_env({}).mail_limits == MailLimits(
        alias_per_hour=100, alias_per_day=500, user_per_hour=200, user_per_day=1000
    )
    parsed = Settings.from_env(
        {
            "OTHERMAIL_LIMIT_ALIAS_PER_HOUR": "0",
            "OTHERMAIL_LIMIT_ALIAS_PER_DAY": "40",
            "OTHERMAIL_LIMIT_USER_PER_HOUR": "",
            "OTHERMAIL_LIMIT_USER_PER_DAY": "0",
        }
    )
    assert parsed.mail_limits == MailLimits(alias_per_hour=0, alias_per_day=40, user_per_hour=200, user_per_day=0)
    with pytest.raises(SettingsError, match="OTHERMAIL_LIMIT_USER_PER_DAY must be at least 0, not -5"):
        Settings.from_env({"OTHERMAIL_LIMIT_USER_PER_DAY": "-5"})
    with pytest.raises(SettingsError, match="OTHERMAIL_LIMIT_ALIAS_PER_HOUR must be a whole number, not 'lots'"):
        Settings.from_env({"OTHERMAIL_LIMIT_ALIAS_PER_HOUR": "lots"})


def test_feedback_settings_default_and_parse() -> None:
    s = Settings.from_env({})
    assert (s.soft_bounce_limit, s.soft_bounce_window_days, s.complaint_action) == (3, 7, "disable")
    s = Settings.from_env(
        {
            "OTHERMAIL_SOFT_BOUNCE_LIMIT": "0",
            "OTHERMAIL_SOFT_BOUNCE_WINDOW_DAYS": "2",
            "OTHERMAIL_COMPLAINT_ACTION": " Count ",
        }
    )
    assert (s.soft_bounce_limit, s.soft_bounce_window_days, s.complaint_action) == (0, 2, "count")


@pytest.mark.parametrize(
    ("name", "raw", "words"),
    [
        ("SOFT_BOUNCE_LIMIT", "-1", "must be at least 0"),
        ("SOFT_BOUNCE_LIMIT", "three", "must be a whole number"),
        ("SOFT_BOUNCE_WINDOW_DAYS", "0", "must be at least 1"),
        ("COMPLAINT_ACTION", "bounce", "must be one of disable, count"),
    ],
)
def test_bad_feedback_settings_name_the_variable(name: str, raw: str, words: str) -> None:
    with pytest.raises(SettingsError, match=f"OTHERMAIL_{name} {words}"):
        Settings.from_env({f"OTHERMAIL_{name}": raw})


def test_database_prepared_statements_default_on_and_off_only_for_psycopg() -> None:
    assert Settings.from_env({}).database_prepared_statements is True
    off = {"OTHERMAIL_DATABASE_PREPARED_STATEMENTS": "false"}
    assert Settings.from_env(off).database_prepared_statements is False
    assert Settings.from_env(off).engine_options == {}  # SQLite: nothing to turn off
    pg = {**off, "OTHERMAIL_DATABASE_URL": "postgresql+psycopg://u@h/db"}
    assert Settings.from_env(pg).engine_options == {"connect_args": {"prepare_threshold": None}}
    assert Settings.from_env({**pg, "OTHERMAIL_DATABASE_PREPARED_STATEMENTS": "true"}).engine_options == {}
    with pytest.raises(SettingsError, match="OTHERMAIL_DATABASE_PREPARED_STATEMENTS"):
        Settings.from_env({"OTHERMAIL_DATABASE_PREPARED_STATEMENTS": "sometimes"})
