"""Issue 12.19 on Lambda: mail to an expired alias whose expired_action is "reject" gets an SES
bounce (SendBounce), but only when the sender's SPF passed; otherwise it is dropped (no
backscatter to a forged sender). Drop-mode aliases keep dropping silently.

moto 5 does not implement SendBounce, so the call is answered in botocore's ``before-call`` hook
(after botocore has validated the parameters against SES's API model) and recorded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.flows.expired_reject import SesBouncer
from forwarder.hosts.lambda_handler import LambdaRuntime
from models import Delivery, make_engine, make_session_factory, utcnow
from tests.forwarder.hosts.lambda_env import PREFIX, Env, ses_event

ALIAS = "old-shop@othermail.example"
MESSAGE = b"From: Jane <jane@example.net>\r\nTo: old-shop@othermail.example\r\nSubject: hi\r\n\r\nbody\r\n"


def answer_send_bounce(runtime: LambdaRuntime, env: Env) -> list[dict[str, Any]]:
    """Give ``runtime`` an SES bouncer whose SendBounce calls are recorded and answered."""
    made: list[dict[str, Any]] = []
    client = env.session.client("ses")

    def answer(params: dict[str, Any], model: Any, **_: Any) -> Any:
        if model.name == "SendBounce":
            made.append(params["body"])
            return AWSResponse("https://email.us-east-1.amazonaws.com/", 200, {}, None), {
                "MessageId": f"bounce-{len(made)}",
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }
        return None

    client.meta.events.register("before-call.ses.SendBounce", answer)
    runtime.forwarder.bouncer = SesBouncer(client)
    return made


def outcome_rows(env: Env) -> list[tuple[str, str]]:
    engine = make_engine(env.database_url)
    try:
        with make_session_factory(engine)() as db:
            return [(d.outcome, d.reason) for d in db.scalars(select(Delivery).order_by(Delivery.id))]
    finally:
        engine.dispose()


def expired(env: Env, action: str) -> None:
    env.alias(ALIAS, "a@real.example", expires_at=utcnow() - timedelta(days=1), expired_action=action)


@pytest.mark.parametrize("verdicts", [{"spf": "PASS", "dmarc": "FAIL"}, {"spf": "PASS", "dmarc": "PASS"}])
def test_reject_bounces_through_ses_when_spf_passed(env: Env, verdicts: dict[str, str]) -> None:
    expired(env, "reject")
    memory = MemorySender()
    runtime = env.runtime(sender=memory)
    bounces = answer_send_bounce(runtime, env)
    env.put(PREFIX + "m1", MESSAGE)
    summary = runtime.handle(ses_event("m1", ALIAS, **verdicts))
    assert summary["outcomes"] == {"bounced-expired": 1}
    assert memory.sent == []
    assert len(bounces) == 1
    body = bounces[0]
    assert body["OriginalMessageId"] == "m1"
    assert body["BounceSender"] == "MAILER-DAEMON@othermail.example"
    assert body["BouncedRecipientInfoList.member.1.Recipient"] == ALIAS
    assert body["BouncedRecipientInfoList.member.1.BounceType"] == "DoesNotExist"
    ((outcome, reason),) = outcome_rows(env)
    assert outcome == "bounced-expired" and "bounce" in reason
    # a redelivery of the same event bounces nothing again
    assert runtime.handle(ses_event("m1", ALIAS, **verdicts))["outcomes"] == {"duplicate": 1}
    assert len(bounces) == 1


@pytest.mark.parametrize(
    "verdicts",
    [
        {"spf": "FAIL", "dmarc": "FAIL"},
        {"spf": "GRAY", "dmarc": "PROCESSING_FAILED"},
        {"spf": "FAIL", "dmarc": "FAIL", "dkim": "PASS"},
        # review MEDIUM 4: DMARC passes through DKIM aligned with From
        # while MAIL FROM (where the bounce goes) is forged
        {"spf": "FAIL", "dmarc": "PASS", "dkim": "PASS"},
        {"spf": "GRAY", "dmarc": "PASS", "dkim": "PASS"},
    ],
)
def test_reject_drops_without_a_bounce_unless_spf_passed(env: Env, verdicts: dict[str, str]) -> None:
    expired(env, "reject")
    runtime = env.runtime(sender=MemorySender(), policy=env.settings.policy.__class__(drop_dmarc_reject=False))
    bounces = answer_send_bounce(runtime, env)
    env.put(PREFIX + "m1", MESSAGE)
    summary = runtime.handle(ses_event("m1", ALIAS, **verdicts))
    assert summary["outcomes"] == {"dropped-expired-time": 1}
    assert bounces == []
    ((outcome, reason),) = outcome_rows(env)
    assert outcome == "dropped-expired-time" and "no bounce" in reason and "SPF" in reason


def test_drop_mode_never_bounces(env: Env) -> None:
    expired(env, "drop")
    runtime = env.runtime(sender=MemorySender())
    bounces = answer_send_bounce(runtime, env)
    env.put(PREFIX + "m1", MESSAGE)
    assert runtime.handle(ses_event("m1", ALIAS))["outcomes"] == {"dropped-expired-time": 1}
    assert bounces == []
    assert "bounce" not in outcome_rows(env)[0][1]


def test_the_runtime_builds_an_ses_bouncer(env: Env) -> None:
    runtime = env.runtime()
    assert isinstance(runtime.forwarder.bouncer, SesBouncer)
    runtime.close()


def test_a_failed_bounce_is_logged_and_never_retried(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    expired(env, "reject")
    runtime = env.runtime(sender=MemorySender())
    # moto itself: SendBounce is not implemented there, like an SES error the forwarder cannot fix
    runtime.forwarder.bouncer = SesBouncer(env.session.client("ses"))
    env.put(PREFIX + "m1", MESSAGE)
    summary = runtime.handle(ses_event("m1", ALIAS))
    assert summary["outcomes"] == {"dropped-expired-time": 1}  # what really happened
    ((outcome, reason),) = outcome_rows(env)
    assert outcome == "dropped-expired-time" and "could not be sent" in reason
    assert "could not be sent" in caplog.text
    # at most one bounce per message: a redelivery does not try again
    assert runtime.handle(ses_event("m1", ALIAS))["outcomes"] == {"duplicate": 1}
