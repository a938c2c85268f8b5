"""The DNS doctor (forwarder/ops/dns_doctor/, ``othermail dns check``) against a real name server.

Knot DNS (Debian's ``knot``: ``knotd``) is started on 127.0.0.1 at a free port, serving zones the
test writes: a complete domain, one without DKIM, DMARC and MAIL FROM, one with two SPF records,
one whose MX points elsewhere, one with subtler mistakes, and one whose zone file is broken (Knot
answers SERVFAIL for a zone that failed to load). A zone Knot does not serve gets REFUSED, a
name under a served zone that does not exist NXDOMAIN; a UDP socket the test binds and never
answers stands for a name server that is down.

knotd missing: the tests skip with the package to install, except under CI (``CI`` set), where
they fail; ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
from click.testing import CliRunner, Result

from forwarder.cli.main import cli
from forwarder.ops.dns_doctor import (
    Expected,
    Level,
    Status,
    check_domain,
    mail_from_domain,
    make_resolver,
    parse_nameserver,
    required_records,
)
from tests.support.factories import free_udp_and_tcp_port
from tests.support.tools import missing

REGION = "us-east-1"
TOKENS = ("abcdefghijklmnopqrstuvwxyz234567", "bcdefghijklmnopqrstuvwxyz2345678", "cdefghijklmnopqrstuvwxyz23456789")
TOKEN_ARGS = [arg for token in TOKENS for arg in ("--dkim-token", token)]
SES_MX = "10 inbound-smtp.us-east-1.amazonaws.com."
FEEDBACK_MX = "10 feedback-smtp.us-east-1.amazonses.com."


def _dkim(tokens: tuple[str, ...] = TOKENS) -> str:
    return "".join(f"{t}._domainkey CNAME {t}.dkim.amazonses.com.\n" for t in tokens)


MAIL_FROM = 'mail MX 10 feedback-smtp.us-east-1.amazonses.com.\nmail TXT "v=spf1 include:amazonses.com ~all"\n'

ZONES = {
    "good.test": (
        f"@ MX {SES_MX}\n"
        '@ TXT "v=spf1 include:amazonses.com ~all"\n'
        '@ TXT "google-site-verification=abc"\n'
        + _dkim()
        + '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"\n'
        + MAIL_FROM
    ),
    "bare.test": f'@ MX {SES_MX}\n@ TXT "v=spf1 include:amazonses.com -all"\n',
    "twospf.test": (
        f"@ MX {SES_MX}\n"
        '@ TXT "v=spf1 include:amazonses.com ~all"\n'
        '@ TXT "v=spf1 mx include:_spf.example.net -all"\n'
        + _dkim()
        + '_dmarc TXT "v=DMARC1; p=quarantine"\n'
        + MAIL_FROM
    ),
    "wrongmx.test": (
        "@ MX 10 inbound-smtp.eu-west-1.amazonaws.com.\n"
        '@ TXT "v=spf1 mx ~all"\n' + _dkim() + '_dmarc TXT "v=DMARC1; p=reject"\n' + MAIL_FROM
    ),
    "subtle.test": (
        # SES at 10, a backup at 20: fine. SPF with the include after -all: wrong. One DKIM CNAME
        # pointing elsewhere. DMARC p=none: found, with advice. MAIL FROM with a second MX: wrong.
        f"@ MX {SES_MX}\n"
        "@ MX 20 backup.example.net.\n"
        '@ TXT "v=spf1 -all include:amazonses.com"\n'
        + _dkim(TOKENS[:2])
        + f"{TOKENS[2]}._domainkey CNAME {TOKENS[2]}.dkim.example.net.\n"
        + '_dmarc TXT "v=DMARC1; p=none"\n'
        + MAIL_FROM
        + "mail MX 5 mx.example.net.\n"
    ),
    "ahead.test": (
        f'@ MX 5 mx.example.net.\n@ MX {SES_MX}\n@ TXT "v=spf1 include:amazonses.com ~all"\n_dmarc TXT "v=DMARC1"\n'
    ),
    "empty.test": "",
}
BROKEN = "broken.test"


def zone_text(domain: str, body: str, serial: int = 1) -> str:
    return (
        f"$ORIGIN {domain}.\n$TTL 300\n"
        f"@ SOA ns.{domain}. hostmaster.{domain}. {serial} 3600 600 86400 300\n"
        f"@ NS ns\nns A 127.0.0.1\n{body}"
    )


@dataclass
class Knot:
    port: int
    folder: Path
    config: Path
    process: subprocess.Popen[bytes]

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.folder / "knotd.log").read_text(errors="replace")

    def write_zone(self, domain: str, body: str, serial: int) -> None:
        (self.folder / f"{domain}.zone").write_text(zone_text(domain, body, serial))
        knotc = shutil.which("knotc", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))
        assert knotc, "knotc (package knot) is missing"
        subprocess.run(
            [knotc, "-c", str(self.config), "-b", "zone-reload", f"{domain}."],
            check=True,
            capture_output=True,
            timeout=20,
        )


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    knotd = shutil.which("knotd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))
    if knotd is None:
        missing("knotd is not installed (apt-get install knot; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("knot")
    port = free_udp_and_tcp_port()  # Knot binds TCP too
    for domain, body in ZONES.items():
        (folder / f"{domain}.zone").write_text(zone_text(domain, body))
    (folder / f"{BROKEN}.zone").write_text("this is not a zone file\n")
    zones = "".join(f"  - domain: {d}\n" for d in (*ZONES, BROKEN))
    config = folder / "knot.conf"
    config.write_text(
        "server:\n"
        f'    rundir: "{folder}"\n'
        f"    listen: 127.0.0.1@{port}\n"
        "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
        "database:\n"
        f'    storage: "{folder}"\n'
        "log:\n  - target: stderr\n    any: info\n"
        "template:\n  - id: default\n"
        f'    storage: "{folder}"\n'
        '    file: "%s.zone"\n'
        "    journal-content: none\n    zonefile-sync: -1\n    semantic-checks: off\n"
        f"zone:\n{zones}"
    )
    with (folder / "knotd.log").open("wb") as log:
        process = subprocess.Popen([knotd, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = Knot(port, folder, config, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                dns.query.udp(dns.message.make_query("good.test.", "SOA"), "127.0.0.1", port=port, timeout=0.5)
                break
            except (dns.exception.Timeout, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"knotd did not start on port {port}:\n{server.log()}", pytrace=False)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP socket that receives queries and never answers (a name server that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        yield udp.getsockname()[1]


def check(knot: Knot, domain: str, tokens: tuple[str, ...] = TOKENS, **kwargs: object):
    resolver = make_resolver(knot.nameserver, timeout=2)
    return check_domain(domain, resolver, Expected(REGION, tokens, **kwargs))  # type: ignore[arg-type]


def by_purpose(report, purpose: str):
    return next(f for f in report.findings if f.purpose == purpose)


def run_cli(*args: str) -> Result:
    env = {"AWS_REGION": None, "OTHERMAIL_AWS_REGION": None, "OTHERMAIL_DATA_DIR": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# ------------------------------------------------------------------------ pure: the records to create


def test_required_records_are_the_exact_ses_records() -> None:
    records = required_records("Example.ORG.", "eu-west-1", TOKENS[:1], mail_from="bounce")
    assert [r.zone_line() for r in records] == [
        "example.org. 3600 IN MX 10 inbound-smtp.eu-west-1.amazonaws.com.",
        'example.org. 3600 IN TXT "v=spf1 include:amazonses.com ~all"',
        f"{TOKENS[0]}._domainkey.example.org. 3600 IN CNAME {TOKENS[0]}.dkim.amazonses.com.",
        '_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine"',
        "bounce.example.org. 3600 IN MX 10 feedback-smtp.eu-west-1.amazonses.com.",
        'bounce.example.org. 3600 IN TXT "v=spf1 include:amazonses.com ~all"',
    ]
    assert [r.level for r in records] == [Level.REQUIRED] * 3 + [Level.RECOMMENDED] * 3


def test_mail_from_and_nameserver_parsing() -> None:
    assert mail_from_domain("example.org") == "mail.example.org"
    assert mail_from_domain("example.org", "bounce.example.org") == "bounce.example.org"
    assert mail_from_domain("example.org", "x.y.example.org") == "x.y.example.org"
    for bad in ("a.b", "example.org", "other.example", "-"):
        with pytest.raises(ValueError):
            mail_from_domain("example.org", bad)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    for bad in ("127.0.0.1:0", "127.0.0.1:x", "[::1]x"):
        with pytest.raises(ValueError):
            parse_nameserver(bad)
    with pytest.raises(ValueError):
        required_records("example.org", REGION, ["not a token"])


# ------------------------------------------------------------------------ against Knot


def test_a_complete_domain_is_ok(knot: Knot) -> None:
    report = check(knot, "good.test")
    assert report.ok and report.domain_exists
    assert {f.status for f in report.findings} == {Status.FOUND}
    assert [f.purpose for f in report.findings] == [
        "SES receiving",
        "SPF",
        "DKIM 1/3",
        "DKIM 2/3",
        "DKIM 3/3",
        "DMARC",
        "MAIL FROM MX",
        "MAIL FROM SPF",
    ]
    assert by_purpose(report, "SES receiving").found_values == (SES_MX,)
    assert by_purpose(report, "SPF").found_values == ('"v=spf1 include:amazonses.com ~all"',)  # not the other TXT
    assert by_purpose(report, "MAIL FROM MX").name == "mail.good.test"
    assert report.to_create == []


def test_missing_dkim_dmarc_and_mail_from(knot: Knot) -> None:
    report = check(knot, "bare.test")
    assert not report.ok
    statuses = {f.purpose: f.status for f in report.findings}
    assert statuses == {
        "SES receiving": Status.FOUND,
        "SPF": Status.FOUND,
        "DKIM 1/3": Status.MISSING,
        "DKIM 2/3": Status.MISSING,
        "DKIM 3/3": Status.MISSING,
        "DMARC": Status.MISSING,
        "MAIL FROM MX": Status.MISSING,
        "MAIL FROM SPF": Status.MISSING,
    }
    assert [r.purpose for r in report.to_create] == [
        "DKIM 1/3",
        "DKIM 2/3",
        "DKIM 3/3",
        "DMARC",
        "MAIL FROM MX",
        "MAIL FROM SPF",
    ]


def test_without_tokens_dkim_is_unchecked_and_does_not_fail(knot: Knot) -> None:
    report = check(knot, "bare.test", tokens=())
    dkim = by_purpose(report, "DKIM")
    assert dkim.status is Status.UNCHECKED and "--dkim-token" in dkim.message
    assert "othermail aws provision" in dkim.message
    assert report.ok  # MX and SPF are there; DMARC and MAIL FROM are only recommended


def test_two_spf_records_are_wrong_and_merged(knot: Knot) -> None:
    report = check(knot, "twospf.test")
    spf = by_purpose(report, "SPF")
    assert spf.status is Status.WRONG and len(spf.found_values) == 2
    assert "2 v=spf1 records" in spf.message
    assert spf.fix is not None
    assert spf.fix.value == '"v=spf1 mx include:_spf.example.net include:amazonses.com ~all"'
    assert not report.ok
    assert [f.purpose for f in report.findings if f.status is not Status.FOUND] == ["SPF"]


def test_wrong_mx_region_and_spf_without_ses(knot: Knot) -> None:
    report = check(knot, "wrongmx.test")
    mx, spf = by_purpose(report, "SES receiving"), by_purpose(report, "SPF")
    assert mx.status is Status.WRONG and mx.found_values == ("10 inbound-smtp.eu-west-1.amazonaws.com.",)
    assert "eu-west-1" in mx.message and "us-east-1" in mx.message
    assert spf.status is Status.WRONG and spf.fix is not None
    assert spf.fix.value == '"v=spf1 mx include:amazonses.com ~all"'
    # the right region for this zone
    assert (
        by_purpose(
            check_domain("wrongmx.test", make_resolver(knot.nameserver, 2), Expected("eu-west-1", TOKENS)),
            "SES receiving",
        ).status
        is Status.FOUND
    )


def test_subtle_mistakes(knot: Knot) -> None:
    report = check(knot, "subtle.test")
    mx = by_purpose(report, "SES receiving")
    assert mx.status is Status.FOUND and "backup" in mx.message
    spf = by_purpose(report, "SPF")
    assert spf.status is Status.WRONG and "after '-all'" in spf.message
    assert spf.fix is not None and spf.fix.value == '"v=spf1 include:amazonses.com -all"'
    assert by_purpose(report, "DKIM 2/3").status is Status.FOUND
    dkim3 = by_purpose(report, "DKIM 3/3")
    assert dkim3.status is Status.WRONG and dkim3.found_values == (f"{TOKENS[2]}.dkim.example.net.",)
    dmarc = by_purpose(report, "DMARC")
    assert dmarc.status is Status.FOUND and "p=quarantine or p=reject" in dmarc.message
    mail_mx = by_purpose(report, "MAIL FROM MX")
    assert mail_mx.status is Status.WRONG and mail_mx.remove == ("5 mx.example.net.",)
    assert mail_mx.fix is None  # SES's MX is there: only the other one goes
    assert report.to_remove == [
        ("subtle.test", "TXT", '"v=spf1 -all include:amazonses.com"'),
        (f"{TOKENS[2]}._domainkey.subtle.test", "CNAME", f"{TOKENS[2]}.dkim.example.net."),
        ("mail.subtle.test", "MX", "5 mx.example.net."),
    ]
    assert [r.purpose for r in report.to_create] == ["SPF", "DKIM 3/3"]


def test_an_mx_ahead_of_ses_and_a_dmarc_without_policy(knot: Knot) -> None:
    report = check(knot, "ahead.test", tokens=())
    mx = by_purpose(report, "SES receiving")
    assert mx.status is Status.WRONG and "5 mx.example.net." in mx.message
    assert mx.fix is None and mx.remove == ("5 mx.example.net.",)  # SES's MX stays, the other one goes
    assert by_purpose(report, "DMARC").status is Status.WRONG
    assert report.to_remove == [("ahead.test", "MX", "5 mx.example.net."), ("_dmarc.ahead.test", "TXT", '"v=DMARC1"')]
    assert not report.ok


def test_records_to_create_make_the_domain_pass(knot: Knot) -> None:
    """The zone lines the doctor prints, added to the zone, are what the next check finds."""
    before = check(knot, "empty.test")
    assert {f.status for f in before.findings} == {Status.MISSING}
    lines = "\n".join(record.zone_line() for record in before.to_create) + "\n"
    knot.write_zone("empty.test", lines, serial=2)
    deadline = time.monotonic() + 10
    while True:
        after = check(knot, "empty.test")
        if after.ok or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert after.ok and after.to_create == [], knot.log()
    assert {f.status for f in after.findings} == {Status.FOUND}


def test_nxdomain_says_the_domain_does_not_exist(knot: Knot) -> None:
    report = check(knot, "nothere.good.test")
    assert not report.domain_exists and not report.ok
    assert "nothere.good.test does not exist" in report.notes[0]
    assert len(report.to_create) == 8


def test_servfail_refused_and_timeout_are_errors_not_exceptions(knot: Knot, silent_port: int) -> None:
    servfail = check(knot, BROKEN)
    assert {f.status for f in servfail.findings} == {Status.ERROR}
    assert "answered SERVFAIL" in servfail.findings[0].message
    refused = check(knot, "elsewhere.test")
    assert {f.status for f in refused.findings} == {Status.ERROR}
    assert "refused to answer" in refused.findings[0].message
    started = time.monotonic()
    timeout = check_domain("good.test", make_resolver(f"127.0.0.1:{silent_port}", 0.3), Expected(REGION, TOKENS))
    assert time.monotonic() - started < 3  # asks once, then gives up on that server
    assert {f.status for f in timeout.findings} == {Status.ERROR}
    assert timeout.findings[0].message == f"the name server 127.0.0.1:{silent_port} did not answer within 0.3 s"
    assert not (servfail.ok or refused.ok or timeout.ok)
    assert servfail.to_create == refused.to_create == timeout.to_create == []


# ------------------------------------------------------------------------ the command


def test_cli_ok_exit_zero(knot: Knot) -> None:
    result = run_cli("dns", "check", "good.test", "--nameserver", knot.nameserver, *TOKEN_ARGS)
    assert result.exit_code == 0, result.output
    assert "SES region us-east-1" in result.output  # from the settings' default
    assert f"found     MX    good.test  (SES receiving, required)\n                found: {SES_MX}" in result.output
    assert "Records to create:" not in result.output
    assert result.output.rstrip().endswith("OK: every required record is in place")


def test_cli_missing_records_exit_one_with_zone_lines(knot: Knot) -> None:
    result = run_cli("dns", "check", "bare.test", "--nameserver", knot.nameserver, "--mail-from", "bounce", *TOKEN_ARGS)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "missing   CNAME " + f"{TOKENS[0]}._domainkey.bare.test" in out
    create = out.split("Records to create:\n", 1)[1]
    assert create.splitlines()[:8] == [
        "; required",
        f"{TOKENS[0]}._domainkey.bare.test. 3600 IN CNAME {TOKENS[0]}.dkim.amazonses.com.",
        f"{TOKENS[1]}._domainkey.bare.test. 3600 IN CNAME {TOKENS[1]}.dkim.amazonses.com.",
        f"{TOKENS[2]}._domainkey.bare.test. 3600 IN CNAME {TOKENS[2]}.dkim.amazonses.com.",
        "; recommended",
        '_dmarc.bare.test. 3600 IN TXT "v=DMARC1; p=quarantine"',
        "bounce.bare.test. 3600 IN MX 10 feedback-smtp.us-east-1.amazonses.com.",
        'bounce.bare.test. 3600 IN TXT "v=spf1 include:amazonses.com ~all"',
    ]
    assert "FAIL (3 required record(s) missing or wrong; 3 recommended record(s) missing or wrong)" in out


def test_cli_without_tokens_explains_and_passes(knot: Knot) -> None:
    result = run_cli("dns", "check", "bare.test", "--nameserver", knot.nameserver)
    assert result.exit_code == 0, result.output
    assert "unchecked CNAME <token>._domainkey.bare.test" in result.output
    assert "DKIM not checked (no --dkim-token)" in result.output


def test_cli_wrong_records_show_found_and_replacement(knot: Knot) -> None:
    result = run_cli(
        "dns", "check", "twospf.test", "--nameserver", knot.nameserver, "--region", "us-east-1", *TOKEN_ARGS
    )
    assert result.exit_code == 1, result.output
    assert 'found: "v=spf1 include:amazonses.com ~all"' in result.output
    assert 'found: "v=spf1 mx include:_spf.example.net -all"' in result.output
    assert (
        '; remove twospf.test. TXT "v=spf1 include:amazonses.com ~all"\n'
        '; remove twospf.test. TXT "v=spf1 mx include:_spf.example.net -all"\n'
        'twospf.test. 3600 IN TXT "v=spf1 mx include:_spf.example.net include:amazonses.com ~all"'
    ) in result.output


def test_cli_dns_failures_are_messages(knot: Knot, silent_port: int) -> None:
    result = run_cli("dns", "check", "nothere.good.test", "--nameserver", knot.nameserver)
    assert result.exit_code == 1
    assert "nothere.good.test does not exist in DNS (NXDOMAIN" in result.output
    result = run_cli("dns", "check", BROKEN, "--nameserver", knot.nameserver)
    assert result.exit_code == 1 and "SERVFAIL" in result.output and "Traceback" not in result.output
    result = run_cli("dns", "check", "elsewhere.test", "--nameserver", knot.nameserver)
    assert result.exit_code == 1 and "REFUSED" in result.output
    result = run_cli("dns", "check", "good.test", "--nameserver", f"127.0.0.1:{silent_port}", "--timeout", "0.5")
    assert result.exit_code == 1
    assert f"the name server 127.0.0.1:{silent_port} did not answer within 0.5 s" in result.output
    assert "could not be checked" in result.output


def test_cli_bad_input_is_a_usage_error() -> None:
    for args in (
        ["not a domain"],
        ["good.test", "--nameserver", "127.0.0.1:99999"],
        ["good.test", "--dkim-token", "a.b"],
        ["good.test", "--mail-from", "elsewhere.example"],
    ):
        result = run_cli("dns", "check", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


def test_a_real_subprocess_exit_status(knot: Knot) -> None:
    """The installed entry point, as an operator runs it."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_") and k != "AWS_REGION"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forwarder.cli.main",
            "dns",
            "check",
            "wrongmx.test",
            "--nameserver",
            knot.nameserver,
            *TOKEN_ARGS,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 1, done.stderr
    assert "wrong     MX    wrongmx.test" in done.stdout
    assert "wrongmx.test. 3600 IN MX 10 inbound-smtp.us-east-1.amazonaws.com." in done.stdout
