"""apply_feedback on SQLite, PostgreSQL and MariaDB: recorded once, hard bounces pause, soft
bounces pause at the limit, complaints switch the alias off (or only count), unknown ids are
recorded and change nothing, and nothing is ever sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from forwarder.adapters.sql.feedback_store import FeedbackRules, FeedbackStore, apply_feedback
from forwarder.flows.feedback import BOUNCE_PERMANENT, BOUNCE_TRANSIENT, COMPLAINT, Feedback
from models import Alias, Delivery, Destination, FeedbackEvent, User, make_engine

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULES = FeedbackRules()


def feedback(
    kind: str = BOUNCE_PERMANENT,
    feedback_id: str = "f1",
    message_id: str = "ses-1",
    recipient: str = "me@real.example",
    at: datetime | None = NOW,
    **changes: str,
) -> Feedback:
    sub_type = {"complaint": "abuse"}.get(kind, "General")
    item = Feedback(feedback_id, kind, sub_type, message_id, recipient, "smtp; 550 5.1.1 <me@real.example> unknown", at)
    return replace(item, **changes)


@pytest.fixture
def ids(session: Session) -> dict[str, int]:
    """An alias forwarding to two destinations; one forwarded copy to each (SES ids ses-1, ses-2)."""
    user = User(email="owner@example.org")
    session.add(user)
    session.flush()
    me = Destination(user_id=user.id, email="me@real.example", verified_at=NOW)
    other = Destination(user_id=user.id, email="other@real.example", verified_at=NOW)
    alias = Alias(address="shop-7hq2@othermail.example", user_id=user.id, destinations=[me, other])
    session.add(alias)
    session.flush()
    for n, destination in enumerate((me, other), start=1):
        session.add(
            Delivery(
                inbound_message_id="<m1@example.net>",
                recipient=alias.address,
                alias_id=alias.id,
                destination_id=destination.id,
                outcome="forwarded",
                provider_message_id=f"ses-{n}",
                mail_from="jane@example.net",
            )
        )
    session.commit()
    return {"alias": alias.id, "me": me.id, "other": other.id}


def apply(session: Session, item: Feedback, rules: FeedbackRules = RULES, now: datetime = NOW):  # type: ignore[no-untyped-def]
    """apply_feedback on a Core connection of the session's engine (its transaction is its own: the
    session's ends first, as it did when apply_feedback committed the session)."""
    session.commit()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    with engine.connect() as connection:
        applied = apply_feedback(connection, item, rules, now)
    session.expire_all()
    return applied


def test_a_hard_bounce_pauses_the_destination_and_records_the_event(session: Session, ids: dict[str, int]) -> None:
    applied = apply(session, feedback())
    assert (applied.duplicate, applied.known, applied.paused, applied.alias_disabled) == (False, True, True, False)
    assert (applied.alias_id, applied.destination_id) == (ids["alias"], ids["me"])
    me = session.get(Destination, ids["me"])
    assert me.paused_at == NOW and me.is_paused and me.bounce_count == 1
    assert (
        me.pause_reason == "The mailbox refused a forwarded message for good (General): "
        "smtp; 550 5.1.1 <me@real.example> unknown"
    )
    assert not session.get(Destination, ids["other"]).is_paused
    (event,) = session.scalars(select(FeedbackEvent))
    assert (event.feedback_id, event.recipient, event.kind, event.sub_type, event.provider_message_id) == (
        "f1",
        "me@real.example",
        BOUNCE_PERMANENT,
        "General",
        "ses-1",
    )
    assert (event.alias_id, event.destination_id, event.occurred_at) == (ids["alias"], ids["me"], NOW)
    assert session.get(Alias, ids["alias"]).enabled


def test_the_same_notification_twice_changes_the_counters_once(session: Session, ids: dict[str, int]) -> None:
    for kind in (BOUNCE_PERMANENT, BOUNCE_TRANSIENT, COMPLAINT):
        first = apply(session, feedback(kind, feedback_id=f"id-{kind}"))
        second = apply(session, feedback(kind, feedback_id=f"id-{kind}"))
        assert (first.duplicate, second.duplicate) == (False, True)
        assert (second.destination_id, second.paused, second.alias_disabled) == (None, False, False)
    me = session.get(Destination, ids["me"])
    assert (me.bounce_count, me.soft_bounce_count, me.complaint_count) == (1, 1, 1)
    assert len(session.scalars(select(FeedbackEvent)).all()) == 3


def test_a_second_hard_bounce_keeps_the_first_pause(session: Session, ids: dict[str, int]) -> None:
    apply(session, feedback())
    later = apply(session, feedback(feedback_id="f2", detail="mailbox gone"), now=NOW + timedelta(hours=1))
    assert not later.paused
    me = session.get(Destination, ids["me"])
    assert (me.bounce_count, me.paused_at) == (2, NOW)
    assert "mailbox gone" not in me.pause_reason


def test_soft_bounces_pause_at_the_limit_within_the_window(session: Session, ids: dict[str, int]) -> None:
    days = [0, 6, 12]  # each within 7 days of the one before, though the first and last are 12 apart
    results = [
        apply(session, feedback(BOUNCE_TRANSIENT, f"s{n}", at=NOW + timedelta(days=d), sub_type="MailboxFull"))
        for n, d in enumerate(days)
    ]
    assert [r.paused for r in results] == [False, False, True]
    me = session.get(Destination, ids["me"])
    assert me.is_paused and me.paused_at == NOW  # the time it was applied (the clock), not the bounce's
    assert me.soft_bounce_count == 0 and me.bounce_count == 0
    assert me.last_soft_bounce_at == NOW + timedelta(days=12)
    assert me.pause_reason.startswith(
        "3 forwarded messages bounced within 7 days of each other; the last (MailboxFull): smtp; 550"
    )


def test_a_soft_bounce_after_a_longer_gap_starts_the_count_again(session: Session, ids: dict[str, int]) -> None:
    apply(session, feedback(BOUNCE_TRANSIENT, "s1", at=NOW))
    apply(session, feedback(BOUNCE_TRANSIENT, "s2", at=NOW + timedelta(days=7)))  # exactly 7 days: counted
    me = session.get(Destination, ids["me"])
    assert me.soft_bounce_count == 2
    third = apply(session, feedback(BOUNCE_TRANSIENT, "s3", at=NOW + timedelta(days=14, seconds=1)))
    me = session.get(Destination, ids["me"])
    assert not third.paused and not me.is_paused and me.soft_bounce_count == 1


def test_an_older_soft_bounce_arriving_late_counts_by_its_own_time(session: Session, ids: dict[str, int]) -> None:
    apply(session, feedback(BOUNCE_TRANSIENT, "s1", at=NOW))
    apply(session, feedback(BOUNCE_TRANSIENT, "s2", at=NOW - timedelta(days=3)))
    me = session.get(Destination, ids["me"])
    assert (me.soft_bounce_count, me.last_soft_bounce_at) == (2, NOW)


def test_the_soft_bounce_limit_and_window_are_settings(session: Session, ids: dict[str, int]) -> None:
    never = FeedbackRules(soft_bounce_limit=0)
    for n in range(5):
        assert not apply(session, feedback(BOUNCE_TRANSIENT, f"n{n}"), never).paused
    one = FeedbackRules(soft_bounce_limit=1, soft_bounce_window=timedelta(days=1))
    assert apply(
        session, feedback(BOUNCE_TRANSIENT, "once", recipient="other@real.example", message_id="ses-2"), one
    ).paused
    assert session.get(Destination, ids["other"]).pause_reason.startswith("1 forwarded messages bounced within 1 days")


def test_a_complaint_switches_the_alias_off(session: Session, ids: dict[str, int]) -> None:
    applied = apply(session, feedback(COMPLAINT))
    assert (applied.alias_disabled, applied.paused) == (True, False)
    alias = session.get(Alias, ids["alias"])
    assert not alias.enabled
    assert alias.disabled_reason == "Switched off after a spam complaint (abuse) on 2026-11-23 about mail it forwarded."
    me = session.get(Destination, ids["me"])
    assert me.complaint_count == 1 and not me.is_paused
    # a second complaint on the switched-off alias changes its reason no more
    assert not apply(
        session, feedback(COMPLAINT, "c2", message_id="ses-2", recipient="other@real.example")
    ).alias_disabled
    assert session.get(Destination, ids["other"]).complaint_count == 1


def test_complaints_only_count_when_the_setting_says_so(session: Session, ids: dict[str, int]) -> None:
    applied = apply(session, feedback(COMPLAINT), FeedbackRules(complaint_action="count"))
    assert not applied.alias_disabled
    alias = session.get(Alias, ids["alias"])
    assert alias.enabled and alias.disabled_reason is None
    assert session.get(Destination, ids["me"]).complaint_count == 1


def test_a_complaint_does_not_touch_an_alias_its_owner_switched_off(session: Session, ids: dict[str, int]) -> None:
    session.get(Alias, ids["alias"]).enabled = False
    session.commit()
    assert not apply(session, feedback(COMPLAINT)).alias_disabled
    assert session.get(Alias, ids["alias"]).disabled_reason is None


def test_feedback_on_an_unknown_message_id_is_recorded_and_changes_nothing(
    session: Session, ids: dict[str, int]
) -> None:
    for kind in (BOUNCE_PERMANENT, COMPLAINT):
        applied = apply(session, feedback(kind, feedback_id=f"u-{kind}", message_id="never-sent-here"))
        assert (applied.known, applied.alias_id, applied.destination_id, applied.paused) == (False, None, None, False)
    events = session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)).all()
    assert [(e.kind, e.destination_id, e.alias_id) for e in events] == [
        (BOUNCE_PERMANENT, None, None),
        (COMPLAINT, None, None),
    ]
    me = session.get(Destination, ids["me"])
    assert (me.bounce_count, me.complaint_count, me.is_paused) == (0, 0, False)
    assert session.get(Alias, ids["alias"]).enabled


def test_a_destination_whose_address_changed_is_not_paused(session: Session, ids: dict[str, int]) -> None:
    session.get(Destination, ids["me"]).email = "new@real.example"
    session.commit()
    applied = apply(session, feedback())
    assert (applied.known, applied.alias_id, applied.destination_id, applied.paused) == (
        True,
        ids["alias"],
        None,
        False,
    )
    assert not session.get(Destination, ids["me"]).is_paused
    # the alias that carried the message is still known: a complaint switches it off
    assert apply(session, feedback(COMPLAINT, "c1")).alias_disabled


def test_untrusted_text_is_clipped_to_its_columns(session: Session, ids: dict[str, int]) -> None:
    long = "x\x00" * 2000
    apply(session, feedback(detail=long, sub_type="S" * 300))
    (event,) = session.scalars(select(FeedbackEvent))
    assert len(event.detail) == 500 and "\x00" not in event.detail and len(event.sub_type) == 100
    assert len(session.get(Destination, ids["me"]).pause_reason) == 500


def test_the_store_applies_on_its_own_connections(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        store = FeedbackStore(engine, RULES, lambda: NOW)
        assert not store.apply(feedback(message_id="unknown")).duplicate
        assert store.apply(feedback(message_id="unknown")).duplicate
    finally:
        engine.dispose()


def test_rules_come_from_settings_and_check_the_action() -> None:
    from forwarder.settings import Settings

    rules = FeedbackRules.from_settings(
        Settings(soft_bounce_limit=5, soft_bounce_window_days=2, complaint_action="count")
    )
    assert rules == FeedbackRules(5, timedelta(days=2), "count")
    with pytest.raises(ValueError, match="complaint_action"):
        FeedbackRules(complaint_action="bounce")


def test_a_contact_bouncing_or_complaining_about_a_reply_leaves_the_alias_alone(
    session: Session, ids: dict[str, int]
) -> None:
    """Two-way aliases: the owner's reply went from the alias to a contact (outcome replied); what
    the contact's server says of it is about the reply, not about the alias's mail."""
    session.add(
        Delivery(
            inbound_message_id="r1",
            recipient="abcdefghijklmnop@othermail.example",
            alias_id=ids["alias"],
            outcome="replied",
            provider_message_id="ses-reply",
        )
    )
    session.commit()
    complaint = apply(session, feedback(COMPLAINT, "c9", message_id="ses-reply", recipient="jane@shop.example"))
    bounce = apply(session, feedback(BOUNCE_PERMANENT, "b9", message_id="ses-reply", recipient="jane@shop.example"))
    assert complaint.known and not complaint.alias_disabled and not bounce.paused
    assert session.get(Alias, ids["alias"]).enabled
    assert not session.get(Destination, ids["me"]).is_paused
