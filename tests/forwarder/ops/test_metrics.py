"""Observability: the outcome line, the counters, and both renderings read back.

- Every outcome is one JSON line with the named fields, and no othermail logger ever writes the
  body or a destination address, even when the provider's refusal quotes the address.
- The EMF document is valid against the specification's structure and its values are the counts.
- The Prometheus text parses back with prometheus_client's own parser, label escaping included.
- /healthz and /metrics (the one-box middleware): status codes, access rules, no personal data.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from werkzeug.test import Client

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Policy
from forwarder.errors import PermanentSendError, SendRetryable
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.outcome_log import OutcomeLog, redact
from forwarder.ops.http_endpoints import OpsEndpoints
from forwarder.ops.metrics import (
    OUTCOME_KEYS,
    PROMETHEUS_CONTENT_TYPE,
    Metrics,
    emf_document,
    emf_line,
    escape_label_value,
    prometheus_text,
)
from forwarder.settings import Settings
from models import Alias, Destination, User, make_engine, make_session_factory, utcnow
from tests.support.databases import migrate

ALIAS = "shop-7hq2@othermail.example"
OFF = "switched-off@othermail.example"
DEST = "Zelda.Private-Inbox-7731@secret-destination.example"
BODY_MARK = "BODY-MARKER-q9Zx7 the parcel code is 55-1234"
RAW = (f"From: Jane <jane@example.net>\r\nTo: {ALIAS}\r\nSubject: hi\r\n\r\n{BODY_MARK}\r\n").encode()
LINE_KEYS = {
    "message_id",
    "alias_id",
    "destination_id",
    "outcome",
    "reason",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "duplicate",
    "resent",
    "repairs",
    "event",
}


class ScriptedSender(MemorySender):
    """Sends, refuses for good, or fails for now, quoting the recipient as real providers do."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "send"

    def send(self, raw: bytes, *, sender: str, recipient: str) -> str:
        if self.mode == "reject":
            raise PermanentSendError(
                f"SES MessageRejected: Email address is not verified. The following "
                f"identities failed the check in region US-EAST-1: {recipient.upper()}"
            )
        if self.mode == "retry":
            raise SendRetryable(f"relay failed: 450 4.2.0 <{recipient}>: Recipient address rejected: greylisted")
        return super().send(raw, sender=sender, recipient=recipient)


def make_forwarder(tmp_path: Path, metrics: Metrics | None = None) -> Forwarder:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_session_factory(make_engine(url))
    with sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        destination = Destination(user_id=user.id, email=DEST, verified_at=utcnow())
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(destination)
        off = Alias(address=OFF, user_id=user.id, enabled=False)
        off.destinations.append(destination)
        db.add_all([alias, off])
        db.commit()
    return Forwarder(
        SqlDirectory(sessions), ScriptedSender(), Policy(), utcnow, outcome_log=OutcomeLog(metrics=metrics)
    )


def run_mixed_outcomes(forwarder: Forwarder) -> Counter[str]:
    """A few messages with different outcomes; returns what the reports say happened."""
    happened: Counter[str] = Counter()
    for message_id, recipients in [
        ("m1", (ALIAS,)),
        ("m1", (ALIAS,)),
        ("m2", ("ghost@othermail.example", OFF)),
        ("m3", (ALIAS,)),
    ]:
        for report in forwarder.process(RAW, Inbound(message_id, recipients)):
            happened["duplicate" if report.duplicate else report.outcome.value] += 1
    forwarder.sender.mode = "reject"
    for report in forwarder.process(RAW, Inbound("m4", (ALIAS,))):
        happened[report.outcome.value] += 1
    return happened


# ----------------------------------------------------------------------------- the outcome line


def test_outcome_lines_hold_the_fields_and_never_the_body_or_the_destination(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every othermail logger, at its most talkative
    forwarder = make_forwarder(tmp_path)
    happened = run_mixed_outcomes(forwarder)
    forwarder.sender.mode = "retry"
    with pytest.raises(SendRetryable) as retry:
        forwarder.process(RAW, Inbound("m5", (ALIAS,)))
    assert happened == {
        "forwarded": 2,
        "duplicate": 1,
        "dropped-unknown-alias": 1,
        "dropped-disabled": 1,
        "failed-rejected": 1,
    }
    assert [m.recipient for m in forwarder.sender.sent] == [DEST.lower()] * 2  # it did go to the address

    # whoever logs the retryable error (dispatch retry line, Lambda) sees no address either
    assert DEST.lower() not in str(retry.value).lower() and "destination #1" in str(retry.value)
    ours = [r for r in caplog.records if r.name.startswith("othermail")]
    lines = [json.loads(r.getMessage()) for r in ours if r.name == "othermail.outcome"]
    assert len(lines) == 6
    for line in lines:
        assert set(line) == LINE_KEYS and line["event"] == "message"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert isinstance(line["bytes_in"], int) and line["bytes_in"] == len(RAW)
    by_outcome = {(line["outcome"], line["duplicate"]): line for line in lines}
    forwarded = by_outcome[("forwarded", False)]
    assert forwarded["alias_id"] == 1 and forwarded["destination_id"] == 1 and forwarded["bytes_out"] > len(RAW)
    assert by_outcome[("dropped-disabled", False)]["alias_id"] == 2
    assert by_outcome[("dropped-unknown-alias", False)]["alias_id"] is None
    rejected = by_outcome[("failed-rejected", False)]
    assert "destination #1" in rejected["reason"] and rejected["destination_id"] == 1

    everything = caplog.text + "\n".join(r.getMessage() for r in ours)
    for secret in (DEST, DEST.lower(), DEST.upper(), "secret-destination", BODY_MARK, "q9Zx7"):
        assert secret.lower() not in everything.lower(), secret


def test_redact_replaces_every_spelling_of_the_address() -> None:
    assert redact("550 <A@B.example> and a@b.EXAMPLE", "a@b.example", 7) == "550 <destination #7> and destination #7"
    assert redact("nothing here", "a@b.example", 7) == "nothing here"


# ----------------------------------------------------------------------------- the registry


def test_the_registry_counts_what_outcome_log_counts_across_threads() -> None:
    metrics = Metrics(clock=lambda: 1_700_000_000.0)
    log = OutcomeLog(logging.getLogger("othermail.test-silent"), metrics=metrics)

    def skip_many() -> None:
        for _ in range(1000):
            log.skipped("invalid-event", "x")

    threads = [threading.Thread(target=skip_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.snapshot() == {"skipped:invalid-event": 8000}
    assert metrics.started_at == 1_700_000_000.0


# ----------------------------------------------------------------------------- CloudWatch EMF

# The structure the EMF specification requires (its "Embedded metric format document structure").
EMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer"},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "array",
                                    "minItems": 0,
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {"enum": ["Count", "None", "Seconds", "Milliseconds", "Bytes"]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def check_emf(document: dict[str, Any]) -> None:
    """Valid structure, and every reference resolves to a root member of the right type."""
    jsonschema.validate(document, EMF_SCHEMA)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(document[name], str) and len(document[name]) <= 1024
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_emf_document_read_back_equals_the_counts(tmp_path: Path) -> None:
    metrics = Metrics()
    forwarder = make_forwarder(tmp_path, metrics)
    happened = run_mixed_outcomes(forwarder)
    counts = forwarder._log.counts
    assert counts == happened and metrics.snapshot() == happened

    line = emf_line(counts, timestamp_ms=1_764_000_000_123)
    assert "\n" not in line
    document = json.loads(line)
    check_emf(document)
    assert document["_aws"]["Timestamp"] == 1_764_000_000_123
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Othermail"
    assert directive["Dimensions"] == [[]]
    assert {m["Name"] for m in directive["Metrics"]} == set(happened)
    assert all(m["Unit"] == "Count" for m in directive["Metrics"])
    assert {name: document[name] for name in happened} == dict(happened)
    assert set(document) == {"_aws", *happened}


def test_emf_dimensions_are_root_members_and_zero_counts_are_left_out() -> None:
    document = emf_document(
        {"forwarded": 3, "dropped-spam": 0, "skipped:invalid-event": 1, "retry": 1},
        namespace="Othermail-staging",
        dimensions={"FunctionName": "othermail-forwarder"},
        timestamp_ms=1,
    )
    check_emf(document)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Othermail-staging"
    assert directive["Dimensions"] == [["FunctionName"]] and document["FunctionName"] == "othermail-forwarder"
    assert [m["Name"] for m in directive["Metrics"]] == ["forwarded", "retry", "skipped:invalid-event"]
    assert "dropped-spam" not in document
    with pytest.raises(ValueError):
        emf_document({"FunctionName": 1}, dimensions={"FunctionName": "x"})
    with pytest.raises(ValueError):
        emf_document({f"m{i}": 1 for i in range(101)})


# ----------------------------------------------------------------------------- Prometheus text

SAMPLE_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? '
    r"-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$"
)


def families(text: str) -> dict[str, Any]:
    for line in text.splitlines():  # the format, line by line, strictly
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE_LINE.match(line), line
    assert text.endswith("\n")
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_prometheus_text_read_back_equals_the_counts(tmp_path: Path) -> None:
    metrics = Metrics(clock=lambda: 1_764_000_000.25)
    forwarder = make_forwarder(tmp_path, metrics)
    happened = run_mixed_outcomes(forwarder)
    counts = metrics.snapshot()
    counts["retry"] = 3
    counts["skipped:spool-entry-missing"] = 2
    text = prometheus_text(counts, spool_pending=4, start_time=metrics.started_at)
    found = families(text)

    messages = found["othermail_messages"]  # the parser names a counter family without _total
    assert messages.type == "counter"
    values = {s.labels["outcome"]: s.value for s in messages.samples if s.name == "othermail_messages_total"}
    assert set(values) == set(OUTCOME_KEYS)  # every outcome has a series, zero until it happens
    assert {k: v for k, v in values.items() if v} == {k: float(v) for k, v in happened.items()}
    assert [(s.labels, s.value) for s in found["othermail_skipped"].samples if s.name.endswith("_total")] == [
        ({"reason": "spool-entry-missing"}, 2.0)
    ]
    assert [s.value for s in found["othermail_retries"].samples if s.name.endswith("_total")] == [3.0]
    assert found["othermail_spool_pending"].type == "gauge"
    assert [s.value for s in found["othermail_spool_pending"].samples] == [4.0]
    assert [s.value for s in found["process_start_time_seconds"].samples] == [1_764_000_000.25]
    assert "real.example" not in text and "@" not in text
    assert PROMETHEUS_CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_label_values_are_escaped() -> None:
    odd = 'back\\slash "quoted"\nnew line'
    assert escape_label_value(odd) == 'back\\\\slash \\"quoted\\"\\nnew line'
    text = prometheus_text({f"skipped:{odd}": 1, 'weird"outcome': 2})
    found = families(text)
    assert [s.labels["reason"] for s in found["othermail_skipped"].samples if s.name.endswith("_total")] == [odd]
    outcomes = {s.labels["outcome"]: s.value for s in found["othermail_messages"].samples if s.name.endswith("_total")}
    assert outcomes['weird"outcome'] == 2.0


# ----------------------------------------------------------------------------- /healthz and /metrics


def flask_stand_in(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the web app"]


def ops_client(health: dict[str, Any], token: str = "") -> Client:
    app = OpsEndpoints(
        flask_stand_in, health=lambda: health, metrics=lambda: prometheus_text({"forwarded": 1}), token=token
    )
    return Client(app)


def test_healthz_answers_200_when_every_part_is_ok_and_503_naming_the_failing_part() -> None:
    ok = {"status": "ok", "database": "ok", "spool_pending": 0, "smtp": "listening"}
    response = ops_client(ok).get("/healthz")
    assert response.status_code == 200 and response.json == ok
    assert response.headers["Cache-Control"] == "no-store"
    failing = {"status": "failing", "database": "unreachable (OperationalError)", "failing": ["database"]}
    response = ops_client(failing).get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 503 and response.json["failing"] == ["database"]
    assert ops_client(ok).post("/healthz").status_code == 405
    assert ops_client(ok).get("/signin").get_data() == b"the web app"  # everything else: the app


def test_metrics_without_a_token_answers_loopback_only_and_not_through_a_proxy() -> None:
    client = ops_client({"status": "ok"})
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        response = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 200, address
        assert response.headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE
        assert 'othermail_messages_total{outcome="forwarded"} 1' in response.get_data(as_text=True)
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403
    proxied = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert proxied.status_code == 403
    assert client.head("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_data() == b""


def test_metrics_with_a_token_wants_it_from_everyone() -> None:
    client = ops_client({"status": "ok"}, token="s3cret-scrape-token")
    local = {"REMOTE_ADDR": "127.0.0.1"}
    refused = client.get("/metrics", environ_base=local)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", environ_base=local, headers={"Authorization": "Bearer wrong"}).status_code == 401
    remote = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}, headers={"Authorization": "Bearer s3cret-scrape-token"}
    )
    assert remote.status_code == 200


def test_one_box_health_names_an_unreachable_database(tmp_path: Path) -> None:
    from forwarder.hosts.onebox import OneBox

    settings = Settings(
        data_dir=tmp_path / "var",
        sender="outbox",
        outbox=tmp_path / "var" / "outbox",
        store_dir=tmp_path / "var" / "mail",
    )
    box = OneBox(settings, web_port=None, smtp_port=None, sender=MemorySender(), workers=1)
    try:
        assert box.health() == {"status": "ok", "database": "ok", "spool_pending": 0}
        healthy_engine = box.engine
        box.engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite'}")
        report = box.health()
        assert report["status"] == "failing" and report["failing"] == ["database"]
        assert report["database"] == "unreachable (OperationalError)"
        response = Client(OpsEndpoints(flask_stand_in, health=box.health, metrics=box.metrics_text)).get("/healthz")
        assert response.status_code == 503
        box.engine.dispose()
        box.engine = healthy_engine
        families(box.metrics_text())
    finally:
        box.stop(timeout=5)
