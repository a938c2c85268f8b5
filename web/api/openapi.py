"""The OpenAPI 3.1 description of ``/api/v1``, built from what the API runs on: its paths, methods and
path parameters from the blueprint's routes, each operation from what its view registered
(``web/api/operations.py``), and every schema from the objects that check request bodies and build
responses (``web/api/schemas.py`` and one module per resource: ``alias_schemas.py``...).

``tests/web/test_openapi.py`` proves they agree: every route is described, the views read their
bodies with the documented schemas, and generated requests get only documented statuses with bodies
of the documented shape.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from flask import Flask, current_app, has_app_context
from werkzeug.routing import Map, Rule

from web.api import PUBLIC_ENDPOINTS, READ_METHODS, bp
from web.api.alias_schemas import ACTIVITY, ALIAS, ALIAS_CREATE, ALIAS_PAGE, ALIAS_UPDATE, DELIVERY
from web.api.contact_schemas import CONTACT, CONTACT_CREATE, CONTACT_LIST, CONTACT_UPDATE, RULE, RULE_CREATE, RULE_LIST
from web.api.destination_schemas import DESTINATION, DESTINATION_INPUT, DESTINATION_LIST
from web.api.operations import OPERATIONS, Operation
from web.api.schemas import ERROR, ID, Body, Resource

Schema = dict[str, Any]
#: Every component schema of the document, by name.
COMPONENTS: tuple[Body | Resource, ...] = (
    ERROR,
    DESTINATION,
    DESTINATION_LIST,
    DESTINATION_INPUT,
    ALIAS,
    ALIAS_PAGE,
    ALIAS_CREATE,
    ALIAS_UPDATE,
    DELIVERY,
    ACTIVITY,
    CONTACT,
    CONTACT_LIST,
    CONTACT_CREATE,
    CONTACT_UPDATE,
    RULE,
    RULE_LIST,
    RULE_CREATE,
)

ERROR_CODES = {
    400: "invalid_request (malformed JSON, unknown field, wrong type or range), or a service's own code: "
    "invalid_email, invalid_domain, invalid_local_part, invalid_expiry, invalid_expired_action, "
    "no_destination, unverified_destination, invalid_contact, invalid_rule, invalid_text",
    401: "unauthorized: no token, an unknown, revoked or expired token, or a deleted account",
    403: "forbidden: a read token tried to change something; email_unverified: the account's own email address "
    "is not confirmed yet, so no destination can be added, changed or sent a link",
    404: "not_found: no such path, or no such object among the caller's own",
    405: "method_not_allowed: the path exists but not with this method (see the Allow header)",
    409: "taken (the address is not free), duplicate (destination already added), limit_reached, already_verified, "
    "not_paused",
    413: "payload_too_large: the body is over 1 MiB",
    429: "rate_limited: too many calls for this token, or too many new aliases or verification emails; "
    "wait Retry-After seconds",
    503: "mail_unavailable: the verification email could not be sent (the mail service is down or not "
    "configured); an added or changed destination stays so, unverified: resend its link later",
}


_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "description": "Seconds to wait.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
RESPONSES: dict[str, Schema] = {
    str(status): {
        "description": text,
        "content": {"application/json": {"schema": ERROR.ref()}},
        **({"headers": _RETRY_AFTER} if status == 429 else {}),
    }
    for status, text in ERROR_CODES.items()
}
#: A path argument, as the rule writes it: ``<converter:name>``.
_ARGUMENT = re.compile(r"<(?:([^:<>()]+)(?:\([^<>]*\))?:)?([^<>]+)>")


@cache
def _bare_url_map() -> Map:
    """The blueprint's routes, for a document built outside a request (the docs build, a test)."""
    app = Flask(__name__)
    app.register_blueprint(bp)
    return app.url_map


def _rules() -> list[Rule]:
    url_map = current_app.url_map if has_app_context() else _bare_url_map()
    return [rule for rule in url_map.iter_rules() if rule.endpoint.startswith(f"{bp.name}.")]


def _path(rule: Rule) -> tuple[str, list[Schema]]:
    """The rule's path as OpenAPI writes it, and its path parameters (every one is an object's id)."""
    parameters = []
    for converter, name in _ARGUMENT.findall(rule.rule):
        if converter != "int":
            raise ValueError(f"{rule.rule}: only <int:...> ids are described")
        parameters.append({"name": name, "in": "path", "required": True, "schema": ID.openapi()})
    return _ARGUMENT.sub(r"{\2}", rule.rule).removeprefix(bp.url_prefix or ""), parameters


def _success(op: Operation) -> Schema:
    response: Schema = {"description": op.response_text}
    if op.response is not None:
        schema = op.response.ref() if isinstance(op.response, Resource) else op.response
        response["content"] = {"application/json": {"schema": schema}}
    return response


def _operation(endpoint: str, method: str, path_parameters: list[Schema]) -> Schema:
    op = OPERATIONS[endpoint]
    public, write = endpoint in PUBLIC_ENDPOINTS, method not in READ_METHODS
    statuses = set(op.errors)
    if not public:
        statuses |= {401, 429}
    statuses |= {403} if write else set()
    statuses |= {404} if path_parameters else set()  # no such object among the caller's own
    statuses |= {400} if op.query else set()
    statuses |= {400, 413} if op.body else set()
    operation: Schema = {
        "operationId": endpoint.removeprefix(f"{bp.name}."),
        "summary": op.summary,
        "tags": [op.tag or endpoint.removeprefix(f"{bp.name}.").split("_")[0]],
    }
    if public:
        operation["security"] = []
    operation["responses"] = {
        str(op.status): _success(op),
        **{str(s): {"$ref": f"#/components/responses/{s}"} for s in sorted(statuses)},
    }
    parameters = path_parameters + [
        {"name": q.name, "in": "query", "required": False, "schema": q.openapi(), "description": q.description}
        for q in op.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if op.body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body.ref()}}}
    if write:
        operation["description"] = "Needs a token with the write scope."
    return operation


def paths() -> dict[str, Schema]:
    """Every route of the blueprint, by path and method."""
    described: dict[str, Schema] = {}
    for rule in _rules():
        path, parameters = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            described.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, method, parameters)
    return described


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "othermail API",
            "version": "1",
            "description": "Throwaway email aliases. Authenticate with a personal API token from "
            "/account/tokens: `Authorization: Bearer om_...`. A read token may only GET. "
            'Every error is `{"error": {"code", "message"}}`; codes: '
            + "; ".join(f"{s}: {t}" for s, t in ERROR_CODES.items())
            + ".",
        },
        "servers": [{"url": bp.url_prefix}],
        "security": [{"bearerAuth": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "om_ token"}},
            "schemas": {schema.name: schema.openapi() for schema in COMPONENTS},
            "responses": RESPONSES,
        },
    }
