"""The OpenAPI document matches the API: every route is described, and schemathesis-generated
requests (valid and invalid) get only documented statuses, content types, headers and bodies."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models import Alias, Delivery, Destination, User, utcnow
from web.api.openapi import document
from web.services import tokens

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def seed(app: Flask) -> str:
    """A user with a verified destination and a few aliases; returns a write token's secret."""
    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        now = utcnow()
        user = User(email="schema@example.org", password_hash="x", email_verified_at=utcnow())
        db.add(user)
        db.flush()
        destination = Destination(user_id=user.id, email="inbox@example.org", verified_at=now)
        db.add(destination)
        db.add(Destination(user_id=user.id, email="pending@example.org"))
        for n, extra in enumerate(
            [{}, {"expires_at": now + timedelta(hours=5), "max_messages": 3}, {"idle_days": 2, "enabled": False}]
        ):
            db.add(
                Alias(
                    address=f"seed{n}@othermail.example",
                    user_id=user.id,
                    label=f"seed {n}",
                    destinations=[destination],
                    **extra,
                )
            )
        db.flush()
        first = db.query(Alias).filter_by(address="seed0@othermail.example").one()
        db.add_all(
            [
                Delivery(
                    inbound_message_id="<m1@x>",
                    recipient=first.address,
                    alias_id=first.id,
                    destination_id=destination.id,
                    outcome="forwarded",
                    mail_from="shop@example.com",
                    subject="Hello",
                    received_at=now,
                ),
                Delivery(
                    inbound_message_id="<m2@x>",
                    recipient=first.address,
                    alias_id=first.id,
                    outcome="dropped-spam",
                    reason="spam",
                ),
            ]
        )
        db.commit()
        _, secret = tokens.create(db, user, "schemathesis", "write", None)
        db.close()
    return secret


@pytest.fixture
def write_token(app: Flask) -> str:
    app.config["RATE_LIMITS"] = {
        **app.config["RATE_LIMITS"],
        "api": (10_000, 60),
        "alias-create": (10_000, 3600),
        "verification": (10_000, 3600),
    }
    return seed(app)


#: Loaded from the data the app serves (checked in ``test_the_document_is_served_as_json...``).
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case, app: Flask, write_token: str) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {write_token}"}, checks=CHECKS)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/destinations", {}, 200),
        ("GET", "/destinations/{destination_id}", {"path_parameters": {"destination_id": 1}}, 200),
        ("POST", "/destinations/{destination_id}/resend", {"path_parameters": {"destination_id": 2}}, 202),
        ("GET", "/aliases", {"query": {"q": "seed", "per_page": 2}}, 200),
        ("POST", "/aliases", {"body": {"destination_ids": [1], "expires_in_hours": 2, "max_messages": 5}}, 201),
        ("GET", "/aliases/{alias_id}", {"path_parameters": {"alias_id": 2}}, 200),
        (
            "PATCH",
            "/aliases/{alias_id}",
            {"path_parameters": {"alias_id": 3}, "body": {"idle_days": 9, "note": None}},
            200,
        ),
        ("GET", "/aliases/{alias_id}/activity", {"path_parameters": {"alias_id": 1}}, 200),
        (
            "POST",
            "/aliases/{alias_id}/contacts",
            {"path_parameters": {"alias_id": 1}, "body": {"address": "bob@example.net"}},
            201,
        ),
        (
            "POST",
            "/aliases/{alias_id}/rules",
            {"path_parameters": {"alias_id": 1}, "body": {"action": "block", "kind": "domain", "value": "x.example"}},
            201,
        ),
        ("DELETE", "/aliases/{alias_id}", {"path_parameters": {"alias_id": 1}}, 204),
    ],
)
def test_seeded_successes_conform_to_the_document(
    app: Flask, write_token: str, method: str, path: str, kwargs: dict, status: int
) -> None:
    """The generated requests above mostly miss; these known-good ones surely reach the success schemas."""
    case = schema[path][method].Case(**kwargs)
    response = case.call_and_validate(app=app, headers={"Authorization": f"Bearer {write_token}"}, checks=CHECKS)
    assert response.status_code == status
    if path.endswith("/activity"):
        assert [item["outcome"] for item in response.json()["items"]] == ["dropped-spam", "forwarded"]


def _documented() -> set[tuple[str, str]]:
    doc = document()
    base = doc["servers"][0]["url"]
    return {(base + path, method.upper()) for path, item in doc["paths"].items() for method in item}


def _routed(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes |= {(path, method) for method in (rule.methods or set()) - IGNORED_METHODS}
    return routes


def test_every_route_is_documented_and_every_documented_operation_is_routed(app: Flask) -> None:
    routed, documented = _routed(app), _documented()
    assert routed == documented
    assert ("/api/v1/aliases/{alias_id}", "PATCH") in routed and len(routed) == 23


def test_the_document_is_served_as_json_and_declares_bearer_auth(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    doc = response.get_json()
    assert doc == json.loads(json.dumps(document()))  # what the generated tests above were built from
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "om_ token",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path != "/openapi.json":
                assert {"401", "429"} <= set(operation["responses"]), (path, method)
            if method != "get":
                assert "403" in operation["responses"], (path, method)
