"""The Lambda's metrics: one CloudWatch EMF line per invocation on standard output, its values the
outcomes of that invocation (and ``retry`` when the invocation raises for Lambda to retry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from forwarder.errors import MessageNotFound
from forwarder.hosts import lambda_handler
from tests.forwarder.hosts.lambda_env import BUCKET, PREFIX, Env, ses_event
from tests.forwarder.ops.test_metrics import check_emf

ALIAS = "shop-7hq2@othermail.example"
OFF = "off-1@othermail.example"
MESSAGE = (
    b"From: Jane Doe <jane@example.net>\r\nTo: shop-7hq2@othermail.example\r\nSubject: hello\r\n"
    b"Message-ID: <m1@example.net>\r\n\r\nThe body of the EMF test\r\n"
)
CONTEXT = SimpleNamespace(function_name="othermail-forwarder", aws_request_id="req-1")


def emf_lines(out: str) -> list[dict[str, Any]]:
    """Every stdout line that is an EMF document (the Lambda prints nothing else there)."""
    documents = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))  # the whole line is the JSON object, nothing around it
    return documents


def metric_values(document: dict[str, Any]) -> dict[str, int]:
    check_emf(document)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Othermail"
    return {m["Name"]: document[m["Name"]] for m in directive["Metrics"]}


@pytest.fixture
def handler_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    env.alias(ALIAS, "a@real.example")
    env.alias(OFF, "b@real.example", enabled=False)
    env.put(PREFIX + "m1", MESSAGE)
    monkeypatch.setattr(lambda_handler, "_runtime", None)
    monkeypatch.setenv("OTHERMAIL_DATABASE_URL", env.database_url)
    monkeypatch.setenv("OTHERMAIL_S3_BUCKET", BUCKET)
    monkeypatch.setenv("OTHERMAIL_S3_PREFIX", PREFIX)
    monkeypatch.setenv("OTHERMAIL_DOMAINS", "othermail.example")
    yield env
    if lambda_handler._runtime is not None:
        lambda_handler._runtime.close()


def test_each_invocation_prints_one_emf_line_with_its_own_counts(
    handler_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    event = ses_event("m1", ALIAS, "nobody@othermail.example", OFF)
    first = lambda_handler.handler(event, CONTEXT)
    assert first["outcomes"] == {"forwarded": 1, "dropped-unknown-alias": 1, "dropped-disabled": 1}
    (document,) = emf_lines(capsys.readouterr().out)
    assert metric_values(document) == first["outcomes"]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"]]
    assert document["FunctionName"] == "othermail-forwarder"

    # a warm invocation reports only its own outcomes, not the running total
    second = lambda_handler.handler(event, CONTEXT)
    assert second["outcomes"] == {"duplicate": 3}
    (document,) = emf_lines(capsys.readouterr().out)
    assert metric_values(document) == {"duplicate": 3}

    # an event nobody can process: logged as skipped, counted as such
    assert lambda_handler.handler({"unexpected": True}, CONTEXT)["outcomes"] == {"skipped:invalid-event": 1}
    (document,) = emf_lines(capsys.readouterr().out)
    assert metric_values(document) == {"skipped:invalid-event": 1}


def test_an_invocation_that_raises_still_reports_what_it_recorded_plus_a_retry(
    handler_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    event = ses_event("m1", ALIAS)
    event["Records"].append(ses_event("gone", ALIAS)["Records"][0])  # its raw message is not in S3
    with pytest.raises(MessageNotFound):
        lambda_handler.handler(event, CONTEXT)
    (document,) = emf_lines(capsys.readouterr().out)
    assert metric_values(document) == {"forwarded": 1, "retry": 1}


def test_without_a_context_the_metrics_have_no_dimension(handler_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    lambda_handler.handler(ses_event("m1", ALIAS), None)
    (document,) = emf_lines(capsys.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert metric_values(document) == {"forwarded": 1}


def test_the_queue_worker_path_prints_no_emf(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.alias(ALIAS, "a@real.example")
    env.put(PREFIX + "m1", MESSAGE)
    runtime = env.runtime()
    try:
        assert runtime.handle(ses_event("m1", ALIAS))["outcomes"] == {"forwarded": 1}
    finally:
        runtime.close()
    assert emf_lines(capsys.readouterr().out) == []


def test_the_emf_line_names_no_address_and_no_body(handler_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    lambda_handler.handler(ses_event("m1", ALIAS, OFF), CONTEXT)
    out = capsys.readouterr().out
    assert emf_lines(out)
    assert "@" not in out and "real.example" not in out and "body of the EMF" not in out
