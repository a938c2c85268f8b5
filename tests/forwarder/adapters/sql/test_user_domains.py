"""Users' own domains on the forwarder side (forwarder/adapters/sql/user_domains.py, forwarder/ops/domain_checks.py,
``othermail domains recheck``).

- the status transitions, as a table;
- the catch-all: the first message to an unknown address creates the alias once, also when many
  messages race for it (on SQLite, PostgreSQL and MariaDB), and only where it may;
- what the forwarder asks on the hot path (accepted domains, suspension), cached;
- the hooks in SqlDirectory (catch-all on resolve, suspension, accepted domains) and the SMTP
  listener's RCPT check;
- ``othermail domains recheck`` against a real name server (Knot, tests/knot_zones.py), with and
  without SES (moto).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.senders import MemorySender
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.adapters.sql.user_domains import (
    CATCH_ALL_LABEL,
    CheckResult,
    Transition,
    UserDomains,
    create_catch_all_alias,
    next_status,
)
from forwarder.adapters.stores import LocalStore
from forwarder.cli.main import cli
from forwarder.core import Outcome, Policy
from forwarder.errors import DatabaseUnavailable
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.ops.domain_checks import ownership_record, records_to_publish
from models import Alias, Destination, User, UserDomain, make_engine, make_session_factory, utcnow
from tests.deploy.aws_stack import easy_dkim_like_ses
from tests.knot_zones import KnotZones, knot_zones
from tests.support.databases import migrate
from tests.support.races import race

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=72)
PASS, FAIL, UNKNOWN = CheckResult.PASS, CheckResult.FAIL, CheckResult.UNKNOWN
REGION = "us-east-1"

# --------------------------------------------------------------------------- the state transitions

EARLIER = NOW - timedelta(hours=10)
LONG_AGO = NOW - timedelta(hours=72)  # exactly the grace period: suspended

TRANSITIONS = [
    # status, failing_since, result -> status, failing_since
    ("pending", None, PASS, "verified", None),
    ("pending", None, FAIL, "pending", None),
    ("pending", None, UNKNOWN, "pending", None),
    ("verified", None, PASS, "verified", None),
    ("verified", None, FAIL, "failing", NOW),
    ("verified", None, UNKNOWN, "verified", None),
    ("failing", EARLIER, PASS, "verified", None),
    ("failing", EARLIER, FAIL, "failing", EARLIER),
    ("failing", EARLIER, UNKNOWN, "failing", EARLIER),
    ("failing", LONG_AGO, FAIL, "suspended", LONG_AGO),
    ("failing", LONG_AGO + timedelta(seconds=1), FAIL, "failing", LONG_AGO + timedelta(seconds=1)),
    ("failing", LONG_AGO, UNKNOWN, "failing", LONG_AGO),  # no answer is no proof: not suspended
    ("failing", None, FAIL, "failing", NOW),  # a row without its start: the grace starts now
    ("suspended", LONG_AGO, FAIL, "suspended", LONG_AGO),
    ("suspended", LONG_AGO, UNKNOWN, "suspended", LONG_AGO),
    ("suspended", LONG_AGO, PASS, "verified", None),
]


@pytest.mark.parametrize("status, since, result, new_status, new_since", TRANSITIONS)
def test_status_transitions(
    status: str, since: datetime | None, result: CheckResult, new_status: str, new_since: datetime | None
) -> None:
    assert next_status(status, since, result, NOW, GRACE) == Transition(new_status, new_since)


def test_a_zero_grace_period_suspends_at_the_first_failure() -> None:
    assert next_status("verified", None, FAIL, NOW, timedelta(0)) == Transition("suspended", NOW)
    assert next_status("verified", None, FAIL, NOW, timedelta(0)).forwards is False
    assert next_status("verified", None, FAIL, NOW, GRACE).forwards is True


def test_the_records_to_publish() -> None:
    assert (
        ownership_record("ann.test", "abc").zone_line()
        == '_othermail.ann.test. 3600 IN TXT "othermail-verification=abc"'
    )
    assert [r.zone_line() for r in records_to_publish("ann.test", "abc", REGION, (), ses=False)] == [
        '_othermail.ann.test. 3600 IN TXT "othermail-verification=abc"'
    ]
    with_ses = records_to_publish("ann.test", "abc", REGION, ("t1", "t2", "t3"), ses=True)
    assert [r.purpose for r in with_ses] == [
        "ownership",
        "SES receiving",
        "SPF",
        "DKIM 1/3",
        "DKIM 2/3",
        "DKIM 3/3",
        "DMARC",
        "MAIL FROM MX",
        "MAIL FROM SPF",
    ]


# ---------------------------------------------------------------------------------- the catch-all


@contextlib.contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def owner_with_domain(
    db: Session,
    name: str = "ann.test",
    status: str = "verified",
    catch_all: bool = True,
    email: str = "ann@example.org",
) -> User:
    user = User(email=email)
    db.add(user)
    db.flush()
    db.add_all(
        [
            Destination(user_id=user.id, email=f"home@{email.split('@')[1]}", verified_at=NOW),
            Destination(user_id=user.id, email=f"work@{email.split('@')[1]}", verified_at=NOW),
            Destination(user_id=user.id, email=f"new@{email.split('@')[1]}"),  # not verified: never a target
            UserDomain(user_id=user.id, name=name, verification_token="t", status=status, catch_all=catch_all),
        ]
    )
    db.commit()
    return user


def aliases_on(engine: Engine, domain: str) -> list[Alias]:
    with make_session_factory(engine)() as db:
        found = list(db.scalars(select(Alias).where(Alias.address.like(f"%@{domain}")).order_by(Alias.id)))
        for alias in found:
            _ = [d.email for d in alias.destinations]
        return found


def test_the_catch_all_creates_the_alias_once_under_concurrency(migrated_url: str) -> None:
    with engine_for(migrated_url) as engine:
        with make_session_factory(engine)() as db:
            user_id = owner_with_domain(db).id
        domains = UserDomains(engine.connect, ttl=60)
        threads = 8
        results = race([lambda: domains.catch_all("Shop@ANN.test", NOW)] * threads, within=60)
        assert results == [True] * threads
        [alias] = aliases_on(engine, "ann.test")
        assert (alias.address, alias.user_id, alias.label, alias.enabled) == (
            "shop@ann.test",
            user_id,
            CATCH_ALL_LABEL,
            True,
        )
        assert sorted(d.email for d in alias.destinations) == ["home@example.org", "work@example.org"]
        assert domains.catch_all("shop@ann.test", NOW) is True  # exists already: nothing new
        assert len(aliases_on(engine, "ann.test")) == 1


@pytest.mark.parametrize(
    "address", ["postmaster@ann.test", "a+b@ann.test", ".x@ann.test", "nobody@other.test", "no-at-sign"]
)
def test_the_catch_all_creates_nothing_an_alias_could_not_be(tmp_path: Path, address: str) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with engine_for(url) as engine:
        with make_session_factory(engine)() as db:
            owner_with_domain(db)
        assert UserDomains(engine.connect).catch_all(address, NOW) is False
        with engine.connect() as connection:
            assert create_catch_all_alias(connection, address, NOW) is False
        assert aliases_on(engine, "ann.test") == []


@pytest.mark.parametrize("status, catch_all", [("pending", True), ("suspended", True), ("verified", False)])
def test_the_catch_all_works_on_a_serving_catch_all_domain_only(tmp_path: Path, status: str, catch_all: bool) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with engine_for(url) as engine:
        with make_session_factory(engine)() as db:
            owner_with_domain(db, status=status, catch_all=catch_all)
        with engine.connect() as connection:
            assert create_catch_all_alias(connection, "shop@ann.test", NOW) is False
        assert UserDomains(engine.connect).catch_all_accepts("shop@ann.test") is False
        assert aliases_on(engine, "ann.test") == []


def test_the_catch_all_finds_the_owner_among_other_accounts_pending_claims(tmp_path: Path) -> None:
    """Issue 12.11: several accounts may claim a name; only the one that proved it (and serves it) counts."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with engine_for(url) as engine:
        with make_session_factory(engine)() as db:
            owner_with_domain(db, status="pending", catch_all=True, email="early@claim.example")  # a claim first
            owner = owner_with_domain(db, email="ann@example.org")
            owner_with_domain(db, status="pending", catch_all=True, email="late@claim.example")
            owner_id = owner.id
        with engine.connect() as connection:
            assert create_catch_all_alias(connection, "shop@ann.test", NOW) is True
        [alias] = aliases_on(engine, "ann.test")
        assert alias.user_id == owner_id
        assert sorted(d.email for d in alias.destinations) == ["home@example.org", "work@example.org"]
        assert UserDomains(engine.connect).entry("ann.test").status == "verified"  # type: ignore[union-attr]


def test_the_catch_all_reads_the_domain_fresh_and_respects_the_alias_limit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with engine_for(url) as engine:
        sessions = make_session_factory(engine)
        with sessions() as db:
            user = owner_with_domain(db)
            db.add_all([Alias(address=f"a{n}@othermail.example", user_id=user.id) for n in range(3)])
            db.commit()
        domains = UserDomains(engine.connect, ttl=3600, max_live_aliases=4)
        assert domains.catch_all_accepts("one@ann.test")  # cached from here on
        with sessions() as db:
            db.scalars(select(UserDomain)).one().catch_all = False
            db.commit()
        assert domains.catch_all_accepts("one@ann.test")  # the cache still says so...
        assert domains.catch_all("one@ann.test", NOW) is False  # ...but creation reads the row again
        with sessions() as db:
            db.scalars(select(UserDomain)).one().catch_all = True
            db.commit()
        assert domains.catch_all("one@ann.test", NOW) is True  # the fourth live alias
        assert domains.catch_all("two@ann.test", NOW) is False  # a fifth would pass the limit
        with sessions() as db:
            for destination in db.scalars(select(Destination)):
                destination.verified_at = None
            db.scalars(select(Alias).where(Alias.address == "a0@othermail.example")).one().deleted_at = NOW
            db.commit()
        assert domains.catch_all("two@ann.test", NOW) is False  # nowhere to forward to
        assert [a.address for a in aliases_on(engine, "ann.test")] == ["one@ann.test"]


def test_the_forwarders_view_of_user_domains_is_cached(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    clock = [0.0]
    with engine_for(url) as engine:
        sessions = make_session_factory(engine)
        with sessions() as db:
            owner_with_domain(db, "ann.test", "verified")
            owner_with_domain(db, "bob.test", "suspended", email="bob@example.net")
            owner_with_domain(db, "new.test", "pending", email="new@example.net")
        domains = UserDomains(engine.connect, ttl=30, monotonic=lambda: clock[0])
        assert domains.names() == ("ann.test", "bob.test")
        assert domains.accepts("ANN.test.") and domains.accepts("bob.test") and not domains.accepts("new.test")
        assert not domains.accepts("othermail.example")
        assert domains.suspended("x@bob.test") and not domains.suspended("x@ann.test")
        assert not domains.suspended("x@othermail.example")
        with sessions() as db:
            db.scalars(select(UserDomain).where(UserDomain.name == "new.test")).one().status = "verified"
            db.commit()
        clock[0] = 29.9
        assert not domains.accepts("new.test")
        clock[0] = 30.0
        assert domains.accepts("new.test")


# ------------------------------------------------------------------------------ othermail domains recheck

ZONES = ("good.test", "broken.test", "late.test", "back.test", "waiting.test")


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotZones]:
    with knot_zones(tmp_path_factory.mktemp("knot"), ZONES) as server:
        yield server


def run(url: str, *args: str, sender: str = "outbox"):  # type: ignore[no-untyped-def]
    env = {"OTHERMAIL_DATABASE_URL": url, "OTHERMAIL_SENDER": sender, "OTHERMAIL_AWS_REGION": REGION}
    return CliRunner().invoke(cli, ["domains", "recheck", *args], env=env, catch_exceptions=False)


def rows(url: str) -> dict[str, tuple[str, datetime | None]]:
    with engine_for(url) as engine, make_session_factory(engine)() as db:
        return {d.name: (d.status, d.failing_since) for d in db.scalars(select(UserDomain))}


def seed(url: str, domains: dict[str, tuple[str, datetime | None]], ses: bool = False) -> None:
    with engine_for(url) as engine, make_session_factory(engine)() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        for name, (status, since) in domains.items():
            domain = UserDomain(
                user_id=user.id, name=name, verification_token=f"token-{name}", status=status, failing_since=since
            )
            if ses:
                domain.tokens = (
                    f"{name.split('.')[0]}dkim1",
                    f"{name.split('.')[0]}dkim2",
                    f"{name.split('.')[0]}dkim3",
                )
                domain.ses_identity_created_at = utcnow()
            db.add(domain)
        db.commit()


def publish(knot: KnotZones, name: str, ses: bool = False) -> None:
    tokens = (f"{name.split('.')[0]}dkim1", f"{name.split('.')[0]}dkim2", f"{name.split('.')[0]}dkim3")
    knot.set_zone(name, [r.zone_line() for r in records_to_publish(name, f"token-{name}", REGION, tokens, ses=ses)])


def test_recheck_moves_each_domain_and_leaves_pending_ones_alone(tmp_path: Path, knot: KnotZones) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    now = utcnow()
    seed(
        url,
        {
            "good.test": ("verified", None),
            "broken.test": ("verified", None),
            "late.test": ("failing", now - timedelta(hours=80)),
            "back.test": ("suspended", now - timedelta(days=9)),
            "waiting.test": ("pending", None),
        },
    )
    for name in ("good.test", "back.test", "waiting.test"):
        publish(knot, name)
    for name in ("broken.test", "late.test"):
        knot.set_zone(name, [])

    result = run(url, "--nameserver", knot.nameserver, "--grace-hours", "72")
    assert result.exit_code == 0, result.output
    after = rows(url)
    assert after["good.test"] == ("verified", None)
    assert after["broken.test"][0] == "failing" and after["broken.test"][1] is not None
    assert after["late.test"] == ("suspended", now - timedelta(hours=80))
    assert after["back.test"] == ("verified", None)
    assert after["waiting.test"] == ("pending", None)  # the owner verifies it in the web app
    lines = result.output.splitlines()
    assert "good.test: verified -> verified (check pass)" in lines
    assert any(line.startswith("broken.test: verified -> failing (check fail): ownership record") for line in lines)
    assert "late.test: failing -> suspended" in result.output and "back.test: suspended -> verified" in result.output
    assert lines[-1] == "4 domain(s) checked: 2 verified, 1 failing, 1 suspended, 0 could not be checked"

    # a failing domain fixed in time is verified again; one still broken is suspended after the grace
    publish(knot, "broken.test")
    result = run(url, "--nameserver", knot.nameserver, "--grace-hours", "0")
    assert result.exit_code == 0, result.output
    assert rows(url)["broken.test"] == ("verified", None) and rows(url)["late.test"][0] == "suspended"


def test_recheck_without_an_answer_changes_nothing_and_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    seed(url, {"good.test": ("verified", None), "late.test": ("failing", NOW)})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        result = run(
            url, "--nameserver", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.3", "--grace-hours", "0"
        )
    assert result.exit_code == 1, result.output
    assert rows(url) == {"good.test": ("verified", None), "late.test": ("failing", NOW)}
    assert "2 could not be checked" in result.output and "did not answer in time" in result.output


def test_recheck_with_ses_counts_sess_verdict(tmp_path: Path, knot: KnotZones, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    easy_dkim_like_ses(monkeypatch)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    seed(
        url,
        {
            "good.test": ("verified", None),
            "back.test": ("suspended", utcnow() - timedelta(days=5)),
            "late.test": ("verified", None),
        },
        ses=True,
    )
    for name in ("good.test", "back.test", "late.test"):
        publish(knot, name, ses=True)
    with mock_aws():
        from moto.ses.models import ses_backends

        sesv2 = boto3.client("sesv2", region_name=REGION)
        for name in ("good.test", "back.test"):
            sesv2.create_email_identity(EmailIdentity=name)
        ses_backends[DEFAULT_ACCOUNT_ID][REGION].email_identities["good.test"].verified_for_sending_status = True
        result = run(url, "--nameserver", knot.nameserver, "--grace-hours", "0", sender="ses")
    assert result.exit_code == 0, result.output
    after = rows(url)
    assert after["good.test"] == ("verified", None)
    assert after["back.test"][0] == "suspended"  # the DNS is right, but SES has not verified its DKIM
    assert "SES has not verified the DKIM records yet" in result.output
    assert after["late.test"][0] == "suspended"  # its SES identity is gone (deleted by hand in SES)
    assert "SES has no identity for the domain any more: remove the domain and add it again" in result.output


def test_recheck_counts_no_domain_on_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    result = run(url, "--nameserver", "127.0.0.1:53")
    assert result.exit_code == 0 and "0 domain(s) checked" in result.output
    with engine_for(url) as engine, engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(UserDomain)).scalar() == 0


# ------------------------------------------------------- the forwarder: SqlDirectory and the SMTP listener

RAW = b"From: Jane <jane@example.net>\r\nTo: x@ann.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Engine, SqlDirectory, Forwarder, MemorySender]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with engine_for(url) as engine:
        with make_session_factory(engine)() as db:
            owner_with_domain(db, "ann.test", "verified", catch_all=True)
            owner_with_domain(db, "bob.test", "verified", catch_all=False, email="bob@example.net")
            owner_with_domain(db, "new.test", "pending", catch_all=True, email="new@example.net")
        directory = SqlDirectory(make_session_factory(engine))
        directory.user_domains = UserDomains(directory._connection, ttl=0)  # every change seen at once
        sender = MemorySender()
        yield engine, directory, Forwarder(directory, sender, Policy(), utcnow), sender


def test_mail_to_a_catch_all_domain_creates_the_alias_and_is_forwarded(box) -> None:  # type: ignore[no-untyped-def]
    engine, directory, forwarder, sender = box
    assert directory.accepts_domain("ann.test") and directory.accepts_domain("bob.test")
    assert not directory.accepts_domain("new.test") and not directory.accepts_domain("elsewhere.test")
    assert directory.exists("fresh@ann.test") and not directory.exists("fresh@bob.test")
    assert not directory.exists("postmaster@ann.test") and not directory.exists("fresh@new.test")
    assert aliases_on(engine, "ann.test") == []  # RCPT creates nothing

    reports = forwarder.process(RAW, Inbound("m1", ("Fresh@ann.test",)))
    assert [r.outcome for r in reports] == [Outcome.FORWARDED, Outcome.FORWARDED]
    assert sorted(m.recipient for m in sender.sent) == ["home@example.org", "work@example.org"]
    [alias] = aliases_on(engine, "ann.test")
    assert alias.address == "fresh@ann.test" and alias.message_count == 1
    forwarder.process(RAW, Inbound("m2", ("fresh@ann.test",)))
    assert [a.message_count for a in aliases_on(engine, "ann.test")] == [2]

    [report] = forwarder.process(RAW, Inbound("m3", ("fresh@bob.test",)))  # no catch-all there
    assert report.outcome is Outcome.DROPPED_UNKNOWN_ALIAS and aliases_on(engine, "bob.test") == []


def test_a_suspended_domain_drops_its_mail_until_it_is_verified_again(box) -> None:  # type: ignore[no-untyped-def]
    engine, directory, forwarder, sender = box
    forwarder.process(RAW, Inbound("m1", ("shop@ann.test",)))
    assert len(sender.sent) == 2
    with make_session_factory(engine)() as db:
        db.scalars(select(UserDomain).where(UserDomain.name == "ann.test")).one().status = "suspended"
        db.commit()
    assert directory.accepts_domain("ann.test")  # accepted, then dropped with a recorded outcome
    [report] = forwarder.process(RAW, Inbound("m2", ("shop@ann.test",)))
    assert report.outcome is Outcome.DROPPED_DISABLED and len(sender.sent) == 2
    [report] = forwarder.process(RAW, Inbound("m3", ("other@ann.test",)))  # no catch-all while suspended
    assert report.outcome is Outcome.DROPPED_UNKNOWN_ALIAS
    with make_session_factory(engine)() as db:
        db.scalars(select(UserDomain).where(UserDomain.name == "ann.test")).one().status = "failing"
        db.commit()
    [first, _second] = forwarder.process(RAW, Inbound("m4", ("shop@ann.test",)))
    assert first.outcome is Outcome.FORWARDED  # failing, within the grace period: still forwarded
    with make_session_factory(engine)() as db:
        db.delete(db.scalars(select(UserDomain).where(UserDomain.name == "ann.test")).one())
        db.commit()
    assert not directory.accepts_domain("ann.test")


def test_the_smtp_listener_accepts_users_verified_domains(box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import smtplib

    _engine, directory, _forwarder, _sender = box
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    dispatched: list[str] = []
    handler = IngressHandler(
        ("othermail.example",), spool, directory.exists, dispatched.append, accepts_domain=directory.accepts_domain
    )
    listener = SmtpListener(handler, "127.0.0.1", 0, 100_000)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            client.ehlo()
            client.mail("jane@example.net")
            assert client.rcpt("new-one@ann.test")[0] == 250  # the catch-all will create it
            assert client.rcpt("nobody@bob.test")[:1] == (550,) and b"5.1.1" in client.rcpt("nobody@bob.test")[1]
            assert b"Relaying denied" in client.rcpt("fresh@new.test")[1]  # pending: not ours yet
            assert b"Relaying denied" in client.rcpt("x@elsewhere.test")[1]
            assert client.data(RAW)[0] == 250
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            directory.user_domains = UserDomains(_broken_connection, ttl=0)
            client.ehlo()
            client.mail("jane@example.net")
            assert client.rcpt("x@ann.test")[0] == 451  # the database cannot say: the sender retries
    finally:
        listener.stop()
    assert len(dispatched) == 1


@contextlib.contextmanager
def _broken_connection() -> Iterator[object]:
    raise DatabaseUnavailable("database error: OperationalError")
    yield  # pragma: no cover
