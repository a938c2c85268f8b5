"""Raw-mail stores: S3 (on moto), a local folder, memory, and the interface they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from forwarder.adapters.stores import LocalStore, MemoryStore, S3Store
from forwarder.errors import MessageNotFound, RetryableError, StoreUnavailable

REGION = "us-east-1"
BUCKET = "othermail-inbound"
RAW = b"From: a@sender.example\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody \xe9\x00\xff\r\n"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


# --------------------------------------------------------------------------- S3


def test_s3_get_returns_the_stored_bytes(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="inbound/abc123", Body=RAW)
    assert S3Store(s3, BUCKET).get("inbound/abc123") == RAW


def test_s3_get_from_another_bucket(s3: Any) -> None:
    s3.create_bucket(Bucket="raw-mail")
    s3.put_object(Bucket="raw-mail", Key="/emails/objectkey123", Body=b"other")
    store = S3Store(s3, BUCKET)
    assert store.get("/emails/objectkey123", bucket="raw-mail") == b"other"
    with pytest.raises(MessageNotFound):
        store.get("/emails/objectkey123")  # not in the default bucket


def test_s3_keys_with_spaces_and_plus_signs(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="inbound/a b+c", Body=b"x")
    assert S3Store(s3, BUCKET).get("inbound/a b+c") == b"x"


def test_s3_missing_key_is_message_not_found(s3: Any) -> None:
    with pytest.raises(MessageNotFound, match=f"s3://{BUCKET}/inbound/missing") as info:
        S3Store(s3, BUCKET).get("inbound/missing")
    assert isinstance(info.value, RetryableError)
    assert "OTHERMAIL_S3_PREFIX" in str(info.value)  # the hint says what to check


def test_s3_missing_bucket_is_message_not_found(s3: Any) -> None:
    with pytest.raises(MessageNotFound, match="s3://no-such-bucket/inbound/abc"):
        S3Store(s3, "no-such-bucket").get("inbound/abc")


@pytest.mark.parametrize("code, status", [("AccessDenied", 403), ("InternalError", 500), ("SlowDown", 503)])
def test_s3_other_errors_are_store_unavailable(monkeypatch: pytest.MonkeyPatch, code: str, status: int) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    with stubber, pytest.raises(StoreUnavailable, match=code) as info:
        S3Store(client, BUCKET).get("inbound/abc")
    assert not isinstance(info.value, MessageNotFound)
    assert isinstance(info.value, RetryableError)


# --------------------------------------------------------------------------- local folder


def test_local_put_then_get(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("inbound/abc123", RAW)
    assert store.get("inbound/abc123") == RAW
    assert (tmp_path / "store" / "inbound" / "abc123").read_bytes() == RAW
    assert not list((tmp_path / "store").rglob("*.tmp"))


def test_local_put_replaces(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"one")
    store.put("k", b"two")
    assert store.get("k") == b"two"


def test_local_missing_is_message_not_found(tmp_path: Path) -> None:
    with pytest.raises(MessageNotFound, match="missing"):
        LocalStore(tmp_path).get("inbound/missing")


@pytest.mark.parametrize("key", ["../escape", "inbound/../../escape", "/etc/passwd", "", ".", "a/../.."])
def test_local_path_traversal_is_rejected(tmp_path: Path, key: str) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (tmp_path / "escape").write_bytes(b"secret")
    store = LocalStore(root)
    with pytest.raises(MessageNotFound, match="leaves the store"):
        store.get(key)
    with pytest.raises(MessageNotFound, match="leaves the store"):
        store.put(key, b"overwrite")
    assert (tmp_path / "escape").read_bytes() == b"secret"


def test_local_symlink_out_of_the_store_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (tmp_path / "outside").write_bytes(b"secret")
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(MessageNotFound, match="leaves the store"):
        LocalStore(root).get("link")


def test_local_unreadable_key_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "inbound").mkdir()
    with pytest.raises(StoreUnavailable):
        LocalStore(tmp_path).get("inbound")  # a folder, not a message


# --------------------------------------------------------------------------- memory


def test_memory_put_get_and_missing() -> None:
    store = MemoryStore()
    store.put("inbound/a", RAW)
    assert store.get("inbound/a") == RAW
    assert store.objects == {"inbound/a": RAW}
    with pytest.raises(MessageNotFound, match="inbound/b"):
        store.get("inbound/b")


# --------------------------------------------------------------------------- one interface


@dataclass
class Harness:
    store: Any
    put: Callable[[str, bytes], None]


@pytest.fixture(params=["s3-moto", "local", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "s3-moto":
        client = request.getfixturevalue("s3")
        yield Harness(S3Store(client, BUCKET), lambda k, b: client.put_object(Bucket=BUCKET, Key=k, Body=b))
    elif request.param == "local":
        local = LocalStore(tmp_path / "store")
        yield Harness(local, local.put)
    else:
        memory = MemoryStore()
        yield Harness(memory, memory.put)


def test_every_store_returns_exact_bytes_and_reports_missing_keys(harness: Harness) -> None:
    harness.put("inbound/m1", RAW)
    harness.put("inbound/m2", b"")
    assert harness.store.get("inbound/m1") == RAW
    assert harness.store.get("inbound/m2") == b""
    with pytest.raises(MessageNotFound):
        harness.store.get("inbound/m3")
    with pytest.raises(MessageNotFound):
        harness.store.get("inbound/M1")  # keys are case-sensitive


def test_local_prune_deletes_old_messages_but_not_pending_ones(tmp_path: Path) -> None:
    import os
    import time

    store = LocalStore(tmp_path / "mail")
    for key in ("smtp/old", "smtp/pending", "smtp/new", "inbound/deep/old"):
        store.put(key, b"raw " + key.encode())
    past = time.time() - 15 * 86400
    for key in ("smtp/old", "smtp/pending", "inbound/deep/old"):
        os.utime(tmp_path / "mail" / key, (past, past))
    removed = store.prune(time.time() - 14 * 86400, keep=frozenset({"smtp/pending"}))
    assert removed == 2
    assert store.get("smtp/pending") == b"raw smtp/pending" and store.get("smtp/new") == b"raw smtp/new"
    for key in ("smtp/old", "inbound/deep/old"):
        with pytest.raises(MessageNotFound):
            store.get(key)
    assert store.prune(time.time() - 14 * 86400, keep=frozenset({"smtp/pending"})) == 0  # nothing else is old
