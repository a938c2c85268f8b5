"""Raw-mail stores: one contract run against each of S3 (on moto), a local folder and memory, and
against the SMTP spool on top of each; then what is particular to S3 and to the local folder.

The contract, as forwarder/adapters/stores.py and forwarder/errors.py document it: the bytes put
come back untouched; a key that holds nothing is :class:`MessageNotFound`; a store that cannot be
read is :class:`StoreUnavailable` (both retryable). The memory store cannot fail, so the failure
contract leaves it out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from forwarder.adapters.aws.s3 import S3Store
from forwarder.adapters.local.spool import Spool
from forwarder.adapters.stores import LocalStore, MemoryStore
from forwarder.errors import MessageNotFound, RetryableError, StoreUnavailable
from tests.support.factories import fake_aws_credentials

REGION = "us-east-1"
BUCKET = "othermail-inbound"
RAW = b"From: a@sender.example\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody \xe9\x00\xff\r\n"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch, REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


# --------------------------------------------------------------------------- the shared contract


@dataclass
class Harness:
    name: str
    store: S3Store | LocalStore | MemoryStore
    #: Makes reading the key ``key`` fail (not as a missing message); None for the memory store.
    break_key: Callable[[str], None] | None = None


def s3_harness(client: Any) -> Harness:
    def deny(key: str) -> None:
        stubber = Stubber(client)
        stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        stubber.activate()

    return Harness("s3-moto", S3Store(client, BUCKET), deny)


def local_harness(root: Path) -> Harness:
    def make_a_folder(key: str) -> None:
        (root / key).mkdir(parents=True)  # a folder where the message would be: reading it fails

    return Harness("local", LocalStore(root), make_a_folder)


def make_harness(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if name == "s3-moto":
        return s3_harness(request.getfixturevalue("s3"))
    if name == "local":
        return local_harness(tmp_path / "store")
    return Harness("memory", MemoryStore())


@pytest.fixture(params=["s3-moto", "local", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return make_harness(request.param, request, tmp_path)


@pytest.fixture(params=["s3-moto", "local"])
def breakable(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """The stores that can fail to be read: all but the memory store."""
    return make_harness(request.param, request, tmp_path)


@pytest.mark.parametrize(
    "key, raw",
    [
        ("inbound/m1", RAW),
        ("inbound/empty", b""),
        ("inbound/a b+c", b"x"),
        ("inbound/big", bytes(range(256)) * (1024 * 1024 // 256 + 1)),
    ],
    ids=["message", "empty", "spaces-and-plus", "one-megabyte-of-every-byte"],
)
def test_the_bytes_put_come_back_untouched(harness: Harness, key: str, raw: bytes) -> None:
    harness.store.put(key, raw)
    assert harness.store.get(key) == raw


def test_put_replaces_what_the_key_held(harness: Harness) -> None:
    harness.store.put("inbound/k", b"one")
    harness.store.put("inbound/k", b"two")
    assert harness.store.get("inbound/k") == b"two"


def test_a_key_that_holds_nothing_is_message_not_found(harness: Harness) -> None:
    harness.store.put("inbound/m1", RAW)
    for missing in ("inbound/m3", "inbound/M1"):  # keys are case-sensitive
        with pytest.raises(MessageNotFound, match=missing) as info:
            harness.store.get(missing)
        assert isinstance(info.value, RetryableError)


def test_a_store_that_cannot_be_read_is_store_unavailable(breakable: Harness) -> None:
    assert breakable.break_key is not None
    breakable.break_key("inbound/broken")
    with pytest.raises(StoreUnavailable) as info:
        breakable.store.get("inbound/broken")
    assert not isinstance(info.value, MessageNotFound)
    assert isinstance(info.value, RetryableError)


def test_the_spool_over_the_store_gives_back_what_it_accepted(harness: Harness, tmp_path: Path) -> None:
    accepted = Spool(tmp_path / "spool", harness.store).accept(RAW, "a@sender.example", ("shop@othermail.example",))
    # a second spool on the same folder (the next start) reads the message from the store
    raw, envelope = Spool(tmp_path / "spool", harness.store).load(accepted.spool_id)
    assert raw == RAW
    assert envelope == accepted
    assert harness.store.get(accepted.key) == RAW


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
