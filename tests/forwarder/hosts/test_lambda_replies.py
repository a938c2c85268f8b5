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
