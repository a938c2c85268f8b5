"""forwarder.core.decide: every outcome decide() can reach, in the documented order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from forwarder.core import AliasState, Decision, MessageFacts, Outcome, Policy, Verdicts, decide, forward, prepare
from forwarder.core.decide import message_facts
from forwarder.core.headers import MAX_HOPS, loop_token
from forwarder.core.message import split_message

ALIAS = "shop-7hq2@othermail.example"
NOW = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
OK = AliasState(ALIAS)
NO_FACTS = MessageFacts()
OWN_LOOP = MessageFacts(loop_tokens=(loop_token(ALIAS),))
BOUNCE = MessageFacts(is_bounce=True)
AUTO = MessageFacts(is_auto_reply=True)
SPAM = Verdicts(spam="FAIL")
VIRUS = Verdicts(virus="FAIL")
DMARC_REJECT = Verdicts(dmarc="FAIL", dmarc_policy="reject")
EXPIRED = replace(OK, expires_at=NOW - timedelta(days=1))


def outcome(
    alias: AliasState | None = OK,
    facts: MessageFacts = NO_FACTS,
    verdicts: Verdicts = Verdicts(),
    policy: Policy = Policy(),
    now: datetime = NOW,
) -> Outcome:
    decision = decide(alias, facts, verdicts, policy, now)
    assert isinstance(decision, Decision)
    if decision.outcome is not Outcome.FORWARDED:
        assert decision.reason
    return decision.outcome


def test_defaults_forward() -> None:
    decision = decide(OK, NO_FACTS, Verdicts(), Policy(), NOW)
    assert decision.outcome is Outcome.FORWARDED
    assert decision.forwards


# --- each outcome -------------------------------------------------------------------------------


def test_unknown_alias() -> None:
    assert outcome(alias=None) is Outcome.DROPPED_UNKNOWN_ALIAS


def test_deleted_alias_is_unknown() -> None:
    assert outcome(alias=replace(OK, deleted=True)) is Outcome.DROPPED_UNKNOWN_ALIAS


def test_virus() -> None:
    assert outcome(verdicts=VIRUS) is Outcome.DROPPED_VIRUS


def test_disabled() -> None:
    assert outcome(alias=replace(OK, enabled=False)) is Outcome.DROPPED_DISABLED


def test_expired_by_time_boundary() -> None:
    at = NOW
    assert outcome(alias=replace(OK, expires_at=at)) is Outcome.DROPPED_EXPIRED_TIME
    assert outcome(alias=replace(OK, expires_at=at + TICK)) is Outcome.FORWARDED
    assert outcome(alias=replace(OK, expires_at=at - TICK)) is Outcome.DROPPED_EXPIRED_TIME


def test_expired_by_idleness_boundary_from_last_use() -> None:
    alias = replace(OK, idle_days=30, created_at=NOW - timedelta(days=365))
    assert outcome(alias=replace(alias, last_used_at=NOW - timedelta(days=30))) is Outcome.DROPPED_EXPIRED_IDLE
    assert outcome(alias=replace(alias, last_used_at=NOW - timedelta(days=30) + TICK)) is Outcome.FORWARDED


def test_expired_by_idleness_from_creation_when_never_used() -> None:
    alias = replace(OK, idle_days=7)
    assert outcome(alias=replace(alias, created_at=NOW - timedelta(days=7))) is Outcome.DROPPED_EXPIRED_IDLE
    assert outcome(alias=replace(alias, created_at=NOW - timedelta(days=7) + TICK)) is Outcome.FORWARDED


def test_idleness_without_any_date_never_expires() -> None:
    assert outcome(alias=replace(OK, idle_days=0)) is Outcome.FORWARDED


def test_expired_by_count_boundary() -> None:
    assert outcome(alias=replace(OK, max_messages=10, message_count=10)) is Outcome.DROPPED_EXPIRED_COUNT
    assert outcome(alias=replace(OK, max_messages=10, message_count=11)) is Outcome.DROPPED_EXPIRED_COUNT
    assert outcome(alias=replace(OK, max_messages=10, message_count=9)) is Outcome.FORWARDED
    assert outcome(alias=replace(OK, max_messages=0)) is Outcome.DROPPED_EXPIRED_COUNT


def test_loop_own_token() -> None:
    assert outcome(facts=OWN_LOOP) is Outcome.DROPPED_LOOP


def test_loop_max_hops() -> None:
    others = tuple(loop_token(f"a{i}@othermail.example") for i in range(MAX_HOPS))
    assert outcome(facts=MessageFacts(loop_tokens=others)) is Outcome.DROPPED_LOOP
    assert outcome(facts=MessageFacts(loop_tokens=others[:-1])) is Outcome.FORWARDED


def test_loop_token_matches_alias_case_insensitively() -> None:
    assert outcome(alias=AliasState(ALIAS.upper()), facts=OWN_LOOP) is Outcome.DROPPED_LOOP


def test_bounce() -> None:
    assert outcome(facts=BOUNCE) is Outcome.DROPPED_BOUNCE


def test_auto_reply() -> None:
    assert outcome(facts=AUTO) is Outcome.DROPPED_AUTO_REPLY


def test_spam() -> None:
    assert outcome(verdicts=SPAM) is Outcome.DROPPED_SPAM


def test_dmarc_reject() -> None:
    assert outcome(verdicts=DMARC_REJECT) is Outcome.DROPPED_DMARC
    assert outcome(verdicts=Verdicts(dmarc="fail", dmarc_policy="REJECT")) is Outcome.DROPPED_DMARC


def test_no_destination() -> None:
    assert outcome(alias=replace(OK, destination_count=0)) is Outcome.DROPPED_NO_DESTINATION


def test_every_decide_outcome_is_reachable() -> None:
    reached = {
        outcome(alias=None),
        outcome(verdicts=VIRUS),
        outcome(alias=replace(OK, enabled=False)),
        outcome(alias=EXPIRED),
        outcome(alias=replace(OK, idle_days=1, created_at=NOW - timedelta(days=2))),
        outcome(alias=replace(OK, max_messages=1, message_count=1)),
        outcome(facts=OWN_LOOP),
        outcome(facts=BOUNCE),
        outcome(facts=AUTO),
        outcome(verdicts=SPAM),
        outcome(verdicts=DMARC_REJECT),
        outcome(alias=replace(OK, destination_count=0)),
        outcome(),
    }
    not_from_decide = {
        Outcome.DROPPED_TOO_LARGE,
        Outcome.DROPPED_INVALID,
        Outcome.FAILED_REJECTED,
        Outcome.DROPPED_PAUSED,
        Outcome.DROPPED_RATE_LIMITED,
        Outcome.BOUNCED_EXPIRED,
        # the reply path's (forwarder/core/reply_auth.py and forwarder/flows/reply.py)
        Outcome.REPLIED,
        Outcome.DROPPED_REPLY_REFUSED,
        Outcome.DROPPED_BLOCKED,
        Outcome.DROPPED_REPLY_BOUNCE,
    }  # the pipeline's (forwarder/flows/expired_reject.py)
    assert reached == set(Outcome) - not_from_decide


# --- the documented order ------------------------------------------------------------------------


def test_unknown_alias_comes_first() -> None:
    assert outcome(alias=replace(OK, deleted=True, enabled=False), verdicts=VIRUS) is Outcome.DROPPED_UNKNOWN_ALIAS
    assert outcome(alias=None, facts=OWN_LOOP, verdicts=VIRUS) is Outcome.DROPPED_UNKNOWN_ALIAS


def test_virus_beats_everything_after_it() -> None:
    everything = Verdicts(spam="FAIL", virus="FAIL", dmarc="FAIL", dmarc_policy="reject")
    alias = replace(EXPIRED, enabled=False, destination_count=0)
    facts = MessageFacts(is_bounce=True, is_auto_reply=True, loop_tokens=(loop_token(ALIAS),))
    assert outcome(alias=alias, facts=facts, verdicts=everything) is Outcome.DROPPED_VIRUS


def test_virus_is_dropped_whatever_the_policy() -> None:
    lax = Policy(drop_spam=False, drop_dmarc_reject=False, drop_bounces=False, drop_auto_replies=False)
    assert outcome(verdicts=VIRUS, policy=lax) is Outcome.DROPPED_VIRUS


def test_virus_beats_spam() -> None:
    assert outcome(verdicts=Verdicts(spam="FAIL", virus="FAIL")) is Outcome.DROPPED_VIRUS


def test_disabled_beats_expired() -> None:
    assert outcome(alias=replace(EXPIRED, enabled=False)) is Outcome.DROPPED_DISABLED


def test_time_beats_idle_beats_count() -> None:
    all_three = replace(
        OK, expires_at=NOW, idle_days=1, created_at=NOW - timedelta(days=5), max_messages=1, message_count=3
    )
    assert outcome(alias=all_three) is Outcome.DROPPED_EXPIRED_TIME
    assert outcome(alias=replace(all_three, expires_at=None)) is Outcome.DROPPED_EXPIRED_IDLE
    assert outcome(alias=replace(all_three, expires_at=None, idle_days=None)) is Outcome.DROPPED_EXPIRED_COUNT


def test_expired_beats_loop() -> None:
    assert outcome(alias=EXPIRED, facts=OWN_LOOP) is Outcome.DROPPED_EXPIRED_TIME


def test_loop_beats_bounce_and_spam() -> None:
    facts = MessageFacts(is_bounce=True, loop_tokens=(loop_token(ALIAS),))
    assert outcome(facts=facts, verdicts=SPAM) is Outcome.DROPPED_LOOP


def test_bounce_beats_auto_reply() -> None:
    assert outcome(facts=MessageFacts(is_bounce=True, is_auto_reply=True)) is Outcome.DROPPED_BOUNCE


def test_auto_reply_beats_spam() -> None:
    assert outcome(facts=AUTO, verdicts=SPAM) is Outcome.DROPPED_AUTO_REPLY


def test_spam_beats_dmarc() -> None:
    assert outcome(verdicts=Verdicts(spam="FAIL", dmarc="FAIL", dmarc_policy="reject")) is Outcome.DROPPED_SPAM


def test_dmarc_beats_no_destination() -> None:
    assert outcome(alias=replace(OK, destination_count=0), verdicts=DMARC_REJECT) is Outcome.DROPPED_DMARC


# --- verdicts that never block, and policy switches ----------------------------------------------


@pytest.mark.parametrize("status", ["GRAY", "PROCESSING_FAILED", "DISABLED", "PASS", "", "SOMETHING_NEW", "gray"])
@pytest.mark.parametrize("which", ["spam", "virus", "dmarc"])
def test_other_statuses_never_block(which: str, status: str) -> None:
    verdicts = replace(Verdicts(dmarc_policy="reject"), **{which: status})
    assert outcome(verdicts=verdicts) is Outcome.FORWARDED


@pytest.mark.parametrize("which", ["spf", "dkim"])
def test_spf_and_dkim_fail_alone_do_not_block(which: str) -> None:
    assert outcome(verdicts=replace(Verdicts(), **{which: "FAIL"})) is Outcome.FORWARDED


def test_fail_is_case_insensitive() -> None:
    assert outcome(verdicts=Verdicts(spam="fail")) is Outcome.DROPPED_SPAM
    assert outcome(verdicts=Verdicts(virus="Fail")) is Outcome.DROPPED_VIRUS


def test_drop_spam_false_forwards_spam() -> None:
    assert outcome(verdicts=SPAM, policy=Policy(drop_spam=False)) is Outcome.FORWARDED


def test_drop_dmarc_reject_false_forwards() -> None:
    assert outcome(verdicts=DMARC_REJECT, policy=Policy(drop_dmarc_reject=False)) is Outcome.FORWARDED


@pytest.mark.parametrize("policy", ["quarantine", "none", None, ""])
def test_dmarc_fail_without_reject_policy_forwards(policy: str | None) -> None:
    assert outcome(verdicts=Verdicts(dmarc="FAIL", dmarc_policy=policy)) is Outcome.FORWARDED


def test_drop_bounces_false_forwards_bounce() -> None:
    assert outcome(facts=BOUNCE, policy=Policy(drop_bounces=False)) is Outcome.FORWARDED


def test_drop_auto_replies_false_forwards_auto_reply() -> None:
    assert outcome(facts=AUTO, policy=Policy(drop_auto_replies=False)) is Outcome.FORWARDED


def test_policy_defaults_are_the_safe_ones() -> None:
    assert Policy() == Policy(drop_spam=True, drop_dmarc_reject=True, drop_bounces=True, drop_auto_replies=True)


# --- message_facts ---------------------------------------------------------------------------------


def facts_of(*lines: str, envelope_from: str | None = "sender@example.com") -> MessageFacts:
    raw = "".join(line + "\r\n" for line in ("From: sender@example.com", *lines)) + "\r\nbody"
    return message_facts(split_message(raw.encode()), envelope_from)


@pytest.mark.parametrize("envelope", ["", "<>", " <> "])
def test_null_envelope_sender_is_a_bounce(envelope: str) -> None:
    assert facts_of(envelope_from=envelope).is_bounce


def test_unknown_envelope_sender_is_not_a_bounce() -> None:
    assert not facts_of(envelope_from=None).is_bounce
    assert not facts_of().is_bounce


@pytest.mark.parametrize("value", ["<>", "< >"])
def test_null_return_path_is_a_bounce(value: str) -> None:
    assert facts_of(f"Return-Path: {value}").is_bounce


@pytest.mark.parametrize("report", ["delivery-status", "feedback-report"])
def test_delivery_and_feedback_reports_are_bounces(report: str) -> None:
    assert facts_of(f'Content-Type: multipart/report; report-type={report}; boundary="b"').is_bounce
    assert facts_of(f"Content-Type: Multipart/Report;\r\n report-type={report.upper()}").is_bounce


def test_read_receipt_report_is_not_a_bounce() -> None:
    assert not facts_of("Content-Type: multipart/report; report-type=disposition-notification").is_bounce


@pytest.mark.parametrize(
    "line",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: Auto-Replied (vacation)",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "Precedence: auto_reply",
        "Precedence: AUTO_REPLY",
    ],
)
def test_auto_reply_markers(line: str) -> None:
    assert facts_of(line).is_auto_reply


@pytest.mark.parametrize(
    "line",
    [
        "Auto-Submitted: auto-generated",
        "Auto-Submitted: no",
        "Precedence: bulk",
        "Precedence: list",
        "X-Auto-Response-Suppress: All",
    ],
)
def test_ordinary_automatic_mail_is_not_an_auto_reply(line: str) -> None:
    facts = facts_of(line)
    assert not facts.is_auto_reply
    assert not facts.is_bounce


def test_loop_tokens_are_read_in_order() -> None:
    assert facts_of("X-Othermail-Loop: aaa", "x-othermail-loop:  bbb ").loop_tokens == ("aaa", "bbb")


def test_forward_returns_no_message_for_a_dropped_decision() -> None:
    raw = b"From: a@example.com\r\nAuto-Submitted: auto-replied\r\n\r\nAway."
    result = forward(prepare(raw), AliasState(ALIAS), Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.DROPPED_AUTO_REPLY
    assert result.outgoing is None and result.bytes_out is None
    result = forward(prepare(raw), None, Verdicts(), Policy(), NOW)
    assert result.outcome is Outcome.DROPPED_UNKNOWN_ALIAS


def test_outcome_members_carry_their_reply() -> None:
    assert Outcome.FORWARDED.blocked is False
    assert all(member.blocked for member in Outcome if member not in (Outcome.FORWARDED, Outcome.REPLIED))
    assert Outcome.DROPPED_LOOP.smtp_reply.startswith("554 5.4.6")
    assert str(Outcome.DROPPED_SPAM) == "dropped-spam"
