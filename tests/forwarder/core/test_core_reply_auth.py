"""Only an authenticated, verified destination of the alias may send through a reverse address."""

from __future__ import annotations

import pytest

from forwarder.core import Verdicts
from forwarder.core.outcomes import Outcome
from forwarder.core.reply_auth import aligned, authorize_reply

OWNER = "me@real.example"
DESTINATIONS = ("Me@Real.example", "other@mailbox.example")


def check(verdicts: Verdicts, sender: str | None = OWNER, envelope: str | None = OWNER):
    return authorize_reply(verdicts, from_address=sender, envelope_from=envelope, destinations=DESTINATIONS)


def test_a_dmarc_pass_from_a_destination_goes_out_whatever_its_case() -> None:
    assert check(Verdicts(dmarc="PASS", spf="FAIL"), sender="ME@REAL.EXAMPLE") is None


def test_no_dmarc_record_with_an_aligned_spf_pass_goes_out() -> None:
    assert check(Verdicts(dmarc="GRAY", spf="PASS"), envelope="bounce@mail.real.example") is None


@pytest.mark.parametrize(
    ("verdicts", "sender", "envelope", "why"),
    [
        (Verdicts(dmarc="PASS"), "stranger@evil.example", "stranger@evil.example", "not a verified destination"),
        (Verdicts(dmarc="PASS"), None, OWNER, "not a verified destination"),
        (Verdicts(dmarc="FAIL", spf="PASS"), OWNER, OWNER, "DMARC fail"),
        (Verdicts(dmarc="GRAY", spf="FAIL"), OWNER, OWNER, "SPF fail"),
        (Verdicts(dmarc="GRAY", spf="PASS"), OWNER, "bounce@evil.example", "not aligned"),
        (Verdicts(dmarc="GRAY", spf="PASS", dkim="PASS"), OWNER, None, "not aligned"),
        (Verdicts(dmarc="PROCESSING_FAILED", spf="PASS"), OWNER, OWNER, "DMARC processing_failed"),
        (Verdicts(dmarc="DISABLED", spf="DISABLED", dkim="DISABLED"), OWNER, OWNER, "DMARC disabled"),
    ],
)
def test_everything_else_is_refused_with_its_reason(
    verdicts: Verdicts, sender: str | None, envelope: str | None, why: str
) -> None:
    decision = check(verdicts, sender, envelope)
    assert decision is not None and decision.outcome is Outcome.DROPPED_REPLY_REFUSED
    assert why.lower() in decision.reason.lower()


def test_alignment_is_the_domain_or_a_subdomain_either_way() -> None:
    assert aligned("a@real.example", "b@REAL.example.")
    assert aligned("a@bounces.real.example", "b@real.example")
    assert aligned("a@real.example", "b@mail.real.example")
    assert not aligned("a@notreal.example", "b@real.example")
    assert not aligned("", "b@real.example") and not aligned("a@real.example", "nodomain")
