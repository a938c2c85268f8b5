"""The spool: raw bytes and envelope are both written before the 250; entries sort by arrival."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forwarder.adapters.local.spool import Spool, new_spool_id
from forwarder.adapters.stores import LocalStore, MemoryStore
from forwarder.errors import MessageNotFound, StoreUnavailable


def test_accept_load_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    raw = b"Subject: hi\r\n\r\n\xff\xfe 8-bit body\r\n"
    entry = spool.accept(raw, "a@sender.example", ("x@othermail.example", "y@othermail.example"), "192.0.2.1")
    assert spool.pending() == [entry.spool_id]
    loaded, envelope = spool.load(entry.spool_id)
    assert loaded == raw and envelope == entry
    assert (tmp_path / "mail" / "smtp" / entry.spool_id).read_bytes() == raw
    spool.done(entry.spool_id)
    spool.done(entry.spool_id)  # twice is harmless
    assert spool.pending() == [] and (tmp_path / "mail" / "smtp" / entry.spool_id).exists()


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_spool_id(1_700_000_000.0 + n) for n in range(50)] + [new_spool_id(1_700_000_000.0) for _ in range(3)]
    assert len(set(ids)) == len(ids)
    assert sorted(ids[:50]) == ids[:50]


def test_no_envelope_is_written_when_the_store_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "mail"
    blocker.write_text("a file where the store's folder should be")
    spool = Spool(tmp_path / "spool", LocalStore(blocker))
    with pytest.raises(StoreUnavailable, match="spooling"):
        spool.accept(b"x", "", ("a@othermail.example",))
    assert spool.pending() == []


def test_a_missing_entry_and_a_corrupt_one_are_named(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", MemoryStore())
    with pytest.raises(MessageNotFound):
        spool.load("1-gone")
    (spool.pending_dir / "2-bad.json").write_text("{not json")
    with pytest.raises(ValueError):
        spool.load("2-bad")
    (spool.pending_dir / "3-odd.json").write_text(json.dumps({"recipients": "not a list"}))
    with pytest.raises(ValueError, match="not an envelope"):
        spool.load("3-odd")
    spool.set_aside("2-bad")
    assert spool.pending() == ["3-odd"] and (spool.root / "failed" / "2-bad.json").exists()


def test_the_listener_can_keep_raw_mail_in_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from forwarder.runtime import Runtime
    from forwarder.settings import Settings

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="raw-mail")
        settings = Settings.from_env(
            {"OTHERMAIL_STORE": "s3", "OTHERMAIL_S3_BUCKET": "raw-mail", "OTHERMAIL_DATA_DIR": str(tmp_path)}
        )
        spool = Spool(tmp_path / "spool", Runtime.build(settings).store)
        entry = spool.accept(b"Subject: s3\r\n\r\nbody\r\n", "a@b.example", ("x@othermail.example",))
        stored = boto3.client("s3", region_name="us-east-1").get_object(Bucket="raw-mail", Key=entry.key)
        assert stored["Body"].read() == b"Subject: s3\r\n\r\nbody\r\n"
        assert stored["ServerSideEncryption"] == "AES256"
        assert spool.load(entry.spool_id)[0] == b"Subject: s3\r\n\r\nbody\r\n"
        with pytest.raises(StoreUnavailable):  # a bucket that is gone: 451 at DATA, nothing spooled
            Spool(
                tmp_path / "other",
                Runtime.build(
                    Settings.from_env({"OTHERMAIL_STORE": "s3", "OTHERMAIL_S3_BUCKET": "missing-bucket"})
                ).store,
            ).accept(b"x", "", ("y@othermail.example",))
    with pytest.raises(Exception, match="OTHERMAIL_S3_BUCKET"):
        _ = Runtime.build(Settings.from_env({"OTHERMAIL_STORE": "s3"})).store
