"""``othermail aws package-forwarder``: the forwarder Lambda's zip, built and run as Lambda would.

The zip is built once per module (pip fetches Lambda's wheels from its cache or PyPI: about 20 s),
its contents are checked against the handler's traced imports, and then it is unpacked and the
handler runs in a clean interpreter (``python -I -S``, ``tests/deploy/lambda_sandbox.py``) with only
the zip and boto3 "from the runtime" on its path: against S3, SES and Secrets Manager on a moto
server, it reads its database URL from the secret and forwards a message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

import migrations
from forwarder.accounts import ensure_destination, ensure_user
from forwarder.ops.packaging import trace_handler
from models import Alias, Delivery, make_engine, make_session_factory, utcnow
from tests.deploy.lambda_sandbox import (
    aws_offline_env,
    lambda_incompatible,
    last_json_line,
    provided_by_runtime,
    run_clean,
    unpack,
)

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "othermail-inbound"
PREFIX = "inbound/"
ALIAS = "shop-7hq2@othermail.example"
MESSAGE = (
    b"From: Jane Doe <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: packaged\r\n"
    b"Message-ID: <m1@example.net>\r\nMIME-Version: 1.0\r\n\r\nSent through the packaged Lambda.\r\n"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("forwarder-zip")
    archive = out / "dist" / "forwarder.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTHERMAIL_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        OTHERMAIL_DATA_DIR=str(out / "var"),
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "forwarder.cli.main", "aws", "package-forwarder", "--output", str(archive)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    print(f"package-forwarder: {archive.stat().st_size / 2**20:.1f} MiB in {time.monotonic() - started:.1f} s")
    return archive, result.stdout


def test_it_prints_the_zips_path_and_size(built: tuple[Path, str]) -> None:
    archive, output = built
    size = archive.stat().st_size / 2**20
    assert re.search(rf"^{re.escape(str(archive))} \({size:.1f} MiB\)$", output, re.MULTILINE), output
    assert "sqlalchemy-" in output and "pymysql-" in output and "psycopg_binary-" in output


def test_the_project_modules_are_exactly_the_traced_ones(built: tuple[Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as zipped:
        listed = zipped.namelist()
    own = {n for n in listed if n.split("/")[0] in ("forwarder", "models") and n.endswith(".py")}
    assert own == {path.as_posix() for path in trace_handler(REPO).files}
    for required in (
        "forwarder/hosts/lambda_handler.py",
        "forwarder/adapters/aws/secrets.py",
        "forwarder/adapters/aws/events.py",
        "forwarder/core/forward.py",
        "forwarder/adapters/senders.py",
        "models/engine.py",
    ):
        assert required in own
    for left_out in (
        "forwarder/hosts/onebox.py",
        "forwarder/adapters/smtp/ingress.py",
        "forwarder/hosts/dispatch.py",
        "forwarder/adapters/local/spool.py",
        "forwarder/hosts/queue_worker.py",
        "forwarder/ops/packaging.py",
        "forwarder/ops/domain_checks.py",
    ):
        assert left_out not in own, left_out
    # Byte code ships next to each module (Lambda's disk is read-only: Python could not write it).
    assert "forwarder/hosts/__pycache__/lambda_handler.cpython-311.pyc" in listed or sys.version_info[:2] != (3, 11)


def test_only_what_the_handler_needs_is_inside(built: tuple[Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as zipped:
        listed = zipped.namelist()
        infos = zipped.infolist()
    tops = {n.split("/")[0] for n in listed}
    for needed in ("forwarder", "models", "sqlalchemy", "pymysql", "psycopg", "psycopg_binary", "typing_extensions.py"):
        assert needed in tops, needed
    for unwanted in (
        "web",
        "migrations",
        "tests",
        "bench",
        "deploy",
        "flask",
        "werkzeug",
        "jinja2",
        "click",
        "boto3",
        "botocore",
        "s3transfer",
        "aiosmtpd",
        "alembic",
        "argon2",
        "dns",
        "bin",
    ):
        assert unwanted not in tops, unwanted
    assert not [n for n in listed if n.startswith(("forwarder/cli/", "forwarder/samples/")) or n.endswith(".eml")]
    assert lambda_incompatible(built[0]) == {}  # manylinux2014 x86_64 wheels: Amazon Linux 2's glibc 2.26
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}  # the same inputs, the same zip
    assert built[0].stat().st_size < 50 * 2**20


def test_the_packaged_handler_forwards_in_a_clean_interpreter(built: tuple[Path, str], tmp_path: Path) -> None:
    """Lambda's view: /var/task is the zip, boto3 comes from the runtime, nothing else is there."""
    from moto.server import ThreadedMotoServer
    from moto.ses.models import ses_backends

    task = unpack(built[0], tmp_path / "task")
    provided = provided_by_runtime(tmp_path / "runtime")
    url = f"sqlite:///{tmp_path / 'othermail.db'}"
    migrations.upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        user = ensure_user(db, "owner@owner.example")
        alias = Alias(address=ALIAS, user_id=user.id, created_at=utcnow())
        alias.destinations.append(ensure_destination(db, user, "real@real.example", verified_at=utcnow()))
        db.add(alias)
        db.commit()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        session.client("s3", endpoint_url=endpoint).put_object(Bucket=BUCKET, Key=PREFIX + "m1", Body=MESSAGE)
        session.client("ses", endpoint_url=endpoint).verify_domain_identity(Domain="othermail.example")
        arn = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="othermail/forwarder", SecretString=json.dumps({"OTHERMAIL_DATABASE_URL": url})
        )["ARN"]
        env = aws_offline_env(
            AWS_ENDPOINT_URL=endpoint,
            NO_PROXY="127.0.0.1,localhost",
            AWS_REGION=REGION,
            OTHERMAIL_SECRETS_ARN=arn,
            OTHERMAIL_S3_BUCKET=BUCKET,
            OTHERMAIL_S3_PREFIX=PREFIX,
            OTHERMAIL_DOMAINS="othermail.example",
        )
        confirmation = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "Sns": {
                        "Type": "SubscriptionConfirmation",
                        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:inbound",
                        "Message": "confirm",
                        "SubscribeURL": "https://sns.example/confirm",
                    },
                }
            ]
        }
        receipt = {
            "recipients": [ALIAS],
            "action": {"type": "Lambda", "invocationType": "Event"},
            **{f"{n}Verdict": {"status": "PASS"} for n in ("spam", "virus", "spf", "dkim", "dmarc")},
        }
        ses_event = {
            "Records": [
                {
                    "eventSource": "aws:ses",
                    "eventVersion": "1.0",
                    "ses": {
                        "mail": {
                            "messageId": "m1",
                            "source": "jane@example.net",
                            "timestamp": "2026-11-23T10:00:00.000Z",
                            "destination": [ALIAS],
                        },
                        "receipt": receipt,
                    },
                }
            ]
        }
        code = f"""
import importlib, json, sys
missing = []
for name in ("flask", "werkzeug", "click", "web", "forwarder.cli", "aiosmtpd", "alembic", "migrations"):
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
from forwarder.hosts import lambda_handler
first = lambda_handler.handler({confirmation!r}, None)
second = lambda_handler.handler({ses_event!r}, None)
import boto3, psycopg, pymysql, sqlalchemy
print(json.dumps({{"missing": missing, "first": first, "second": second,
                  "database": lambda_handler._runtime.settings.database_url, "psycopg": psycopg.pq.__impl__,
                  "sqlalchemy": sqlalchemy.__file__, "boto3": boto3.__file__,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "web", "werkzeug"))}}))
"""
        result = run_clean(code, [task, provided], env, cwd=task)
        sent = list(ses_backends[ACCOUNT][REGION].sent_messages)
    finally:
        server.stop()
    seen = last_json_line(result)
    assert seen["missing"] == [
        "flask",
        "werkzeug",
        "click",
        "web",
        "forwarder.cli",
        "aiosmtpd",
        "alembic",
        "migrations",
    ]
    assert seen["loaded"] == []
    assert seen["first"]["outcomes"] == {"skipped:sns-subscription-confirmation": 1}
    assert seen["second"]["outcomes"] == {"forwarded": 1}, result.stderr[-3000:]
    assert seen["database"] == url  # from Secrets Manager
    assert seen["psycopg"] == "binary"
    assert seen["sqlalchemy"].startswith(str(task)) and seen["boto3"].startswith(str(provided))
    assert any(b"Sent through the packaged Lambda." in m.raw_data.encode() for m in sent)
    with make_session_factory(engine)() as db:
        assert [d.outcome for d in db.scalars(select(Delivery))] == ["forwarded"]
    engine.dispose()
