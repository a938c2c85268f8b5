"""A Lambda runtime on moto (S3, SES) and a real database, with aliases to forward to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.ses.models import ses_backends

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.hosts.lambda_handler import LambdaRuntime
from forwarder.ports import Sender
from forwarder.settings import Settings
from models import Alias, make_engine, make_session_factory, utcnow
from tests.support.databases import migrate

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "othermail-inbound"
PREFIX = "inbound/"
DOMAINS = ("othermail.example", "example.com", "test.com", "coder.dev")


def corpus_dir() -> Path:
    return Path(os.environ.get("OTHERMAIL_CORPUS") or Path(__file__).parents[4] / "shared" / "corpus")


@pytest.fixture
def corpus() -> Path:
    path = corpus_dir()
    if not path.is_dir():
        pytest.skip(f"the shared corpus is not at {path} (set OTHERMAIL_CORPUS)")
    return path


@dataclass
class Env:
    session: boto3.session.Session
    database_url: str
    settings: Settings

    def runtime(self, sender: Sender | None = None, **changes: object) -> LambdaRuntime:
        runtime = LambdaRuntime.from_settings(replace(self.settings, **changes), session=self.session)
        if sender is not None:
            runtime.forwarder.sender = sender
        return runtime

    def put(self, key: str, raw: bytes, bucket: str = BUCKET) -> None:
        self.session.client("s3").put_object(Bucket=bucket, Key=key, Body=raw)

    def sent(self) -> list:
        return list(ses_backends[ACCOUNT][REGION].sent_messages)

    def alias(self, address: str, *destinations: str, **columns: object) -> int:
        """Create an alias row directly (operators may own names users may not pick)."""
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as db:
                now = utcnow()
                user = ensure_user(db, "owner@owner.example")
                targets = [ensure_destination(db, user, d, verified_at=now) for d in destinations]
                alias = Alias(address=address, user_id=user.id, created_at=now, **columns)
                alias.destinations.extend(targets)
                db.add(alias)
                db.commit()
                return alias.id
        finally:
            engine.dispose()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("s3").create_bucket(Bucket=BUCKET)
        ses = session.client("ses")
        for domain in DOMAINS:
            ses.verify_domain_identity(Domain=domain)
        yield session


def make_env(aws: boto3.session.Session, database_url: str) -> Env:
    migrate(database_url)
    settings = Settings(
        database_url=database_url, s3_bucket=BUCKET, s3_prefix=PREFIX, domains=DOMAINS, aws_region=REGION
    )
    return Env(aws, database_url, settings)


@pytest.fixture
def env(aws: boto3.session.Session, tmp_path: Path) -> Env:
    return make_env(aws, f"sqlite:///{tmp_path / 'othermail.db'}")


def ses_event(message_id: str, *recipients: str, **verdicts: str) -> dict:
    receipt = {"recipients": list(recipients), "action": {"type": "Lambda", "invocationType": "Event"}}
    for name in ("spam", "virus", "spf", "dkim", "dmarc"):
        receipt[f"{name}Verdict"] = {"status": verdicts.get(name, "PASS")}
    if "dmarc_policy" in verdicts:
        receipt["dmarcPolicy"] = verdicts["dmarc_policy"]
    mail = {
        "messageId": message_id,
        "source": "sender@example.net",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "destination": list(recipients),
    }
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {"mail": mail, "receipt": receipt}}]}
