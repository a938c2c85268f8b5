"""The pipeline's own promises, on a real SQLite database with an in-memory sender."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import migrations
from forwarder import pipeline
from forwarder.core import Outcome, Policy
from forwarder.directory import SqlDirectory
from forwarder.pipeline import Forwarder, Inbound
from forwarder.senders import MemorySender
from models import Alias, Destination, User, make_engine, make_session_factory, utcnow

ALIAS = "shop-7hq2@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def forwarder(tmp_path: Path) -> Forwarder:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrations.upgrade(url)
    sessions = make_session_factory(make_engine(url))
    with sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email="me@real.example", verified_at=utcnow()))
        alias.destinations.append(Destination(user_id=user.id, email="unverified@real.example"))
        db.add(alias)
        db.commit()
    return Forwarder(SqlDirectory(sessions), MemorySender(), Policy(), utcnow)


def test_only_verified_destinations_receive_mail(forwarder: Forwarder) -> None:
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert [r.outcome for r in reports] == [Outcome.FORWARDED]
    assert [m.recipient for m in forwarder.sender.sent] == ["me@real.example"]


def test_recipients_are_deduplicated_case_insensitively(forwarder: Forwarder) -> None:
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS, ALIAS.upper(), " " + ALIAS)))
    assert len(reports) == 1
    assert len(forwarder.sender.sent) == 1


def test_every_outcome_is_one_json_log_line_without_the_destination(
    forwarder: Forwarder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="othermail.outcome")
    forwarder.process(RAW, Inbound("m1", (ALIAS, "ghost@othermail.example")))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "othermail.outcome"]
    assert [(line["outcome"], line["message_id"]) for line in lines] == [
        ("forwarded", "m1"), ("dropped-unknown-alias", "m1")]
    assert lines[0]["alias_id"] == 1 and lines[0]["destination_id"] == 1
    assert lines[0]["bytes_in"] == len(RAW) and lines[0]["bytes_out"] > len(RAW)
    assert all("real.example" not in r.getMessage() and "body" not in r.getMessage() for r in caplog.records)


def test_a_core_failure_is_recorded_as_a_named_drop(forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "prepare", broken)
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert [(r.outcome, r.reason) for r in reports] == [
        (Outcome.DROPPED_INVALID, "internal error while reading: RuntimeError")]
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "forward", broken)
    reports = forwarder.process(RAW, Inbound("m2", (ALIAS,)))
    assert [(r.outcome, r.reason) for r in reports] == [
        (Outcome.DROPPED_INVALID, "internal error while rewriting: RuntimeError")]
    assert forwarder.sender.sent == []


def test_preview_sends_and_records_nothing(forwarder: Forwarder) -> None:
    ((recipient, result),) = forwarder.preview(RAW, Inbound("m1", (ALIAS,)))
    assert recipient == ALIAS and result.outcome is Outcome.FORWARDED
    assert forwarder.sender.sent == []
    assert forwarder.process(RAW, Inbound("m1", (ALIAS,)))[0].duplicate is False
