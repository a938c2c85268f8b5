"""The pipeline's own promises, on a real SQLite database with an in-memory sender."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.flows import forward as pipeline
from forwarder.flows.forward import Forwarder, Inbound
from models import Alias, Destination, User, make_engine, make_session_factory, utcnow
from tests.support.databases import migrate

ALIAS = "shop-7hq2@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def forwarder(tmp_path: Path) -> Forwarder:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
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
        ("forwarded", "m1"),
        ("dropped-unknown-alias", "m1"),
    ]
    assert lines[0]["alias_id"] == 1 and lines[0]["destination_id"] == 1
    assert lines[0]["bytes_in"] == len(RAW) and lines[0]["bytes_out"] > len(RAW)
    assert all("real.example" not in r.getMessage() and "body" not in r.getMessage() for r in caplog.records)


def test_a_core_failure_is_recorded_as_a_named_drop(forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "prepare", broken)
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert [(r.outcome, r.reason) for r in reports] == [
        (Outcome.DROPPED_INVALID, "internal error while reading: RuntimeError")
    ]
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "forward", broken)
    reports = forwarder.process(RAW, Inbound("m2", (ALIAS,)))
    assert [(r.outcome, r.reason) for r in reports] == [
        (Outcome.DROPPED_INVALID, "internal error while rewriting: RuntimeError")
    ]
    assert forwarder.sender.sent == []


def test_preview_sends_and_records_nothing(forwarder: Forwarder) -> None:
    ((recipient, result),) = forwarder.preview(RAW, Inbound("m1", (ALIAS,)))
    assert recipient == ALIAS and result.outcome is Outcome.FORWARDED
    assert forwarder.sender.sent == []
    assert forwarder.process(RAW, Inbound("m1", (ALIAS,)))[0].duplicate is False


def test_over_the_hourly_limit_the_message_is_recorded_as_rate_limited_and_not_sent(forwarder: Forwarder) -> None:
    from forwarder.flows.mail_limits import MailLimits

    forwarder.directory.limits = MailLimits(alias_per_hour=1)
    assert [r.outcome for r in forwarder.process(RAW, Inbound("m1", (ALIAS,)))] == [Outcome.FORWARDED]
    [report] = forwarder.process(RAW, Inbound("m2", (ALIAS,)))
    assert (report.outcome, report.destination_id, report.duplicate) == (Outcome.DROPPED_RATE_LIMITED, None, False)
    assert report.reason.startswith("the alias's limit of 1 message an hour is reached; it resets at ")
    assert report.reason.endswith(":00 UTC")
    [again] = forwarder.process(RAW, Inbound("m2", (ALIAS,)))  # a redelivery records and sends nothing
    assert (again.outcome, again.duplicate) == (Outcome.DROPPED_RATE_LIMITED, True)
    assert len(forwarder.sender.sent) == 1
    with forwarder.directory._sessions() as db:  # type: ignore[operator]
        alias = db.get(Alias, report.alias_id)
        assert alias is not None and (alias.message_count, alias.blocked_count) == (1, 1)


def _pause(forwarder: Forwarder, email: str, also: str | None = None) -> dict[str, int]:
    """Pause ``email`` as SES feedback does; ``also``: add another verified destination first."""
    from datetime import UTC, datetime

    with forwarder.directory._sessions() as db:  # type: ignore[operator]
        alias = db.query(Alias).filter_by(address=ALIAS).one()
        if also is not None:
            alias.destinations.append(Destination(user_id=alias.user_id, email=also, verified_at=utcnow()))
        paused = db.query(Destination).filter_by(email=email).one()
        paused.paused_at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
        paused.pause_reason = "The mailbox refused a forwarded message for good (General): 550 <me@real.example>"
        db.commit()
        return {d.email: d.id for d in alias.destinations}


def test_a_paused_destination_is_recorded_as_dropped_paused_and_the_others_still_get_the_mail(
    forwarder: Forwarder,
) -> None:
    ids = _pause(forwarder, "me@real.example", also="second@real.example")
    reports = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert sorted((r.outcome.value, r.destination_id) for r in reports) == [
        ("dropped-paused", ids["me@real.example"]),
        ("forwarded", ids["second@real.example"]),
    ]
    assert [m.recipient for m in forwarder.sender.sent] == ["second@real.example"]
    paused = next(r for r in reports if r.outcome is Outcome.DROPPED_PAUSED)
    assert paused.reason.startswith("destination paused on 2026-11-20 08:30 UTC: The mailbox refused")
    assert "me@real.example" not in paused.reason  # the outcome line may not hold the address
    with forwarder.directory._sessions() as db:  # type: ignore[operator]
        alias = db.query(Alias).filter_by(address=ALIAS).one()
        assert (alias.message_count, alias.forwarded_count) == (1, 1)  # the message is counted once
    again = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert all(r.duplicate for r in again) and len(forwarder.sender.sent) == 1


def test_an_alias_whose_only_destination_is_paused_sends_nothing(forwarder: Forwarder) -> None:
    ids = _pause(forwarder, "me@real.example")
    [report] = forwarder.process(RAW, Inbound("m1", (ALIAS,)))
    assert (report.outcome, report.destination_id, report.duplicate) == (
        Outcome.DROPPED_PAUSED,
        ids["me@real.example"],
        False,
    )
    assert forwarder.sender.sent == []
