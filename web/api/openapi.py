"""The OpenAPI 3.1 description of ``/api/v1``, written as data.

``tests/web/test_openapi.py`` proves it matches the implementation: every route is described,
and generated requests get only documented statuses with bodies of the documented shape. The
limits are the ones the views check, imported rather than repeated.
"""

from __future__ import annotations

from typing import Any

from web.api import aliases as views
from web.api.common import MAX_ID, MAX_PAGE, MAX_PER_PAGE
from web.api.destinations import EMAIL_MAX
from web.services import aliases as alias_service

Schema = dict[str, Any]

ERROR_CODES = {
    400: "invalid_request (malformed JSON, unknown field, wrong type or range), or a service's own code: "
    "invalid_email, invalid_domain, invalid_local_part, invalid_expiry, invalid_expired_action, "
    "no_destination, unverified_destination",
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


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


STRING_TIME = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
IDS = {"type": "array", "items": ID, "minItems": 1, "maxItems": 50}
HOURS = {
    "type": "integer",
    "minimum": views.MIN_HOURS,
    "maximum": views.MAX_HOURS,
    "description": "Expire this many hours from now (1 hour to a year).",
}
IDLE = {
    "type": "integer",
    "minimum": 1,
    "maximum": alias_service.MAX_IDLE_DAYS,
    "description": "Expire after this many days without mail.",
}
MESSAGES = {"type": "integer", "minimum": 1, "maximum": alias_service.MAX_MESSAGES}
EXPIRED_ACTION = {
    "type": "string",
    "enum": list(alias_service.EXPIRED_ACTIONS),
    "description": "What an expired alias does with new mail. drop: accepted and dropped silently. "
    "reject: the sender gets a bounce; on a one box the SMTP listener refuses the "
    "mail with 550 5.1.1 at RCPT, on AWS an SES bounce is sent only when the "
    "sender's SPF passed (SPF vouches for the envelope sender the bounce goes to), "
    "and the mail is dropped otherwise (no bounce to a possibly forged sender).",
}
LABEL = {"type": ["string", "null"], "maxLength": views.LABEL_MAX}
NOTE = {"type": ["string", "null"], "maxLength": views.NOTE_MAX}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "Stable; programs may rely on it."},
                    "message": {"type": "string", "description": "For people; may change."},
                },
            }
        },
    },
    "Destination": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "email", "verified", "verified_at", "created_at", "paused", "paused_at", "pause_reason"],
        "properties": {
            "id": ID,
            "email": {"type": "string"},
            "verified": {"type": "boolean"},
            "verified_at": _nullable(STRING_TIME),
            "created_at": STRING_TIME,
            "paused": {
                "type": "boolean",
                "description": "Mail to it bounced: nothing is forwarded there until it is resumed.",
            },
            "paused_at": _nullable(STRING_TIME),
            "pause_reason": {"type": "string", "description": "Why it was paused; empty when not."},
        },
    },
    "DestinationList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": _ref("Destination")}},
    },
    "DestinationInput": {
        "type": "object",
        "required": ["email"],
        "additionalProperties": False,
        "properties": {"email": {"type": "string", "maxLength": EMAIL_MAX, "format": "email"}},
    },
    "Alias": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "address",
            "enabled",
            "status",
            "status_reason",
            "label",
            "note",
            "destination_ids",
            "expired_action",
            "expires_at",
            "idle_days",
            "max_messages",
            "time_left_seconds",
            "idle_left_seconds",
            "messages_left",
            "message_count",
            "forwarded_count",
            "blocked_count",
            "created_at",
            "last_used_at",
        ],
        "properties": {
            "id": ID,
            "address": {"type": "string"},
            "enabled": {"type": "boolean"},
            "status": {"type": "string", "enum": ["active", "off", "expired"]},
            "status_reason": {"type": "string", "description": "Why it is off or expired; empty when active."},
            "label": LABEL,
            "note": NOTE,
            "destination_ids": {"type": "array", "items": ID},
            "expired_action": EXPIRED_ACTION,
            "expires_at": _nullable(STRING_TIME),
            "idle_days": {"type": ["integer", "null"]},
            "max_messages": {"type": ["integer", "null"]},
            "time_left_seconds": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Until expires_at; null without one.",
            },
            "idle_left_seconds": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Until idle expiry; null without idle_days.",
            },
            "messages_left": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Before max_messages is reached; null without one.",
            },
            "message_count": {"type": "integer", "minimum": 0},
            "forwarded_count": {"type": "integer", "minimum": 0},
            "blocked_count": {"type": "integer", "minimum": 0},
            "created_at": STRING_TIME,
            "last_used_at": _nullable(STRING_TIME),
        },
    },
    "AliasPage": {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("Alias")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "AliasCreate": {
        "type": "object",
        "additionalProperties": False,
        "description": "Every field is optional: {} creates a generated address on the service's first domain, "
        "forwarding to every verified destination of the caller (400 no_destination without one).",
        "properties": {
            "local_part": {
                "type": ["string", "null"],
                "maxLength": views.LOCAL_PART_MAX,
                "description": "Omit (or null) for a generated one.",
            },
            "domain": {
                "type": ["string", "null"],
                "maxLength": views.DOMAIN_MAX,
                "description": "One of the service's alias domains, or a verified domain of "
                "the caller's (/domains); omit for the service's first.",
            },
            "destination_ids": {**IDS, "description": "Verified destinations of the caller; omit for all of them."},
            "label": LABEL,
            "note": NOTE,
            "expires_in_hours": HOURS,
            "idle_days": IDLE,
            "max_messages": {**MESSAGES, "description": "Expire after this many messages."},
            "expired_action": EXPIRED_ACTION,
        },
    },
    "AliasUpdate": {
        "type": "object",
        "additionalProperties": False,
        "description": "Only the fields present change. null clears label or note. Checked as a whole: "
        "a rejected request changes nothing.",
        "properties": {
            "label": LABEL,
            "note": NOTE,
            "enabled": {"type": "boolean"},
            "destination_ids": IDS,
            "expired_action": EXPIRED_ACTION,
            "expires_in_hours": {**HOURS, "description": "Extend: expire this many hours from now."},
            "idle_days": {**IDLE, "description": "Extend: a new idle limit, counted from now."},
            "extra_messages": {**MESSAGES, "description": "Extend: allow this many more messages."},
            "permanent": {"type": "boolean", "description": "true removes every expiry; not with the extend fields."},
        },
    },
    "Delivery": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "outcome",
            "blocked",
            "reason",
            "mail_from",
            "subject",
            "destination_id",
            "received_at",
            "created_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "outcome": {"type": "string"},
            "blocked": {"type": "boolean"},
            "reason": {"type": "string"},
            "mail_from": {"type": ["string", "null"]},
            "subject": {"type": ["string", "null"]},
            "destination_id": {"type": ["integer", "null"]},
            "received_at": _nullable(STRING_TIME),
            "created_at": STRING_TIME,
        },
    },
    "Activity": {
        "type": "object",
        "required": ["items", "totals"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("Delivery")},
            "totals": {
                "type": "object",
                "required": ["forwarded", "blocked"],
                "additionalProperties": False,
                "properties": {
                    "forwarded": {"type": "integer", "minimum": 0},
                    "blocked": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
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
        "content": {"application/json": {"schema": _ref("Error")}},
        **({"headers": _RETRY_AFTER} if status == 429 else {}),
    }
    for status, text in ERROR_CODES.items()
}


def _json(description: str, schema: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Schema],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    params: list[Schema] | None = None,
    write: bool = False,
) -> Schema:
    statuses = sorted({401, 429, *errors, *((403,) if write else ()), *((400, 413) if body else ())})
    operation: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": [op_id.split("_")[0]],
        "responses": {**ok, **{str(s): {"$ref": f"#/components/responses/{s}"} for s in statuses}},
    }
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if write:
        operation["description"] = "Needs a token with the write scope."
    return operation


def _path_id(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


NO_CONTENT = {"204": {"description": "Done; no body."}}
DEST, ALIAS = [_path_id("destination_id")], [_path_id("alias_id")]
PAGING = [
    _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "Page number, from 1."),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 50}, "Aliases per page."),
    _query(
        "q", {"type": "string", "maxLength": views.SEARCH_MAX}, "Only aliases whose address or label contains this."
    ),
]
LIMIT = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": views.ACTIVITY_MAX, "default": 50},
        "How many deliveries, newest first.",
    )
]

PATHS: dict[str, Schema] = {
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/destinations": {
        "get": _op("destinations_list", "Your destinations.", {"200": _json("All of them.", "DestinationList")}, ()),
        "post": _op(
            "destinations_create",
            "Add a destination and email it a verification link.",
            {"201": _json("Added, unverified.", "Destination")},
            (403, 409, 503),
            body="DestinationInput",
            write=True,
        ),
    },
    "/destinations/{destination_id}": {
        "get": _op("destinations_get", "One destination.", {"200": _json("It.", "Destination")}, (404,), params=DEST),
        "patch": _op(
            "destinations_update",
            "Change its address; it is unverified until the new link is followed.",
            {"200": _json("Changed.", "Destination")},
            (404, 409, 503),
            body="DestinationInput",
            params=DEST,
            write=True,
        ),
        "delete": _op(
            "destinations_delete",
            "Remove it; nothing is forwarded there any more.",
            NO_CONTENT,
            (404,),
            params=DEST,
            write=True,
        ),
    },
    "/destinations/{destination_id}/resend": {
        "post": _op(
            "destinations_resend",
            "Email a new verification link.",
            {"202": _json("Sent.", "Destination")},
            (404, 409, 503),
            params=DEST,
            write=True,
        ),
    },
    "/destinations/{destination_id}/resume": {
        "post": _op(
            "destinations_resume",
            "Forward to a paused destination again.",
            {"200": _json("Resumed.", "Destination")},
            (404, 409),
            params=DEST,
            write=True,
        ),
    },
    "/aliases": {
        "get": _op(
            "aliases_list",
            "Your aliases, newest first, a page at a time.",
            {"200": _json("A page.", "AliasPage")},
            (400,),
            params=PAGING,
        ),
        "post": _op(
            "aliases_create",
            "Create an alias (generated or custom address).",
            {"201": _json("Created.", "Alias")},
            (409,),
            body="AliasCreate",
            write=True,
        ),
    },
    "/aliases/{alias_id}": {
        "get": _op("aliases_get", "One alias.", {"200": _json("It.", "Alias")}, (404,), params=ALIAS),
        "patch": _op(
            "aliases_update",
            "Change, switch on or off, extend, or make permanent.",
            {"200": _json("Changed.", "Alias")},
            (404,),
            body="AliasUpdate",
            params=ALIAS,
            write=True,
        ),
        "delete": _op(
            "aliases_delete",
            "Delete it; its address is never issued again.",
            NO_CONTENT,
            (404,),
            params=ALIAS,
            write=True,
        ),
    },
    "/aliases/{alias_id}/activity": {
        "get": _op(
            "aliases_activity",
            "What the alias received, newest first, and totals.",
            {"200": _json("Its deliveries.", "Activity")},
            (400, 404),
            params=[*ALIAS, *LIMIT],
        ),
    },
}


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
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "om_ token"}},
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }
