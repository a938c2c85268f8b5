"""The composition root: one place turns settings into adapters, and every host uses it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from forwarder.adapters.aws.s3 import S3Store
from forwarder.adapters.senders import MaildirSender, MemorySender
from forwarder.adapters.stores import LocalStore
from forwarder.errors import SettingsError
from forwarder.flows.expired_reject import SesBouncer
from forwarder.runtime import Runtime
from forwarder.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
#: Calls that turn settings into adapters: only forwarder/runtime.py makes them.
BUILDERS = {
    "Forwarder", "SqlDirectory", "build_sender", "build_notifier", "make_engine", "S3Store", "LocalStore",
    "FeedbackStore", "Spool", "build_authenticator",
}  # fmt: skip
#: Where such a call is the definition's own business, not a second composition root.
ALLOWED = {
    "forwarder/runtime.py",
    "forwarder/adapters/outbound.py",  # build_sender itself, called by the runtime only
    "forwarder/flows/notices.py",  # build_notifier itself
    "forwarder/adapters/inbound_auth/__init__.py",  # build_authenticator itself
    "models/engine.py",
    "models/__init__.py",
}


def settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = dict(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'runtime.db'}",
        domains=("othermail.example",),
        sender="outbox",
        outbox=tmp_path / "outbox",
        store_dir=tmp_path / "mail",
    )
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]  # the test's own keyword values


def calls_outside_the_root() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("forwarder/**/*.py"), *ROOT.glob("web/**/*.py"), *ROOT.glob("models/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in BUILDERS:
                    found.append(f"{relative}:{node.lineno} {name}()")
    return found


def test_only_the_runtime_turns_settings_into_adapters() -> None:
    assert calls_outside_the_root() == []


def test_the_scan_sees_a_forwarder_built_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "forwarder" / "hosts"
    fake.mkdir(parents=True)
    (fake / "rogue.py").write_text("f = Forwarder(directory, sender)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert calls_outside_the_root() == ["forwarder/hosts/rogue.py:1 Forwarder()"]


def test_nothing_is_built_until_it_is_used(tmp_path: Path) -> None:
    runtime = Runtime.build(settings(tmp_path))
    assert not (tmp_path / "outbox").exists() and "engine" not in vars(runtime)
    assert isinstance(runtime.sender, MaildirSender) and (tmp_path / "outbox").is_dir()
    assert "engine" not in vars(runtime)  # the sender needs no database
    runtime.close()


def test_a_part_handed_in_is_the_one_every_flow_uses(tmp_path: Path) -> None:
    sender = MemorySender()
    runtime = Runtime.build(settings(tmp_path, mail_limits=settings(tmp_path).mail_limits), sender=sender)
    assert runtime.forwarder.sender is sender
    assert runtime.notifier is not None and runtime.notifier.sender is sender
    assert runtime.forwarder.notifier is runtime.notifier
    assert runtime.forwarder.directory is runtime.directory
    assert runtime.directory.limits == runtime.settings.mail_limits
    assert runtime.preview_forwarder().sender is None
    runtime.close()


def test_an_unknown_part_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown parts: sendr"):
        Runtime.build(settings(tmp_path), sendr=MemorySender())


def test_the_one_box_stores_locally_and_bounces_nothing(tmp_path: Path) -> None:
    runtime = Runtime.build(settings(tmp_path))
    assert isinstance(runtime.store, LocalStore) and runtime.store.root == tmp_path / "mail"
    assert runtime.bouncer is None


def test_an_ses_ingress_reads_the_bucket_and_bounces_through_ses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime.build(settings(tmp_path, s3_bucket="raw-mail"), ses_inbound=True)
    assert isinstance(runtime.store, S3Store) and runtime.store.bucket == "raw-mail"
    assert isinstance(runtime.bouncer, SesBouncer) and runtime.forwarder.bouncer is runtime.bouncer


def test_aws_clients_are_made_on_their_first_call_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the SES ingress's store, bouncer and SES sender makes no client and opens no boto3
    session; the first call makes that service's client, which every later call reuses."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime.build(settings(tmp_path, s3_bucket="raw-mail", sender="ses"), ses_inbound=True)
    assert runtime.store is not None and runtime.bouncer is not None and runtime.sender is not None
    assert runtime.aws_clients.made() == [] and "aws_session" not in vars(runtime)
    s3 = runtime.aws_clients.client("s3")
    assert s3.meta.service_model.service_name == "s3"
    assert runtime.aws_clients.made() == ["s3"] and s3.client() is s3.client()
    assert runtime.aws_clients.client("s3") is s3


def test_an_ses_ingress_without_a_bucket_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OTHERMAIL_S3_BUCKET"):
        _ = Runtime.build(settings(tmp_path), ses_inbound=True).store
    with pytest.raises(SettingsError, match="OTHERMAIL_STORE=s3 needs OTHERMAIL_S3_BUCKET"):
        _ = Runtime.build(settings(tmp_path, store="s3")).store


def test_the_web_app_and_the_one_box_share_one_runtime(tmp_path: Path) -> None:
    from web import create_app

    runtime = Runtime.build(settings(tmp_path), sender=MemorySender())
    app = create_app({"TESTING": True, "SECRET_KEY": "k", "SETTINGS": runtime.settings}, runtime=runtime)
    assert app.extensions["othermail.runtime"] is runtime
    assert app.extensions["othermail.engine"] is runtime.engine
    runtime.close()


def test_the_web_app_pings_every_checkout_and_the_forwarder_does_not(tmp_path: Path) -> None:
    """Review of issue 15: the pool stopped pinging every checkout (the directory re-runs a
    transaction on a dead connection), but a web request has no such retry: a connection killed
    by a database restart would have been one 500. The web app's runtime pings at checkout."""
    from web import create_app

    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u@127.0.0.1:1/none", sender="outbox")
    web = create_app({"TESTING": True, "SECRET_KEY": "k", "SETTINGS": settings})
    assert web.extensions["othermail.runtime"].engine.pool._pre_ping is True
    assert Runtime.build(settings).engine.pool._pre_ping is False


#: Makes the SES ingress's S3 and SESv2 clients in a fresh interpreter and reports whether boto3
#: (and s3transfer, which boto3 imports) came with them.
MAKE_CLIENTS = """
import sys
from forwarder.runtime import Runtime
from forwarder.settings import Settings

runtime = Runtime.build(Settings(s3_bucket="raw-mail", sender="ses", aws_region="eu-west-1"), ses_inbound=True)
s3, sesv2 = runtime.aws_clients.client("s3"), runtime.aws_clients.client("sesv2")
print(s3.meta.service_model.service_name, sesv2.meta.service_model.service_name, s3.meta.region_name)
print(sorted(name for name in ("boto3", "s3transfer") if name in sys.modules))
"""


def test_the_runtime_makes_its_aws_clients_with_botocore_alone() -> None:
    """boto3 adds nothing the adapters call (get_object, send_email are botocore's), only its import
    and s3transfer's on a Lambda cold start: the runtime's own clients come from one botocore session."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTHERMAIL_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", MAKE_CLIENTS], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["s3 sesv2 eu-west-1", "[]"]
