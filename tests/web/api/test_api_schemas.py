"""The OpenAPI document and the API have one source: the routes and the schemas the views check
bodies with and build responses from (web/api/schemas.py, web/api/operations.py).

- every route of the blueprint is an operation of the document, and the other way round;
- every view that takes a body reads it with the very schema its operation documents, and that
  schema refuses exactly the values the documented JSON Schema refuses;
- a real response of every operation validates against its documented schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.web.test_openapi import seed
from web.api import bp
from web.api.common import ApiError
from web.api.openapi import document
from web.api.operations import OPERATIONS
from web.api.schemas import Body

DOC = document()
BASE = DOC["servers"][0]["url"]
REGISTRY = Registry().with_resource("urn:othermail-api", DRAFT202012.create_resource(DOC))
IGNORED_METHODS = {"HEAD", "OPTIONS"}
#: A value each required field accepts, to test the other fields one at a time.
VALID = {
    "email": "someone@example.net",
    "address": "bob@example.net",
    "blocked": True,
    "action": "block",
    "kind": "empty-sender",
}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` (a reference into the document, or a schema without one)."""
    if "$ref" in schema:
        schema = {"$ref": "urn:othermail-api" + schema["$ref"]}
    return Draft202012Validator(schema, registry=REGISTRY)


def _component(name: str) -> Draft202012Validator:
    return _validator({"$ref": f"#/components/schemas/{name}"})


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def _concrete(path: str, ids: dict[str, int]) -> str:
    return BASE + path.format(**ids)


@pytest.fixture
def token(app: Flask) -> str:
    app.config["RATE_LIMITS"] = {
        **app.config["RATE_LIMITS"],
        "api": (100_000, 60),
        "alias-create": (100_000, 3600),
        "verification": (100_000, 3600),
    }
    return seed(app)


@pytest.fixture
def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- routes ---------------------------------------------------------------------------------------


def test_every_route_has_an_operation_and_every_operation_a_route(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith(f"{bp.name}.")}
    assert endpoints == set(OPERATIONS)
    documented = {(BASE + path, method) for path, method, _ in _operations()}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(f"{bp.name}."):
            path = rule.rule.replace("<int:", "{").replace(">", "}")
            routed |= {(path, method) for method in (rule.methods or set()) - IGNORED_METHODS}
    assert routed == documented and len(routed) == 23


def test_the_document_built_in_the_app_is_the_one_built_outside_it(app: Flask) -> None:
    with app.app_context():
        assert document() == DOC


# --- request bodies -------------------------------------------------------------------------------


def _body_operations() -> list[tuple[str, str, str]]:
    found = []
    for path, method, operation in _operations():
        body = operation.get("requestBody")
        if body:
            found.append((path, method, body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]))
    return found


def _candidates(schema: dict[str, Any]) -> list[Any]:
    """Values on and around every limit the documented property schema states, and of every JSON type."""
    values: list[Any] = [None, True, False, 0, 1, -1, 1.5, "", "x", "a\x00b", [], {}, [1], ["1"]]
    if "maxLength" in schema:
        values += ["a" * schema["maxLength"], "a" * (schema["maxLength"] + 1)]
    for bound in ("minimum", "maximum"):
        if bound in schema:
            values += [schema[bound] - 1, schema[bound], schema[bound] + 1]
    values += list(schema.get("enum", [])) + ["bogus"]
    if schema.get("type") == "array":
        item = schema["items"]
        values += [[item["minimum"] - 1], [item["maximum"] + 1], [True], [1] * schema["maxItems"]]
        values += [[1] * (schema["maxItems"] + 1)]
    return values


def _body_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    cases = []
    for path, method, name in _body_operations():
        schema = DOC["components"]["schemas"][name]
        required = {field: VALID[field] for field in schema.get("required", [])}
        cases += [(path, method, name, {}), (path, method, name, {**required, "unknown": 1})]
        for field, field_schema in schema["properties"].items():
            cases += [(path, method, name, {**required, field: value}) for value in _candidates(field_schema)]
    return cases


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(schema name, accepted) of every body a view reads."""
    seen: list[tuple[str, bool]] = []
    original = Body.read

    def spy(self: Body) -> dict[str, Any]:
        try:
            parsed = original(self)
        except ApiError:
            seen.append((self.name, False))
            raise
        seen.append((self.name, True))
        return parsed

    monkeypatch.setattr(Body, "read", spy)
    return seen


def test_every_body_taking_operation_is_tested() -> None:
    assert {(path, method) for path, method, _ in _body_operations()} == {
        ("/destinations", "POST"),
        ("/destinations/{destination_id}", "PATCH"),
        ("/aliases", "POST"),
        ("/aliases/{alias_id}", "PATCH"),
        ("/aliases/{alias_id}/contacts", "POST"),
        ("/contacts/{contact_id}", "PATCH"),
        ("/aliases/{alias_id}/rules", "POST"),
        ("/rules", "POST"),
    }


def test_a_view_reads_its_body_with_the_documented_schema_and_refuses_what_it_refuses(
    app: Flask, headers: dict[str, str], reads: list[tuple[str, bool]]
) -> None:
    """One test over every case (a few hundred requests on one seeded database): for each, the view
    read the body once, with the schema its operation documents, and accepted it exactly when the
    documented JSON Schema does; a refusal is a 400 naming the field."""
    client = app.test_client()
    disagreements = []
    for path, method, name, body in _body_cases():
        reads.clear()
        response = client.open(
            _concrete(path, {"alias_id": 1, "destination_id": 1, "contact_id": 1}),
            method=method,
            json=body,
            headers=headers,
        )
        assert [read for read, _ in reads] == [name], (path, method, body, reads)
        documented_valid = _component(name).is_valid(body)
        if reads[0][1] != documented_valid:
            disagreements.append((path, method, body, "accepted" if reads[0][1] else response.get_json()))
        if not reads[0][1]:
            assert response.status_code == 400, (path, method, body, response.get_json())
            assert response.get_json()["error"]["code"] in {"invalid_request", "invalid_expiry"}
    assert disagreements == []


def test_every_refusal_of_the_schema_is_documented_as_an_error_of_the_operation() -> None:
    for path, method, _ in _body_operations():
        responses = DOC["paths"][path][method.lower()]["responses"]
        assert {"400", "413"} <= set(responses), (path, method)


# --- responses ------------------------------------------------------------------------------------

#: (method, path, body, status): a request that succeeds, for each operation of the document.
SUCCESSES = [
    ("GET", "/openapi.json", None, 200),
    ("GET", "/destinations", None, 200),
    ("POST", "/destinations", {"email": "new@example.net"}, 201),
    ("GET", "/destinations/{destination_id}", None, 200),
    ("PATCH", "/destinations/{destination_id}", {"email": "changed@example.net"}, 200),
    ("POST", "/destinations/{destination_id}/resend", None, 202),
    ("POST", "/destinations/{destination_id}/resume", None, 200),
    ("DELETE", "/destinations/{destination_id}", None, 204),
    ("GET", "/aliases", None, 200),
    ("POST", "/aliases", {"destination_ids": [1], "expires_in_hours": 2, "max_messages": 5, "label": "x"}, 201),
    ("GET", "/aliases/{alias_id}", None, 200),
    ("PATCH", "/aliases/{alias_id}", {"idle_days": 9, "note": None, "enabled": True}, 200),
    ("GET", "/aliases/{alias_id}/activity", None, 200),
    ("GET", "/aliases/{alias_id}/contacts", None, 200),
    ("POST", "/aliases/{alias_id}/contacts", {"address": "Bob@Example.net", "name": "Bob"}, 201),
    ("PATCH", "/contacts/{contact_id}", {"blocked": True}, 200),
    ("DELETE", "/contacts/{contact_id}", None, 204),
    ("GET", "/aliases/{alias_id}/rules", None, 200),
    ("POST", "/aliases/{alias_id}/rules", {"action": "block", "kind": "domain", "value": "spam.example"}, 201),
    ("POST", "/rules", {"action": "block", "kind": "empty-sender"}, 201),
    ("GET", "/rules", None, 200),
    ("DELETE", "/rules/{rule_id}", None, 204),
    ("DELETE", "/aliases/{alias_id}", None, 204),
]


def _contact_and_rule(app: Flask) -> tuple[int, int]:
    """A contact of alias 1 (seed0@othermail.example), a rule of that alias and one of its owner's account."""
    runtime = app.extensions["othermail.runtime"]
    contact = runtime.contacts.create(1, "othermail.example", "carol@example.com", "Carol")
    runtime.contacts.contacts_for(1, "othermail.example", [("carol@example.com", "Carol")])
    rule_id = runtime.contacts.add_rule(1, 1, "allow", "address", "friend@example.com")
    runtime.contacts.add_rule(1, None, "block", "domain", "spam.example")
    return contact.contact_id, rule_id


def _pause(app: Flask, destination_id: int) -> None:
    from models import Destination, utcnow

    with app.app_context():
        db = app.extensions["othermail.sessions"]()
        row = db.get(Destination, destination_id)
        row.paused_at, row.pause_reason = utcnow(), "bounced"
        db.commit()
        db.close()


def test_every_operation_is_among_the_successes() -> None:
    assert {(method, path) for method, path, _, _ in SUCCESSES} == {(m, p) for p, m, _ in _operations()}


@pytest.mark.parametrize(("method", "path", "body", "status"), SUCCESSES)
def test_a_real_response_validates_against_its_documented_schema(
    app: Flask, headers: dict[str, str], method: str, path: str, body: Any, status: int
) -> None:
    # seeded: destination 1 verified, 2 pending (to resend to); alias 1 has two deliveries
    destination_id = 2 if path.endswith("/resend") else 1
    if path.endswith("/resume"):
        _pause(app, destination_id)
    contact_id, rule_id = _contact_and_rule(app)
    client: FlaskClient = app.test_client()
    ids = {"alias_id": 1, "destination_id": destination_id, "contact_id": contact_id, "rule_id": rule_id}
    response = client.open(_concrete(path, ids), method=method, json=body, headers=headers)
    assert response.status_code == status, response.get_json()
    documented = DOC["paths"][path][method.lower()]["responses"][str(status)]
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        assert response.data == b""
        return
    payload = response.get_json()
    errors = [error.message for error in _validator(schema).iter_errors(payload)]
    assert errors == []
    if path.endswith("/activity"):
        assert len(payload["items"]) == 2  # the items' schema was exercised
    if path.endswith(("/contacts", "/rules")) and method == "GET":
        assert len(payload["items"]) == 1  # the items' schema was exercised


def test_an_error_response_validates_against_the_error_schema(client: FlaskClient, headers: dict[str, str]) -> None:
    for response in (
        client.post(BASE + "/aliases", json={"label": "a" * 101}, headers=headers),
        client.get(BASE + "/aliases/999", headers=headers),
        client.get(BASE + "/aliases"),
    ):
        assert response.status_code in (400, 401, 404)
        assert _component("Error").is_valid(response.get_json()), response.get_json()
