"""Two-way aliases on the Lambda path (moto S3 and SES): the SES verdicts decide who may reply."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from forwarder.runtime import Runtime
from tests.forwarder.hosts.lambda_env import PREFIX, Env, aws, env, ses_event  # noqa: F401  (fixtures)

ALIAS = "shop-7hq2@othermail.example"
OWNER = "me@real.example"
KEYS = (("k1", secrets.token_bytes(32)),)


def reply(to: str) -> bytes:
    return (
        f"From: Me <{OWNER}>\r\nTo: {to}\r\nSubject: Re: order\r\nMessage-ID: <r1@real.example>\r\n"
        f"Received: from laptop by smtp.real.example\r\n\r\nThanks! -- {OWNER}\r\n"
    ).encode()


def contact(env: Env, alias_id: int, address: str) -> str:
    runtime = Runtime.build(replace(env.settings, contact_keys=KEYS))
    try:
        return runtime.contacts.create(alias_id, "othermail.example", address).reverse
    finally:
        runtime.close()


def test_an_authenticated_reply_goes_out_through_ses_from_the_alias(env: Env) -> None:
    alias_id = env.alias(ALIAS, OWNER)
    reverse = contact(env, alias_id, "jane@shop.example")
    env.put(PREFIX + "r1", reply(reverse))
    summary = env.runtime(contact_keys=KEYS).handle(ses_event("r1", reverse, dmarc="PASS"))
    assert summary["outcomes"] == {"replied": 1}
    [sent] = env.sent()
    assert sent.source == ALIAS and set(sent.destinations) == {"jane@shop.example"}  # moto lists To too
    assert OWNER not in sent.raw_data and "smtp.real.example" not in sent.raw_data


@pytest.mark.parametrize("verdicts", [{"dmarc": "FAIL"}, {"dmarc": "GRAY", "spf": "FAIL"}])
def test_a_reply_ses_could_not_authenticate_is_dropped_and_never_sent(env: Env, verdicts: dict[str, str]) -> None:
    alias_id = env.alias(ALIAS, OWNER)
    reverse = contact(env, alias_id, "jane@shop.example")
    env.put(PREFIX + "r2", reply(reverse))
    summary = env.runtime(contact_keys=KEYS).handle(ses_event("r2", reverse, **verdicts))
    assert summary["outcomes"] == {"dropped-reply-refused": 1}
    assert [set(m.destinations) for m in env.sent()] == [{OWNER}]  # the owner's notice; nothing to the contact


def test_a_bounce_of_a_reply_is_a_notice_to_the_owner_and_pauses_nothing(env: Env) -> None:
    """SES reports the contact's server bouncing the owner's reply: the owner hears of it (the
    notice links the reply's page), the bounce is passed on to nobody, and nothing is paused."""
    from models import Delivery, Destination
    from tests.forwarder.hosts.test_lambda_feedback import bounce, rows, sns_lambda_event

    alias_id = env.alias(ALIAS, OWNER)
    reverse = contact(env, alias_id, "jane@shop.example")
    env.put(PREFIX + "r1", reply(reverse))
    runtime = env.runtime(contact_keys=KEYS)
    runtime.handle(ses_event("r1", reverse, dmarc="PASS"))
    [delivery] = rows(env, Delivery)
    assert delivery.outcome == "replied" and delivery.provider_message_id
    summary = runtime.handle(sns_lambda_event(bounce(delivery.provider_message_id, "jane@shop.example")))
    assert summary["outcomes"] == {"feedback:bounce-permanent": 1}
    [_reply, notice] = env.sent()
    assert set(notice.destinations) == {OWNER} and notice.source == "noreply@othermail.example"
    assert f"Bounce or automatic answer to mail from {ALIAS}" in notice.raw_data and reverse not in notice.raw_data
    assert "jane@shop.example" not in notice.raw_data  # the notice quotes nobody; the reply's page does
    assert all(d.paused_at is None for d in rows(env, Destination))
    # SNS delivers at least once: the same feedback again tells nobody twice
    runtime.handle(sns_lambda_event(bounce(delivery.provider_message_id, "jane@shop.example")))
    assert len(env.sent()) == 2
