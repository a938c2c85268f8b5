"""The Lambda's cold start loads what its events need, when they need it (issue 15, point 7).

Structural checks (which modules a fresh interpreter has loaded, which clients were made), never
timings: bench/coldstart.py measures the import and the first forwarded message.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from sqlalchemy import select

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.hosts import lambda_handler
from models import Alias, Delivery, Destination, make_engine, make_session_factory, tables, utcnow
from tests.conftest import fresh_database
from tests.forwarder.hosts.lambda_env import BUCKET, PREFIX, Env, ses_event

ROOT = Path(__file__).resolve().parents[3]
ALIAS = "shop-7hq2@othermail.example"
MESSAGE = (
    b"From: Jane Doe <jane@example.net>\r\n"
    b"To: shop-7hq2@othermail.example\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"\r\n"
    b"Body\r\n"
)
#: Never loaded by importing the handler module: each comes with the first event that needs it.
HEAVY = ("sqlalchemy", "models", "boto3", "botocore", "psycopg", "pymysql", "sqlalchemy.dialects.mysql")
MYSQL = "sqlalchemy.dialects.mysql"
URLS = {
    "sqlite": "sqlite:////tmp/othermail-never-opened.db",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/othermail_never_opened",
}


def run_fresh(code: str, environ: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter (in the project folder, with ``environ`` over a copy of
    this one's environment without any ``OTHERMAIL_*``); it sets ``result``, returned here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
    env.update(environ)
    script = code + "\nimport json as _json\nprint('RESULT ' + _json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def add_alias(url: str) -> None:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            user = ensure_user(db, "owner@owner.example")
            alias = Alias(address=ALIAS, user_id=user.id, created_at=utcnow())
            alias.destinations.append(ensure_destination(db, user, "a@real.example", verified_at=utcnow()))
            db.add(alias)
            db.commit()
    finally:
        engine.dispose()


def loaded(names: tuple[str, ...]) -> str:
    return f"[m for m in {list(names)!r} if m in sys.modules]"


@pytest.mark.parametrize("backend", sorted(URLS))
def test_importing_the_handler_loads_no_sqlalchemy_boto3_driver_or_mysql_dialect(backend: str) -> None:
    result = run_fresh(
        f"import sys\nimport forwarder.hosts.lambda_handler\nresult = {loaded(HEAVY)}",
        {"OTHERMAIL_DATABASE_URL": URLS[backend]},
    )
    assert result == []


def test_the_check_sees_a_module_the_import_loads() -> None:
    code = f"import sys\nimport forwarder.hosts.lambda_handler\nfrom models import Alias\nresult = {loaded(HEAVY)}"
    result = run_fresh(code, {})
    assert result == ["sqlalchemy", "models"]


#: What a child reports as the ORM it loaded: sqlalchemy.orm, or any models module but the Core ones.
ORM_LOADED = """
core = ("models.columns", "models.engine", "models.limits", "models.tables")
orm = sorted(m for m in sys.modules if m == "sqlalchemy.orm" or (m.startswith("models.") and m not in core))
"""

#: Forwards one message through the handler's runtime built from the environment, with an S3
#: stand-in for the raw mail and a memory sender, and reports what was loaded.
FORWARD = (
    """
import io, json, os, sys
from forwarder.adapters.senders import MemorySender
from forwarder.hosts.lambda_handler import LambdaRuntime
from forwarder.settings import Settings

class S3:
    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(os.environ["TEST_MESSAGE"].encode())}

class Session:
    def client(self, name):
        assert name == "s3", name
        return S3()

runtime = LambdaRuntime.from_settings(Settings.from_env(os.environ), session=Session())
runtime.forwarder.sender = sender = MemorySender()
summary = runtime.handle(json.loads(os.environ["TEST_EVENT"]))
runtime.close()
dialects = sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.") and m.count(".") == 2)
feedback = "forwarder.adapters.sql.feedback_store" in sys.modules
contacts = "forwarder.adapters.sql.contacts.book" in sys.modules
result = {"outcomes": summary["outcomes"], "sent": len(sender.sent), "loaded": dialects, "feedback": feedback}
result["contacts"] = contacts
"""
    + ORM_LOADED
    + """
result["orm"] = orm
"""
)


def forward_env(url: str, **more: str) -> dict[str, str]:
    """The environment of :data:`FORWARD`: one SES event for ``ALIAS`` on the database at ``url``."""
    return {
        "OTHERMAIL_DATABASE_URL": url,
        "OTHERMAIL_S3_BUCKET": BUCKET,
        "OTHERMAIL_S3_PREFIX": PREFIX,
        "OTHERMAIL_DOMAINS": "othermail.example",
        "TEST_MESSAGE": MESSAGE.decode(),
        "TEST_EVENT": json.dumps(ses_event("m1", ALIAS)),
        **more,
    }


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=["sqlite", "postgresql"]
)
def test_forwarding_on_sqlite_or_postgresql_never_loads_the_mysql_dialect_or_the_orm(
    backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path, migrated=True) as url:
        add_alias(url)
        result = run_fresh(
            FORWARD,
            forward_env(url),
        )
    assert (result["outcomes"], result["sent"]) == ({"forwarded": 1}, 1)
    assert f"sqlalchemy.dialects.{backend}" in result["loaded"]  # the check sees the dialect in use
    assert MYSQL not in result["loaded"]
    assert result["feedback"] is False  # the bounce and complaint store comes with the first notification
    assert result["contacts"] is False  # no contact keys on an SES ingress: one-way
    # the forward path's SQL is Core on models/tables.py: no sqlalchemy.orm, no declarative models
    assert result["orm"] == []


#: A contact key (``othermail keys new``'s form: ``id:urlsafe-base64 of 32 bytes``): two-way on.
CONTACT_KEYS = "k1:" + base64.urlsafe_b64encode(bytes(range(32))).decode()


def contacts_of_alias(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return len(connection.execute(select(tables.contacts.c.id)).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=["sqlite", "postgresql"]
)
def test_two_way_forwarding_loads_neither_the_orm_nor_the_models(backend: str, tmp_path: Path) -> None:
    """With contact keys set (two-way aliases), the contact book's SQL is Core on models/tables.py
    too: forwarding a message makes the sender's contact without sqlalchemy.orm or a model."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        add_alias(url)
        result = run_fresh(
            FORWARD,
            forward_env(url, OTHERMAIL_CONTACT_KEYS=CONTACT_KEYS),
        )
        assert contacts_of_alias(url) == 1  # the check sees two-way on: jane@example.net is a contact
    assert (result["outcomes"], result["sent"]) == ({"forwarded": 1}, 1)
    assert result["contacts"] is True
    assert result["orm"] == []


#: Applies one SES bounce (SNS invokes the Lambda) through the handler's runtime built from the
#: environment, and reports what was loaded.
BOUNCE = (
    """
import json, os, sys
from forwarder.hosts.lambda_handler import LambdaRuntime
from forwarder.settings import Settings

runtime = LambdaRuntime.from_settings(Settings.from_env(os.environ))
summary = runtime.handle(json.loads(os.environ["TEST_EVENT"]))
runtime.close()
"""
    + ORM_LOADED
    + """
result = {"outcomes": summary["outcomes"], "orm": orm}
"""
)


def add_forwarded_copy(url: str, provider_message_id: str) -> None:
    """The delivery row of a copy forwarded to a@real.example, as SES numbered it."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            alias = db.scalars(select(Alias).where(Alias.address == ALIAS)).one()
            (destination,) = alias.destinations
            db.add(
                Delivery(
                    inbound_message_id="<m1@example.net>",
                    recipient=ALIAS,
                    alias_id=alias.id,
                    destination_id=destination.id,
                    outcome="forwarded",
                    provider_message_id=provider_message_id,
                )
            )
            db.commit()
    finally:
        engine.dispose()


def paused(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(Destination.email).where(Destination.paused_at.is_not(None))))
    finally:
        engine.dispose()


def sns_bounce(message_id: str, recipient: str) -> dict:
    """SNS invoking the Lambda with a configuration set's permanent Bounce event."""
    notification = {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": "fb-1",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1"}],
            "timestamp": "2026-11-23T10:00:05.000Z",
        },
        "mail": {"timestamp": "2026-11-23T10:00:01.000Z", "source": ALIAS, "messageId": message_id},
    }
    topic = "arn:aws:sns:us-east-1:123456789012:othermail-FeedbackTopic-1"
    body = {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Message": json.dumps(notification)}
    return {"Records": [{"EventSource": "aws:sns", "EventSubscriptionArn": f"{topic}:s-1", "Sns": body}]}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=["sqlite", "postgresql"]
)
def test_a_bounce_loads_neither_the_orm_nor_the_models(backend: str, tmp_path: Path) -> None:
    """The feedback store's SQL is Core on models/tables.py too: a Lambda whose first event is an
    SES bounce pauses the destination without sqlalchemy.orm or a declarative model."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        add_alias(url)
        add_forwarded_copy(url, "ses-1")
        result = run_fresh(
            BOUNCE,
            {
                "OTHERMAIL_DATABASE_URL": url,
                "OTHERMAIL_S3_BUCKET": BUCKET,
                "OTHERMAIL_S3_PREFIX": PREFIX,
                "OTHERMAIL_DOMAINS": "othermail.example",
                "TEST_EVENT": json.dumps(sns_bounce("ses-1", "a@real.example")),
            },
        )
        assert paused(url) == ["a@real.example"]  # the check sees a bounce that was applied
    assert result["outcomes"] == {"feedback:bounce-permanent": 1}
    assert result["orm"] == []


def test_the_handler_makes_each_aws_client_once_per_container(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two invocations: the first makes the S3 and SESv2 clients it uses (not the SESv1 client,
    nothing bounced), the second makes none."""
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    env.put(PREFIX + "m2", MESSAGE.replace(b"<m1@", b"<m2@"))
    made: list[str] = []
    real_create = botocore.session.Session.create_client

    def counting_create(self: botocore.session.Session, service_name: str, *args: Any, **kwargs: Any) -> object:
        made.append(service_name)
        return real_create(self, service_name, *args, **kwargs)

    # boto3's Session.client ends here too: the count holds whichever makes the clients
    monkeypatch.setattr(botocore.session.Session, "create_client", counting_create)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setattr(lambda_handler, "_print_line", lambda _line: None)
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", env.database_url)
    monkeypatch.setenv("OTHERMAIL_S3_BUCKET", BUCKET)
    monkeypatch.setenv("OTHERMAIL_S3_PREFIX", PREFIX)
    monkeypatch.setenv("OTHERMAIL_DOMAINS", "othermail.example")
    try:
        assert lambda_handler.handler(ses_event("m1", ALIAS), None)["outcomes"] == {"forwarded": 1}
        assert sorted(made) == ["s3", "sesv2"]
        assert lambda_handler.handler(ses_event("m2", ALIAS), None)["outcomes"] == {"forwarded": 1}
        assert sorted(made) == ["s3", "sesv2"]
        assert len(env.sent()) == 2
    finally:
        if lambda_handler._runtime is not None:
            lambda_handler._runtime.close()


@pytest.mark.parametrize(
    ("secret", "sessions", "runtime_region"),
    [
        ({}, 1, "us-east-1"),  # the secrets' session serves the runtime too
        ({"OTHERMAIL_AWS_REGION": "eu-west-1"}, 2, "eu-west-1"),  # a secret names another region
    ],
    ids=["shared", "other-region"],
)
def test_a_cold_start_with_secrets_makes_one_boto3_session_where_the_region_agrees(
    env: Env, monkeypatch: pytest.MonkeyPatch, secret: dict[str, str], sessions: int, runtime_region: str
) -> None:
    client = env.session.client("secretsmanager", region_name="us-east-1")
    value = json.dumps({**secret, "OTHERMAIL_S3_BUCKET": BUCKET})
    arn = client.create_secret(Name="othermail/cold", SecretString=value)["ARN"]
    made: list[boto3.session.Session] = []
    real_init = boto3.session.Session.__init__

    def counting_init(self: boto3.session.Session, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "__init__", counting_init)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setattr(lambda_handler, "_print_line", lambda _line: None)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("OTHERMAIL_SECRETS_ARN", arn)
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", env.database_url)
    monkeypatch.delenv("OTHERMAIL_AWS_REGION", raising=False)
    monkeypatch.delenv("OTHERMAIL_S3_BUCKET", raising=False)
    summary = lambda_handler.handler({"unexpected": True}, None)
    runtime = lambda_handler._runtime
    assert runtime is not None and runtime.parts is not None
    try:
        assert summary["outcomes"] == {"skipped:invalid-event": 1}
        assert runtime.settings.s3_bucket == BUCKET  # the secret was read
        assert runtime.parts.aws_session.region_name == runtime_region
        assert len(made) == sessions and runtime.parts.aws_session is made[-1]
    finally:
        runtime.close()
