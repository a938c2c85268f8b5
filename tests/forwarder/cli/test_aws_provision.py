"""``othermail aws provision`` against moto: in process (click's runner, mock_aws) and as the real
command in a subprocess talking to a moto server (AWS_ENDPOINT_URL).

The stack of deploy/aws/othermail.yaml is deployed into moto first (tests/deploy/aws_stack.py), so
the rule set provision activates is the template's. Mutating calls are counted by operation name:
in process with a botocore ``before-call`` hook on the command's session, through the server with
a WSGI wrapper that sees every request. A second run must make none.

moto gaps, worked around here (see aws_stack.py): new Easy DKIM identities come without DKIM tokens
in moto, so :func:`easy_dkim_like_ses` reports them as SES documents; one test runs without it.
SESv2's PutEmailIdentityMailFromAttributes is not implemented by moto: the command uses SES v1's
SetIdentityMailFromDomain, which edits the same attribute.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws
from moto.server import ThreadedMotoServer

import forwarder.cli.aws_provision as aws_provision
from forwarder.cli.aws_provision import MUTATING_PREFIXES
from forwarder.cli.main import cli
from tests.deploy.aws_stack import deploy, easy_dkim_like_ses, moto_bucket_policies_not_enforced

REGION = "eu-west-1"
DOMAINS = ("othermail.example", "second.example")
CNAME = re.compile(r"^  publish: ([a-z0-9]+)\._domainkey\.(\S+) CNAME \1\.dkim\.amazonses\.com$")


def is_mutating(operation: str) -> bool:
    return operation.startswith(MUTATING_PREFIXES)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTHERMAIL_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_bucket_policies_not_enforced(monkeypatch)


@pytest.fixture
def moto(aws_env: None) -> Iterator[boto3.session.Session]:
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every API operation the command calls, in order."""
    made: list[str] = []

    def make_session(region: str) -> boto3.session.Session:
        session = boto3.session.Session(region_name=region)
        session.events.register("before-call", lambda model, **_: made.append(model.name))
        return session

    monkeypatch.setattr(aws_provision, "make_session", make_session)
    return made


def provision(*args: str, domains: str = ",".join(DOMAINS)) -> Result:
    env = {"OTHERMAIL_DOMAINS": domains, "OTHERMAIL_AWS_REGION": REGION}
    return CliRunner().invoke(cli, ["aws", "provision", *args], env=env, catch_exceptions=False)


def records(output: str, domain: str) -> list[str]:
    return [m.group(1) for m in map(CNAME.match, output.splitlines()) if m and m.group(2) == domain]


def check_first_run(output: str, session_tokens: dict[str, list[str]], mail_from: bool) -> None:
    lines = output.splitlines()
    assert "active receipt rule set othermail: created" in lines
    for domain in DOMAINS:
        assert f"identity {domain}: created" in lines
        assert sorted(records(output, domain)) == sorted(session_tokens[domain])
        assert len(records(output, domain)) == 3
        assert f"  publish: {domain} MX 10 inbound-smtp.{REGION}.amazonaws.com" in lines
        if mail_from:
            assert f"mail-from mail.{domain}: created" in lines
            assert f"  publish: mail.{domain} MX 10 feedback-smtp.{REGION}.amazonses.com" in lines
            assert f'  publish: mail.{domain} TXT "v=spf1 include:amazonses.com ~all"' in lines
    assert lines[-1] == ("5 change(s)" if mail_from else "3 change(s)")


def tokens(session: boto3.session.Session) -> dict[str, list[str]]:
    sesv2 = session.client("sesv2")
    return {d: sesv2.get_email_identity(EmailIdentity=d)["DkimAttributes"]["Tokens"] for d in DOMAINS}


def check_state(session: boto3.session.Session, mail_from: bool) -> None:
    ses = session.client("ses")
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "othermail"
    attributes = ses.get_identity_mail_from_domain_attributes(Identities=list(DOMAINS))["MailFromDomainAttributes"]
    for domain in DOMAINS:
        expected = f"mail.{domain}" if mail_from else None
        assert attributes[domain].get("MailFromDomain") == expected


# ---------------------------------------------------------------------------------------- in process


def test_first_run_sets_up_second_run_changes_nothing(
    moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)

    first = provision("--mail-from-subdomain", "mail")
    assert first.exit_code == 0, first.output
    check_first_run(first.output, tokens(moto), mail_from=True)
    check_state(moto, mail_from=True)
    assert sorted(c for c in calls if is_mutating(c)) == [
        "CreateEmailIdentity",
        "CreateEmailIdentity",
        "SetActiveReceiptRuleSet",
        "SetIdentityMailFromDomain",
        "SetIdentityMailFromDomain",
    ]

    calls.clear()
    second = provision("--mail-from-subdomain", "mail")
    assert second.exit_code == 0, second.output
    assert calls and not [c for c in calls if is_mutating(c)], calls
    status = [line for line in second.output.splitlines() if not line.startswith("  ")]
    assert status == [
        "active receipt rule set othermail: unchanged",
        "identity othermail.example: unchanged",
        "mail-from mail.othermail.example: unchanged",
        "identity second.example: unchanged",
        "mail-from mail.second.example: unchanged",
        "nothing changed",
    ]
    # The records to publish are printed again, the same ones.
    for domain in DOMAINS:
        assert records(second.output, domain) == records(first.output, domain)
    check_state(moto, mail_from=True)


def test_without_mail_from(moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)
    result = provision()
    assert result.exit_code == 0, result.output
    check_first_run(result.output, tokens(moto), mail_from=False)
    assert "mail-from" not in result.output
    check_state(moto, mail_from=False)
    assert "SetIdentityMailFromDomain" not in calls


def test_a_changed_mail_from_is_updated(
    moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)
    assert provision("--mail-from-subdomain", "bounce").exit_code == 0
    calls.clear()
    result = provision("--mail-from-subdomain", "mail")
    assert result.exit_code == 0, result.output
    assert "mail-from mail.othermail.example: updated" in result.output
    assert "  note: was bounce.othermail.example" in result.output
    assert sorted(c for c in calls if is_mutating(c)) == ["SetIdentityMailFromDomain"] * 2
    check_state(moto, mail_from=True)


def test_domains_come_from_the_option(
    moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)
    result = provision("--domain", "Second.Example.", domains="ignored.example")
    assert result.exit_code == 0, result.output
    assert "identity second.example: created" in result.output
    assert "ignored.example" not in result.output and "othermail.example" not in result.output
    names = {i["IdentityName"] for i in moto.client("sesv2").list_email_identities()["EmailIdentities"]}
    assert names == {"second.example"}


def test_a_domain_no_rule_receives_is_pointed_out(
    moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)
    result = provision(domains="othermail.example,third.example")
    assert result.exit_code == 0, result.output
    assert "  note: no enabled rule in othermail receives mail for third.example (stack parameter Domains)" in (
        result.output.splitlines()
    )
    assert "othermail.example (stack" not in result.output


def test_moto_as_it_is_reports_no_dkim_tokens(moto: boto3.session.Session, calls: list[str]) -> None:
    """Without the Easy DKIM stand-in: what the command says when SES reports no tokens (and DKIM
    signing off), which is what moto answers."""
    deploy(moto, domains=DOMAINS)
    result = provision()
    assert result.exit_code == 0, result.output
    assert not [line for line in result.output.splitlines() if CNAME.match(line)]
    assert "  note: SES reported no DKIM tokens yet (DKIM status NOT_STARTED): run again" in result.output
    assert "DKIM signing is off for othermail.example: forwarded mail will fail DMARC" in result.output


def test_a_missing_rule_set_stops_before_any_change(moto: boto3.session.Session, calls: list[str]) -> None:
    result = provision()
    assert result.exit_code == 1
    assert "the receipt rule set 'othermail' does not exist in eu-west-1" in result.output
    assert "deploy/aws/othermail.yaml" in result.output
    assert calls == ["DescribeReceiptRuleSet"]


def test_another_active_rule_set_is_not_replaced_silently(
    moto: boto3.session.Session, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    easy_dkim_like_ses(monkeypatch)
    deploy(moto, domains=DOMAINS)
    ses = moto.client("ses")
    ses.create_receipt_rule_set(RuleSetName="legacy")
    ses.set_active_receipt_rule_set(RuleSetName="legacy")

    refused = provision()
    assert refused.exit_code == 1
    assert "the receipt rule set 'legacy' is active in eu-west-1" in refused.output
    assert "--replace-active" in refused.output
    assert not [c for c in calls if is_mutating(c)]
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "legacy"

    replaced = provision("--replace-active")
    assert replaced.exit_code == 0, replaced.output
    assert "active receipt rule set othermail: updated" in replaced.output
    assert "  note: replaced legacy, which is no longer active" in replaced.output
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "othermail"


@pytest.mark.parametrize("label", ["a.b", "-mail", "x" * 64, "ma_il"])
def test_a_mail_from_subdomain_is_one_label(moto: boto3.session.Session, calls: list[str], label: str) -> None:
    result = provision("--mail-from-subdomain", label)
    assert result.exit_code == 2
    assert "must be one DNS label" in result.output
    assert calls == []


def test_a_mail_from_domain_must_not_receive_mail(moto: boto3.session.Session, calls: list[str]) -> None:
    result = provision("--mail-from-subdomain", "mail", domains="othermail.example,mail.othermail.example")
    assert result.exit_code == 2
    assert "mail.othermail.example receives mail here" in result.output
    assert calls == []


def test_unreachable_aws_is_one_clear_error(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "0")
    result = provision()
    assert result.exit_code == 1
    assert "AWS cannot be reached in eu-west-1" in result.output


# ---------------------------------------------------------------------------------------- real command, moto server


class RequestLog:
    """WSGI wrapper around moto's server app: the operation of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = ""
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), action))
        return self.app(environ, start_response)

    def mutating(self) -> list[tuple[str, str, str]]:
        """Query-API actions that change something, and every REST (SESv2) request that is not a GET."""
        return [
            r for r in self.requests if is_mutating(r[2]) or (r[1].startswith("/v2/") and r[0] not in ("GET", "HEAD"))
        ]


@pytest.fixture
def moto_server(aws_env: None) -> Iterator[tuple[str, RequestLog]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    log = RequestLog(server._server.app)  # the served app, wrapped in place
    server._server.app = log
    try:
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).read()
        yield url, log
    finally:
        server.stop()


def run_command(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTHERMAIL_"))}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_DEFAULT_REGION=REGION,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        OTHERMAIL_DOMAINS=",".join(DOMAINS),
        OTHERMAIL_DATA_DIR=str(tmp_path / "var"),
    )
    command = [str(Path(sys.executable).with_name("othermail")), "aws", "provision", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def test_the_real_command_against_a_moto_server(
    moto_server: tuple[str, RequestLog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, log = moto_server
    easy_dkim_like_ses(monkeypatch)  # the server runs in this process: the stand-in applies
    session = boto3.session.Session(region_name=REGION)
    deploy(session, domains=DOMAINS, endpoint_url=url)

    log.requests.clear()
    first = run_command(url, tmp_path, "--mail-from-subdomain", "mail", "--region", REGION)
    assert first.returncode == 0, first.stdout + first.stderr
    sesv2 = session.client("sesv2", endpoint_url=url)
    issued = {d: sesv2.get_email_identity(EmailIdentity=d)["DkimAttributes"]["Tokens"] for d in DOMAINS}
    check_first_run(first.stdout, issued, mail_from=True)
    mutating = log.mutating()
    assert sorted(r[2] or f"{r[0]} {r[1]}" for r in mutating) == [
        "POST /v2/email/identities",
        "POST /v2/email/identities",
        "SetActiveReceiptRuleSet",
        "SetIdentityMailFromDomain",
        "SetIdentityMailFromDomain",
    ], log.requests

    log.requests.clear()
    second = run_command(url, tmp_path, "--mail-from-subdomain", "mail", "--region", REGION)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[-1] == "nothing changed"
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert log.requests and log.mutating() == [], log.requests
    check_state(session_at(url), mail_from=True)


def session_at(url: str) -> Any:
    class Clients:
        def client(self, name: str) -> Any:
            return boto3.session.Session(region_name=REGION).client(name, endpoint_url=url)

    return Clients()
