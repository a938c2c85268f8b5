"""Users' own domains in the web app (web/domains.py, web/services/domains.py).

DNS is a real name server: Knot (tests/knot_zones.py) serves the test's zones on 127.0.0.1, and
the app asks it through ``DNS_NAMESERVER``; the records a test publishes are the ones the domain's
page lists. SES is moto's (``mock_aws``, dummy credentials), made to hand out Easy DKIM tokens as
real SES does (tests/deploy/aws_stack.py's ``easy_dkim_like_ses``); SES's own verdict on a domain
("verified for sending") is set on moto's identity when a test needs SES to have verified it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.runtime import Runtime
from forwarder.settings import Settings
from models import Alias, User, UserDomain, utcnow
from tests.deploy.aws_stack import easy_dkim_like_ses
from tests.knot_zones import KnotZones, knot_zones
from tests.support.databases import migrate
from tests.web.conftest import PASSWORD, post, signup
from web import create_app

REGION = "us-east-1"
ZONES = ("ann.test", "late.test", "plain.test", "other.test")
LIST = "/domains/"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotZones]:
    with knot_zones(tmp_path_factory.mktemp("knot"), ZONES) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_zones(knot: KnotZones) -> None:
    for zone in ZONES:
        knot.set_zone(zone, [])


@pytest.fixture
def sesv2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    easy_dkim_like_ses(monkeypatch)
    with mock_aws():
        yield boto3.client("sesv2", region_name=REGION)


class OneClient:
    """An AWS session whose one client is the given one: how a test hands the app its SESv2 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, _service: str) -> Any:
        return self._client


def make_app(tmp_path: Path, sender: str, nameserver: str, ses: Any = None, **config: object) -> Flask:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        domains=("othermail.example", "alias.example"),
        sender=sender,
        outbox=tmp_path / "outbox",
        aws_region=REGION,
    )
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "SETTINGS": settings,
            "SERVER_NAME": "othermail.test",
            "DNS_NAMESERVER": nameserver,
            "DNS_TIMEOUT": 2.0,
            "RATE_LIMITS": {"signup": (50, 3600), "signin": (50, 900), "reset": (50, 3600)},
            **config,
        },
        # the service's own mail (sign-up...) in memory; SES is moto unless the test hands in a client
        runtime=Runtime.build(
            settings, sender=MemorySender(), **({} if ses is None else {"aws_session": OneClient(ses)})
        ),
    )
    return app


@pytest.fixture
def ses_app(tmp_path: Path, knot: KnotZones, sesv2: object) -> Iterator[Flask]:
    app = make_app(tmp_path, "ses", knot.nameserver)
    yield app
    app.extensions["othermail.engine"].dispose()


@pytest.fixture
def ses_app_using(tmp_path: Path, knot: KnotZones, sesv2: object) -> Iterator[Callable[[Any], Flask]]:
    """The SES app, built with the SESv2 client a test gives."""
    apps: list[Flask] = []

    def build(client: Any) -> Flask:
        apps.append(make_app(tmp_path, "ses", knot.nameserver, ses=client))
        return apps[-1]

    yield build
    for app in apps:
        app.extensions["othermail.engine"].dispose()


@pytest.fixture
def plain_app(tmp_path: Path, knot: KnotZones, sesv2: object) -> Iterator[Flask]:
    """One box sending through the local outbox: no SES (moto is there to prove nothing reaches it)."""
    app = make_app(tmp_path, "outbox", knot.nameserver)
    yield app
    app.extensions["othermail.engine"].dispose()


# --- helpers -------------------------------------------------------------------------------------


def db(app: Flask):  # type: ignore[no-untyped-def]
    from web.db import session

    return session()


def signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert signup(client, email).status_code == 302
    return client


def user_id(app: Flask, email: str) -> int:
    with app.app_context():
        return db(app).scalars(select(User.id).where(User.email == email)).one()


def add_destination(app: Flask, email: str, address: str) -> int:
    from tests.web.test_aliases_pages import add_destination as add

    return add(app, user_id(app, email), address)


def add_domain(client: FlaskClient, name: str):  # type: ignore[no-untyped-def]
    return post(client, LIST, {"name": name})


def domain_row(app: Flask, name: str) -> UserDomain | None:
    with app.app_context():
        found = db(app).scalars(select(UserDomain).where(UserDomain.name == name)).first()
        if found is not None:
            db(app).expunge(found)
        return found


def added(client: FlaskClient, app: Flask, name: str) -> UserDomain:
    response = add_domain(client, name)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    match = re.search(r"/domains/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    row = domain_row_of(app, int(match.group(1)))  # several accounts may claim one name
    assert row.name == name.strip().rstrip(".").lower().encode("idna").decode() or row.name.startswith("xn--")
    return row


def zone_lines(page: str) -> list[str]:
    """The records the page says to publish, as zone-file lines."""
    block = re.search(r'<pre class="zone"[^>]*>(.*?)</pre>', page, re.S)
    assert block, page[:3000]
    import html

    return [line.split("   ;")[0] for line in html.unescape(block.group(1)).splitlines() if line.strip()]


def verify(client: FlaskClient, domain_id: int):  # type: ignore[no-untyped-def]
    return post(client, f"/domains/{domain_id}/verify", {}, page=f"/domains/{domain_id}")


def statuses(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-purpose="([^"]+)" data-status="([^"]+)"', page))


def bearer(app: Flask, email: str) -> dict[str, str]:
    from web.services import tokens

    with app.app_context():
        user = db(app).get(User, user_id(app, email))
        _token, secret = tokens.create(db(app), user, "test", "write", None)
    return {"Authorization": f"Bearer {secret}"}


def ses_verifies(name: str) -> None:
    """SES's own verification of the domain's DKIM records (it polls DNS by itself)."""
    from moto.ses.models import ses_backends

    ses_backends[DEFAULT_ACCOUNT_ID][REGION].email_identities[name].verified_for_sending_status = True


def proved(client: FlaskClient, app: Flask, knot: KnotZones, row: UserDomain) -> str:
    """Publish the ownership record the page lists and verify it: the page then (with SES) lists
    every record, which it returns."""
    knot.set_zone(row.name, zone_lines(client.get(f"/domains/{row.id}").get_data(as_text=True))[:1])
    assert verify(client, row.id).status_code == 200
    return client.get(f"/domains/{row.id}").get_data(as_text=True)


def verified_domain(client: FlaskClient, app: Flask, knot: KnotZones, name: str) -> UserDomain:
    row = added(client, app, name)
    knot.set_zone(name, zone_lines(proved(client, app, knot, row)))
    if app.config["SETTINGS"].sender == "ses":
        ses_verifies(name)
    response = verify(client, row.id)
    assert response.status_code == 200
    after = domain_row(app, name)
    assert after is not None and after.status == "verified", after and after.last_problem
    return after


# --- adding a domain -----------------------------------------------------------------------------


def test_the_pages_need_a_session(ses_app: Flask) -> None:
    client = ses_app.test_client()
    assert client.get(LIST).status_code == 302
    assert client.get("/domains/1").status_code == 302


def test_adding_a_domain_creates_no_ses_identity_until_its_ownership_record_verifies(
    ses_app: Flask, knot: KnotZones, sesv2: Any
) -> None:
    """Issue 12.11: each claim created an SES identity at once, for any name (gmail.com)."""
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, " Ann.TEST. ")
    assert (row.name, row.status, row.catch_all) == ("ann.test", "pending", False)
    assert re.fullmatch(r"[0-9a-f]{32}", row.verification_token)
    assert row.tokens == () and row.ses_identity_created_at is None and row.owned_name is None
    assert sesv2.list_email_identities()["EmailIdentities"] == []
    page = client.get(f"/domains/{row.id}").get_data(as_text=True)
    assert zone_lines(page) == [f'_othermail.ann.test. 3600 IN TXT "othermail-verification={row.verification_token}"']
    assert "pending" in page and "Verify now" in page

    page = verify(client, row.id).get_data(as_text=True)  # nothing published yet
    assert statuses(page) == {"ownership": "missing"}
    assert sesv2.list_email_identities()["EmailIdentities"] == []

    page = proved(client, ses_app, knot, row)
    after = domain_row(ses_app, "ann.test")
    assert after is not None and after.owned_name == "ann.test" and after.status == "pending"
    identity = sesv2.get_email_identity(EmailIdentity="ann.test")
    assert identity["IdentityType"] == "DOMAIN"
    assert after.tokens == tuple(identity["DkimAttributes"]["Tokens"]) and len(after.tokens) == 3
    assert after.ses_identity_created_at is not None
    # the tag the serverless forwarder's role needs to send as the domain (deploy/aws/othermail.yaml)
    assert identity["Tags"] == [{"Key": "othermail", "Value": "user-domain"}]
    lines = zone_lines(page)
    assert lines[0] == f'_othermail.ann.test. 3600 IN TXT "othermail-verification={row.verification_token}"'
    assert "ann.test. 3600 IN MX 10 inbound-smtp.us-east-1.amazonaws.com." in lines
    assert 'ann.test. 3600 IN TXT "v=spf1 include:amazonses.com ~all"' in lines
    for token in after.tokens:
        assert f"{token}._domainkey.ann.test. 3600 IN CNAME {token}.dkim.amazonses.com." in lines
    assert '_dmarc.ann.test. 3600 IN TXT "v=DMARC1; p=quarantine"' in lines
    assert len(lines) == 1 + 2 + 3 + 3  # ownership, MX and SPF, DKIM, DMARC and MAIL FROM (recommended)
    listing = client.get(LIST).get_data(as_text=True)
    assert "ann.test" in listing and "pending" in listing


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "localhost",
        "no spaces.org",
        "a..b.org",
        "-a.org",
        "a-.org",
        "under_score.org",
        "1.2.3.4",
        "example.org/path",
        "ann@ann.test",
        "ann.test\x00",
        "othermail.example",
        "OTHERMAIL.example.",
        "x.othermail.example",
        "deep.sub.alias.example",
        "x" * 64 + ".org",
    ],
)
def test_names_that_are_not_the_users_to_add_are_refused(ses_app: Flask, sesv2: Any, name: str) -> None:
    client = signed_in(ses_app, "ann@example.org")
    response = add_domain(client, name)
    assert response.status_code == 400, name
    with ses_app.app_context():
        assert db(ses_app).scalars(select(UserDomain)).all() == []
    assert sesv2.list_email_identities()["EmailIdentities"] == []


def test_an_international_name_is_stored_in_ascii(ses_app: Flask) -> None:
    client = signed_in(ses_app, "ann@example.org")
    assert add_domain(client, "Bücher.example").status_code == 302
    assert domain_row(ses_app, "xn--bcher-kva.example") is not None


def test_a_pending_claim_blocks_nobody_and_the_first_to_prove_the_domain_holds_it(
    ses_app: Flask, knot: KnotZones, sesv2: Any
) -> None:
    """Issue 12.11: a claim never proved blocked the name for everyone for a week, and the refusal
    said who had it."""
    ann, bob, cat = (signed_in(ses_app, f"{n}@example.org") for n in ("ann", "bob", "cat"))
    anns = added(ann, ses_app, "ann.test")
    assert add_domain(ann, "ANN.test").status_code == 409  # her own claim, twice
    bobs = added(bob, ses_app, "ann.test")  # a pending claim blocks nobody
    assert bobs.id != anns.id and bobs.verification_token != anns.verification_token
    assert sesv2.list_email_identities()["EmailIdentities"] == []

    proved(bob, ses_app, knot, bobs)  # bob proves it first
    with ses_app.app_context():
        rows = {r.user_id: r for r in db(ses_app).scalars(select(UserDomain).where(UserDomain.name == "ann.test"))}
    assert rows[user_id(ses_app, "bob@example.org")].owned_name == "ann.test"
    assert rows[user_id(ses_app, "ann@example.org")].owned_name is None

    ann_lines = zone_lines(ann.get(f"/domains/{anns.id}").get_data(as_text=True))[:1]
    knot.set_zone("ann.test", [*zone_lines(bob.get(f"/domains/{bobs.id}").get_data(as_text=True))[:1], *ann_lines])
    response = verify(ann, anns.id)  # her record is there too, but the domain is taken
    refused = response.get_data(as_text=True)
    assert response.status_code == 409
    response = add_domain(cat, "ann.test")
    assert response.status_code == 409
    for page in (refused, response.get_data(as_text=True)):  # one message, naming nobody
        assert "ann.test is already in use in this service" in page
        assert "bob" not in page and "another account" not in page
    after = domain_row_of(ses_app, anns.id)
    assert after.owned_name is None and after.status == "pending" and after.ses_identity_created_at is None
    assert [i["IdentityName"] for i in sesv2.list_email_identities()["EmailIdentities"]] == ["ann.test"]


def domain_row_of(app: Flask, row_id: int) -> UserDomain:
    with app.app_context():
        found = db(app).get(UserDomain, row_id)
        assert found is not None
        db(app).expunge(found)
        return found


class RefusingSes:
    """An SESv2 client whose every call is refused, as with a role that lacks the permission."""

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        from botocore.exceptions import ClientError

        def refuse(**_kwargs: object) -> None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDeniedException",
                        "Message": "User: arn:aws:iam::123456789012:role/web is not authorized to perform: ses:" + name,
                    }
                },
                name,
            )

        return refuse


def test_ses_refusing_the_domain_keeps_it_unproved_and_shows_no_aws_details(
    ses_app_using: Callable[[Any], Flask], knot: KnotZones
) -> None:
    ses_app = ses_app_using(RefusingSes())
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "ann.test")
    knot.set_zone("ann.test", zone_lines(client.get(f"/domains/{row.id}").get_data(as_text=True))[:1])
    response = verify(client, row.id)
    page = response.get_data(as_text=True)
    assert response.status_code == 502 and "Amazon SES did not take ann.test just now" in page
    assert "arn:aws" not in page and "123456789012" not in page
    after = domain_row(ses_app, "ann.test")
    assert after is not None and after.owned_name is None and after.ses_identity_created_at is None


class ExistingIdentity:
    """An SESv2 client for which the domain's identity exists already, with the given tags."""

    def __init__(self, tags: list[dict[str, str]]) -> None:
        self.tags = tags

    def create_email_identity(self, **_kwargs: object) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AlreadyExistsException", "Message": "exists"}}, "CreateEmailIdentity")

    def get_email_identity(self, EmailIdentity: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {"IdentityType": "DOMAIN", "Tags": self.tags, "DkimAttributes": {"Tokens": ["t1", "t2", "t3"]}}


def test_an_identity_othermail_created_before_is_taken_up_again(
    ses_app_using: Callable[[Any], Flask], knot: KnotZones
) -> None:
    ses_app = ses_app_using(ExistingIdentity([{"Key": "othermail", "Value": "user-domain"}]))
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "ann.test")
    proved(client, ses_app, knot, row)
    assert domain_row(ses_app, "ann.test").tokens == ("t1", "t2", "t3")  # type: ignore[union-attr]


@pytest.mark.parametrize("tags", [[], [{"Key": "owner", "Value": "operator"}], [{"Key": "othermail", "Value": "x"}]])
def test_an_identity_othermail_did_not_create_is_left_alone(
    ses_app_using: Callable[[Any], Flask], knot: KnotZones, tags: list[dict[str, str]]
) -> None:
    ses_app = ses_app_using(ExistingIdentity(tags))
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "ann.test")
    knot.set_zone("ann.test", zone_lines(client.get(f"/domains/{row.id}").get_data(as_text=True))[:1])
    response = verify(client, row.id)
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "already set up in this service" in page
    after = domain_row(ses_app, "ann.test")
    assert after is not None and after.owned_name is None and after.tokens == ()


# --- verification against a real name server -----------------------------------------------------


def test_verify_now_follows_the_records_and_sess_verdict(ses_app: Flask, knot: KnotZones) -> None:
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "ann.test")

    page = verify(client, row.id).get_data(as_text=True)
    assert statuses(page) == {"ownership": "missing"}  # only ownership is checked before it is proved
    assert "Some records are not in place yet" in page
    after = domain_row(ses_app, "ann.test")
    assert after is not None and after.status == "pending" and after.last_checked_at is not None
    assert "ownership record" in (after.last_problem or "")

    knot.set_zone("ann.test", ['_othermail.ann.test. 300 IN TXT "othermail-verification=0123"'])
    assert statuses(verify(client, row.id).get_data(as_text=True)) == {"ownership": "wrong"}

    lines = zone_lines(proved(client, ses_app, knot, row))  # proved: the SES records are listed now
    found = statuses(verify(client, row.id).get_data(as_text=True))
    assert found["ownership"] == "found" and found["SES receiving"] == "missing" and found["DKIM 1/3"] == "missing"
    assert domain_row(ses_app, "ann.test").status == "pending"  # type: ignore[union-attr]

    knot.set_zone("ann.test", lines[1:])  # everything but the ownership record
    found = statuses(verify(client, row.id).get_data(as_text=True))
    assert found["ownership"] == "missing"
    assert {found[p] for p in ("SES receiving", "SPF", "DKIM 1/3", "DKIM 2/3", "DKIM 3/3", "DMARC")} == {"found"}
    assert domain_row(ses_app, "ann.test").status == "pending"  # type: ignore[union-attr]

    knot.set_zone("ann.test", [*lines, '_othermail.ann.test. 300 IN TXT "something else"'])
    page = verify(client, row.id).get_data(as_text=True)
    assert statuses(page)["ownership"] == "found"
    assert "SES has not verified the DKIM records yet" in page
    assert domain_row(ses_app, "ann.test").status == "pending"  # type: ignore[union-attr]

    ses_verifies("ann.test")
    page = verify(client, row.id).get_data(as_text=True)
    assert "ann.test is verified." in page
    after = domain_row(ses_app, "ann.test")
    assert after is not None and after.status == "verified" and after.verified_at is not None
    assert after.last_problem == "" and after.failing_since is None


def test_an_unanswered_check_changes_nothing(tmp_path: Path, knot: KnotZones, sesv2: object) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a name server that never answers
        silent.bind(("127.0.0.1", 0))
        app = make_app(tmp_path, "ses", f"127.0.0.1:{silent.getsockname()[1]}", DNS_TIMEOUT=0.3)
        try:
            client = signed_in(app, "ann@example.org")
            row = added(client, app, "ann.test")
            with app.app_context():
                db(app).get(UserDomain, row.id).status = "verified"
                db(app).commit()
            page = verify(client, row.id).get_data(as_text=True)
            assert "could not be completed" in page and statuses(page)["ownership"] == "error"
            after = domain_row(app, "ann.test")
            assert after is not None and after.status == "verified" and after.failing_since is None
        finally:
            app.extensions["othermail.engine"].dispose()


def test_without_ses_only_ownership_is_checked_and_the_page_says_so(
    plain_app: Flask, knot: KnotZones, sesv2: Any
) -> None:
    client = signed_in(plain_app, "ann@example.org")
    row = added(client, plain_app, "plain.test")
    assert row.tokens == () and row.ses_identity_created_at is None
    assert sesv2.list_email_identities()["EmailIdentities"] == []
    page = client.get(f"/domains/{row.id}").get_data(as_text=True)
    assert "up to the operator" in page and "does not send through Amazon SES" in page
    lines = zone_lines(page)
    assert lines == [f'_othermail.plain.test. 3600 IN TXT "othermail-verification={row.verification_token}"']
    knot.set_zone("plain.test", lines)
    page = verify(client, row.id).get_data(as_text=True)
    assert statuses(page) == {"ownership": "found"}
    assert domain_row(plain_app, "plain.test").status == "verified"  # type: ignore[union-attr]
    assert sesv2.list_email_identities()["EmailIdentities"] == []


def test_a_failing_or_suspended_domain_warns_its_owner(ses_app: Flask) -> None:
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "ann.test")
    since = utcnow() - timedelta(hours=5)
    with ses_app.app_context():
        found = db(ses_app).get(UserDomain, row.id)
        found.status, found.failing_since, found.last_problem = "failing", since, "SPF (TXT ann.test): no v=spf1"
        db(ses_app).commit()
    page = client.get(f"/domains/{row.id}").get_data(as_text=True)
    assert "Mail is still forwarded during the grace period" in page
    assert (since + timedelta(hours=72)).strftime("%Y-%m-%d %H:%M") in page and "no v=spf1" in page
    with ses_app.app_context():
        db(ses_app).get(UserDomain, row.id).status = "suspended"
        db(ses_app).commit()
    assert "Mail to its aliases is dropped" in client.get(f"/domains/{row.id}").get_data(as_text=True)


# --- aliases on the domain -----------------------------------------------------------------------


def test_aliases_on_an_own_verified_domain_and_nowhere_else(ses_app: Flask, knot: KnotZones) -> None:
    ann, bob = signed_in(ses_app, "ann@example.org"), signed_in(ses_app, "bob@example.org")
    home = add_destination(ses_app, "ann@example.org", "ann@real.example")
    bob_home = add_destination(ses_app, "bob@example.org", "bob@real.example")
    domain = verified_domain(ann, ses_app, knot, "ann.test")
    pending = added(ann, ses_app, "late.test")

    assert '<option value="ann.test"' in ann.get("/aliases/new").get_data(as_text=True)
    assert 'value="late.test"' not in ann.get("/aliases/new").get_data(as_text=True)
    response = post(
        ann, "/aliases/new", {"custom": "1", "local_part": "Shop", "domain": "ann.test", "destination": str(home)}
    )
    assert response.status_code == 302
    with ses_app.app_context():
        alias = db(ses_app).scalars(select(Alias).where(Alias.address == "shop@ann.test")).one()
        assert alias.user_id == domain.user_id
    page = ann.get(f"/domains/{domain.id}").get_data(as_text=True)
    assert "1 alias on this domain" in page

    response = post(
        ann, "/aliases/new", {"custom": "1", "local_part": "x", "domain": "late.test", "destination": str(home)}
    )
    assert response.status_code == 400 and "Verify late.test first" in response.get_data(as_text=True)
    response = post(
        bob, "/aliases/new", {"custom": "1", "local_part": "mine", "domain": "ann.test", "destination": str(bob_home)}
    )
    assert response.status_code == 400
    assert "on a domain of yours you verified" in response.get_data(as_text=True)
    api = bob.post(
        "/api/v1/aliases",
        json={"domain": "ann.test", "destination_ids": [bob_home]},
        headers=bearer(ses_app, "bob@example.org"),
    )
    assert api.status_code == 400 and api.get_json()["error"]["code"] == "invalid_domain"
    api = ann.post(
        "/api/v1/aliases",
        json={"domain": "ANN.test", "local_part": "api", "destination_ids": [home]},
        headers=bearer(ses_app, "ann@example.org"),
    )
    assert api.status_code == 201 and api.get_json()["address"] == "api@ann.test"
    with ses_app.app_context():
        assert sorted(db(ses_app).scalars(select(Alias.address).where(Alias.address.like("%@ann.test")))) == [
            "api@ann.test",
            "shop@ann.test",
        ]
        db(ses_app).get(UserDomain, domain.id).status = "suspended"
        db(ses_app).commit()
    response = post(ann, "/aliases/new", {"custom": "1", "domain": "ann.test", "destination": str(home)})
    assert response.status_code == 400 and "The domain ann.test is suspended" in response.get_data(as_text=True)
    assert pending.status == "pending"


def test_a_destination_cannot_be_on_a_domain_served_here(ses_app: Flask, knot: KnotZones) -> None:
    ann = signed_in(ses_app, "ann@example.org")
    verified_domain(ann, ses_app, knot, "ann.test")
    bob = signed_in(ses_app, "bob@example.org")
    response = post(bob, "/destinations/", {"email": "bob@ann.test"})
    assert response.status_code == 400 and "not an alias" in response.get_data(as_text=True)


def test_catch_all_needs_a_verified_domain(ses_app: Flask, knot: KnotZones) -> None:
    client = signed_in(ses_app, "ann@example.org")
    row = added(client, ses_app, "late.test")
    response = post(client, f"/domains/{row.id}/catch-all", {"catch_all": "on"}, page=f"/domains/{row.id}")
    assert response.status_code == 409 and domain_row(ses_app, "late.test").catch_all is False  # type: ignore[union-attr]
    domain = verified_domain(client, ses_app, knot, "ann.test")
    response = post(client, f"/domains/{domain.id}/catch-all", {"catch_all": "on"}, page=f"/domains/{domain.id}")
    assert response.status_code == 302 and domain_row(ses_app, "ann.test").catch_all is True  # type: ignore[union-attr]
    response = post(client, f"/domains/{domain.id}/catch-all", {}, page=f"/domains/{domain.id}")
    assert response.status_code == 302 and domain_row(ses_app, "ann.test").catch_all is False  # type: ignore[union-attr]


# --- removing ------------------------------------------------------------------------------------


def test_removing_a_domain_retires_its_aliases_and_its_ses_identity(
    ses_app: Flask, knot: KnotZones, sesv2: Any
) -> None:
    client = signed_in(ses_app, "ann@example.org")
    home = add_destination(ses_app, "ann@example.org", "ann@real.example")
    domain = verified_domain(client, ses_app, knot, "ann.test")
    assert (
        post(
            client,
            "/aliases/new",
            {"custom": "1", "local_part": "shop", "domain": "ann.test", "destination": str(home)},
        ).status_code
        == 302
    )
    kept = post(client, "/aliases/new", {"custom": "1", "local_part": "kept", "destination": str(home)})
    assert kept.status_code == 302
    book = ses_app.extensions["othermail.runtime"].contacts  # issue 14: contacts and rules go with the aliases
    with ses_app.app_context():
        ids = dict(db(ses_app).execute(select(Alias.address, Alias.id)).all())
    for address in ("shop@ann.test", "kept@othermail.example"):
        book.create(ids[address], address.partition("@")[2], "friend@people.example")
        book.add_rule(user_id(ses_app, "ann@example.org"), ids[address], "block", "domain", "pest.example")
    response = post(client, f"/domains/{domain.id}/delete", {}, page=f"/domains/{domain.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(LIST)
    assert domain_row(ses_app, "ann.test") is None
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.get_email_identity(EmailIdentity="ann.test")
    with ses_app.app_context():
        shop = db(ses_app).scalars(select(Alias).where(Alias.address == "shop@ann.test")).one()
        assert shop.deleted_at is not None and not shop.enabled and shop.destinations == []
        other = db(ses_app).scalars(select(Alias).where(Alias.address == "kept@othermail.example")).one()
        assert other.deleted_at is None
    assert book.contacts_of(shop.id, "ann.test") == [] and book.rules(shop.user_id, shop.id) == []
    assert len(book.contacts_of(other.id, "othermail.example")) == 1 and len(book.rules(other.user_id, other.id)) == 1
    # the address stays reserved, even for whoever adds the domain next
    bob = signed_in(ses_app, "bob@example.org")
    bob_home = add_destination(ses_app, "bob@example.org", "bob@real.example")
    verified_domain(bob, ses_app, knot, "ann.test")
    response = post(
        bob, "/aliases/new", {"custom": "1", "local_part": "shop", "domain": "ann.test", "destination": str(bob_home)}
    )
    assert response.status_code == 409


def test_deleting_the_account_removes_its_domains(ses_app: Flask, knot: KnotZones, sesv2: Any) -> None:
    client = signed_in(ses_app, "ann@example.org")
    home = add_destination(ses_app, "ann@example.org", "ann@real.example")
    verified_domain(client, ses_app, knot, "ann.test")
    added(client, ses_app, "late.test")
    assert (
        post(
            client,
            "/aliases/new",
            {"custom": "1", "local_part": "shop", "domain": "ann.test", "destination": str(home)},
        ).status_code
        == 302
    )
    export = client.get("/account/export").get_json()
    assert [(d["name"], d["status"]) for d in export["domains"]] == [("ann.test", "verified"), ("late.test", "pending")]
    response = post(client, "/account/delete", {"password": PASSWORD, "confirm": "delete my account"}, page="/account/")
    assert response.status_code == 302
    assert domain_row(ses_app, "ann.test") is None and domain_row(ses_app, "late.test") is None
    assert sesv2.list_email_identities()["EmailIdentities"] == []
    with ses_app.app_context():
        shop = db(ses_app).scalars(select(Alias).where(Alias.address == "shop@ann.test")).one()
        assert shop.deleted_at is not None and shop.destinations == []


# --- the web app's AWS role (zappa_settings.json) ------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "production"])
def test_the_zappa_role_allows_the_domain_pages_ses_calls_and_no_other_identity(
    ses_app_using: Callable[[Any], Flask], knot: KnotZones, sesv2: Any, stage: str
) -> None:
    from botocore.exceptions import ClientError

    from tests.deploy.iam_policy import allowed
    from tests.deploy.test_zappa import stage_config

    calls: list[tuple[str, str, dict[str, str], dict[str, str]]] = []

    def tags_now(identity: str) -> dict[str, str]:
        try:
            found = sesv2.get_email_identity(EmailIdentity=identity).get("Tags") or []
        except ClientError:
            return {}
        return {t["Key"]: t["Value"] for t in found}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        identity = params["EmailIdentity"]
        requested = {t["Key"]: t["Value"] for t in params.get("Tags") or []}
        calls.append((model.name, identity, tags_now(identity), requested))

    client = boto3.client("sesv2", region_name=REGION)
    client.meta.events.register("before-parameter-build.sesv2", record)
    ses_app = ses_app_using(client)
    ann = signed_in(ses_app, "ann@example.org")
    domain = verified_domain(ann, ses_app, knot, "ann.test")
    assert post(ann, f"/domains/{domain.id}/delete", {}, page=f"/domains/{domain.id}").status_code == 302
    assert {name for name, *_ in calls} == {"CreateEmailIdentity", "GetEmailIdentity", "DeleteEmailIdentity"}

    policies = [{"Statement": stage_config(stage)["extra_permissions"]}]
    arn = f"arn:aws:ses:{REGION}:{DEFAULT_ACCOUNT_ID}:identity/"
    for name, identity, tags, requested in calls:
        assert allowed(policies, f"ses:{name}", arn + identity, tags, requested), (name, tags, requested)
        if name == "CreateEmailIdentity":  # tags given at creation need TagResource too
            assert requested == {"othermail": "user-domain"}
            assert allowed(policies, "ses:TagResource", arn + identity, tags, requested)
    # the service's own identities (and any other untagged one) cannot be deleted or made from here
    assert not allowed(policies, "ses:DeleteEmailIdentity", arn + "othermail.example", {})
    assert not allowed(policies, "ses:CreateEmailIdentity", arn + "elsewhere.example", {}, {})
    assert not allowed(policies, "ses:TagResource", arn + "othermail.example", {}, {"owner": "me"})
