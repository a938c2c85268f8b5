"""The API's request and response schemas: each one checks or builds a body and renders itself as an
OpenAPI schema object, so the document (``web/api/openapi.py``) and the views share one description.

A request field reads itself with the checks of ``web/api/common.py`` (their error codes and messages);
a response field takes its value from the object the view returns (``get``) and shapes it (``dump``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import web.api.common as common
from models import RULE_ACTIONS, RULE_KINDS, SENDER_MODES, Alias, limits
from web.services import activity
from web.services import aliases as alias_service
from web.services import contacts as contact_service

Json = dict[str, Any]
#: JSON Schema for "no NUL character", which every string field the API reads refuses.
NO_NUL = "^[^\\u0000]*$"


def _with_null(schema: Json, nullable: bool) -> Json:
    return {**schema, "type": [schema["type"], "null"]} if nullable else schema


# --- field types: read (request), dump (response), openapi ---------------------------------------


@dataclass(frozen=True)
class Str:
    max_length: int | None = None
    nullable: bool = False
    format: str | None = None

    def read(self, data: dict[str, Any], name: str) -> str | None:
        return common.string(data, name, self.max_length or 0, nullable=self.nullable)

    def dump(self, value: Any) -> Any:
        return value

    def openapi(self) -> Json:
        schema: Json = {"type": "string"}
        if self.max_length is not None:
            schema |= {"maxLength": self.max_length, "pattern": NO_NUL}
        if self.format:
            schema["format"] = self.format
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class Int:
    low: int | None = None
    high: int | None = None
    nullable: bool = False
    #: The error code of a value out of range.
    code: str = "invalid_request"

    def read(self, data: dict[str, Any], name: str) -> int | None:
        # common.integer takes null as absent, so a request field is always documented nullable
        return common.integer(data, name, self.low or 0, self.high or 0, self.code)

    def dump(self, value: Any) -> Any:
        return value

    def openapi(self) -> Json:
        schema: Json = {"type": "integer"}
        if self.low is not None:
            schema["minimum"] = self.low
        if self.high is not None:
            schema["maximum"] = self.high
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class Bool:
    def read(self, data: dict[str, Any], name: str) -> bool | None:
        return common.boolean(data, name)

    def dump(self, value: Any) -> Any:
        return value

    def openapi(self) -> Json:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Enum:
    options: tuple[str, ...]

    def read(self, data: dict[str, Any], name: str) -> str | None:
        return common.choice(data, name, self.options)

    def dump(self, value: Any) -> Any:
        return value

    def openapi(self) -> Json:
        return {"type": "string", "enum": list(self.options)}


@dataclass(frozen=True)
class Ids:
    max_items: int = 50

    def read(self, data: dict[str, Any], name: str) -> list[int] | None:
        return common.id_list(data, name, self.max_items)

    def dump(self, value: Any) -> Any:
        return value

    def openapi(self) -> Json:
        return {"type": "array", "items": ID.openapi(), "minItems": 1, "maxItems": self.max_items}


@dataclass(frozen=True)
class Time:
    nullable: bool = False

    def dump(self, value: datetime | None) -> str | None:
        return common.when(value)

    def openapi(self) -> Json:
        return _with_null({"type": "string", "format": "date-time"}, self.nullable)


@dataclass(frozen=True)
class ListOf:
    """A response list of ``item`` (a component schema, referenced) or of a plain field type."""

    item: Resource | Int

    def dump(self, values: Any) -> list[Any]:
        return [self.item.dump(value) for value in values]

    def openapi(self) -> Json:
        return {"type": "array", "items": self.item.ref() if isinstance(self.item, Resource) else self.item.openapi()}


@dataclass(frozen=True)
class Inline:
    """A nested object written out in place rather than as a component."""

    resource: Resource

    def dump(self, value: Any) -> Json:
        return self.resource.dump(value)

    def openapi(self) -> Json:
        return self.resource.openapi()


ID = Int(1, common.MAX_ID)


@dataclass(frozen=True)
class Field:
    name: str
    type: Any  # one of the field types above
    description: str = ""
    required: bool = False  # request bodies only: every response field is always present
    get: Callable[[Any], Any] | None = None  # response only: the value, from the object the view returns

    def openapi(self) -> Json:
        schema = self.type.openapi()
        return {**schema, "description": self.description} if self.description else schema


# --- schemas --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """A request body: a JSON object of only these fields, read in this order (the first fault is reported)."""

    name: str
    fields: tuple[Field, ...]
    description: str = ""

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        """Each field's value (None when absent); ApiError for a body the API refuses."""
        values = {}
        for one in self.fields:
            values[one.name] = one.type.read(data, one.name)
            if one.required and values[one.name] is None:
                raise common.invalid(f"{one.name} is required.")
        return values

    def read(self) -> dict[str, Any]:
        """The request's body, parsed."""
        return self.parse(common.body(one.name for one in self.fields))

    def ref(self) -> Json:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def openapi(self) -> Json:
        schema: Json = {"type": "object", "additionalProperties": False}
        required = [one.name for one in self.fields if one.required]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        schema["properties"] = {one.name: one.openapi() for one in self.fields}
        return schema


@dataclass(frozen=True)
class Resource:
    """A response object: every field, always present."""

    name: str
    fields: tuple[Field, ...] = field(default=())

    def dump(self, source: Any) -> Json:
        return {one.name: one.type.dump(one.get(source)) for one in self.fields if one.get is not None}

    def ref(self) -> Json:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def openapi(self) -> Json:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [one.name for one in self.fields],
            "properties": {one.name: one.openapi() for one in self.fields},
        }


def _fields(*fields: Field, get: Callable[[str], Callable[[Any], Any]] = attrgetter) -> tuple[Field, ...]:
    """The fields, each getting its value by its own name unless it says otherwise."""
    return tuple(one if one.get is not None else replace(one, get=get(one.name)) for one in fields)


# --- limits and shared field descriptions ---------------------------------------------------------

LABEL_MAX = limits.LABEL_MAX_LENGTH
NOTE_MAX = limits.NOTE_MAX_LENGTH
LOCAL_PART_MAX = limits.LOCAL_PART_MAX_LENGTH
DOMAIN_MAX = limits.DOMAIN_MAX_LENGTH
EMAIL_MAX = limits.EMAIL_MAX_LENGTH
MAX_HOURS = int(alias_service.MAX_DURATION.total_seconds() // 3600)
MIN_HOURS = int(alias_service.MIN_DURATION.total_seconds() // 3600)

LABEL = Str(LABEL_MAX, nullable=True)
DISPLAY_NAME = Str(limits.DISPLAY_NAME_MAX_LENGTH)
SENDER_MODE = Enum(SENDER_MODES)
SENDER_MODE_TEXT = (
    "Who may write: any sender not blocked, or allow-only the allow-listed and known, unblocked contacts."
)
NOTE = Str(NOTE_MAX, nullable=True)
EXPIRED_ACTION = Enum(tuple(alias_service.EXPIRED_ACTIONS))
EXPIRED_ACTION_TEXT = (
    "What an expired alias does with new mail. drop: accepted and dropped silently. "
    "reject: the sender gets a bounce; on a one box the SMTP listener refuses the "
    "mail with 550 5.1.1 at RCPT, on AWS an SES bounce is sent only when the "
    "sender's SPF passed (SPF vouches for the envelope sender the bounce goes to), "
    "and the mail is dropped otherwise (no bounce to a possibly forged sender)."
)
# A request's integers are nullable: null is read as absent (common.integer).
HOURS = Int(MIN_HOURS, MAX_HOURS, nullable=True, code="invalid_expiry")
IDLE = Int(1, alias_service.MAX_IDLE_DAYS, nullable=True, code="invalid_expiry")
MESSAGES = Int(1, alias_service.MAX_MESSAGES, nullable=True, code="invalid_expiry")
HOURS_TEXT = "Expire this many hours from now (1 hour to a year)."
IDLE_TEXT = "Expire after this many days without mail."
COUNT = Int(0)
OPTIONAL_COUNT = Int(0, nullable=True)

# --- requests -------------------------------------------------------------------------------------

DESTINATION_INPUT = Body("DestinationInput", (Field("email", Str(EMAIL_MAX, format="email"), required=True),))

# In the order the views checked them before this module existed: the first fault is the one reported.
ALIAS_CREATE = Body(
    "AliasCreate",
    (
        Field("destination_ids", Ids(), "Verified destinations of the caller; omit for all of them."),
        Field(
            "domain",
            Str(DOMAIN_MAX, nullable=True),
            "One of the service's alias domains, or a verified domain of the caller's (/domains); omit for the "
            "service's first.",
        ),
        Field("local_part", Str(LOCAL_PART_MAX, nullable=True), "Omit (or null) for a generated one."),
        Field("label", LABEL),
        Field("note", NOTE),
        Field("expires_in_hours", HOURS, HOURS_TEXT),
        Field("idle_days", IDLE, IDLE_TEXT),
        Field("max_messages", MESSAGES, "Expire after this many messages."),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
    ),
    "Every field is optional: {} creates a generated address on the service's first domain, forwarding to "
    "every verified destination of the caller (400 no_destination without one).",
)
ALIAS_UPDATE = Body(
    "AliasUpdate",
    (
        Field("label", LABEL),
        Field("note", NOTE),
        Field("enabled", Bool()),
        Field("destination_ids", Ids()),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
        Field("expires_in_hours", HOURS, "Extend: expire this many hours from now."),
        Field("idle_days", IDLE, "Extend: a new idle limit, counted from now."),
        Field("extra_messages", MESSAGES, "Extend: allow this many more messages."),
        Field("permanent", Bool(), "true removes every expiry; not with the extend fields."),
        Field("display_name", DISPLAY_NAME, 'The alias\'s name on mail it sends (replies); "" for none.'),
        Field("sender_mode", SENDER_MODE, SENDER_MODE_TEXT),
    ),
    "Only the fields present change. null clears label or note. Checked as a whole: a rejected request "
    "changes nothing.",
)

CONTACT_CREATE = Body(
    "ContactCreate",
    (
        Field("address", Str(EMAIL_MAX, format="email"), "Any outside address (not an alias, not yours).", True),
        Field("name", Str(contact_service.NAME_MAX_LENGTH, nullable=True), "Their name, for your eyes."),
    ),
    "Returns the alias's contact for the address, made when new: mail from your mailbox to its reverse_address "
    "leaves from the alias.",
)
CONTACT_UPDATE = Body("ContactUpdate", (Field("blocked", Bool(), "true: drop its mail to the alias.", True),))
RULE_CREATE = Body(
    "RuleCreate",
    (
        Field("action", Enum(RULE_ACTIONS), required=True),
        Field("kind", Enum(RULE_KINDS), "empty-sender takes no value.", True),
        Field("value", Str(EMAIL_MAX, nullable=True), "An address, or a domain (its subdomains match too)."),
    ),
)

# --- responses ------------------------------------------------------------------------------------

ERROR = Resource(
    "Error",
    (
        Field(
            "error",
            Inline(
                Resource(
                    "ErrorDetail",
                    _fields(
                        Field("code", Str(), "Stable; programs may rely on it."),
                        Field("message", Str(), "For people; may change."),
                        get=itemgetter,
                    ),
                )
            ),
            get=lambda error: error,
        ),
    ),
)

DESTINATION = Resource(
    "Destination",
    _fields(
        Field("id", ID),
        Field("email", Str()),
        Field("verified", Bool(), get=attrgetter("is_verified")),
        Field("verified_at", Time(nullable=True)),
        Field("created_at", Time()),
        Field(
            "paused",
            Bool(),
            "Mail to it bounced: nothing is forwarded there until it is resumed.",
            get=attrgetter("is_paused"),
        ),
        Field("paused_at", Time(nullable=True)),
        Field("pause_reason", Str(), "Why it was paused; empty when not.", get=lambda d: d.pause_reason or ""),
    ),
)
DESTINATION_LIST = Resource("DestinationList", (Field("items", ListOf(DESTINATION), get=lambda rows: rows),))


class AliasNow(NamedTuple):
    """An alias with its state at the moment it is shown."""

    alias: Alias
    state: alias_service.Status

    @classmethod
    def of(cls, alias: Alias, now: datetime) -> AliasNow:
        return cls(alias, alias_service.status(alias, now))


def _alias(name: str) -> Callable[[AliasNow], Any]:
    return lambda shown: getattr(shown.alias, name)


def _seconds(name: str) -> Callable[[AliasNow], int | None]:
    return lambda shown: common.seconds(getattr(shown.state, name))


ALIAS = Resource(
    "Alias",
    _fields(
        Field("id", ID),
        Field("address", Str()),
        Field("enabled", Bool()),
        Field("status", Enum(("active", "off", "expired")), get=lambda shown: shown.state.state),
        Field("status_reason", Str(), "Why it is off or expired; empty when active.", get=lambda s: s.state.reason),
        Field("label", LABEL),
        Field("note", NOTE),
        Field("destination_ids", ListOf(ID), get=lambda shown: sorted(d.id for d in shown.alias.destinations)),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
        Field("expires_at", Time(nullable=True)),
        Field("idle_days", Int(nullable=True)),
        Field("max_messages", Int(nullable=True)),
        Field("time_left_seconds", OPTIONAL_COUNT, "Until expires_at; null without one.", get=_seconds("time_left")),
        Field(
            "idle_left_seconds", OPTIONAL_COUNT, "Until idle expiry; null without idle_days.", get=_seconds("idle_left")
        ),
        Field(
            "messages_left",
            OPTIONAL_COUNT,
            "Before max_messages is reached; null without one.",
            get=lambda shown: shown.state.messages_left,
        ),
        Field("message_count", COUNT),
        Field("forwarded_count", COUNT),
        Field("blocked_count", COUNT),
        Field("created_at", Time()),
        Field("last_used_at", Time(nullable=True)),
        Field("display_name", DISPLAY_NAME, "The alias's name on mail it sends (replies)."),
        Field("sender_mode", SENDER_MODE, SENDER_MODE_TEXT),
        get=_alias,
    ),
)
ALIAS_PAGE = Resource(
    "AliasPage",
    _fields(
        Field("items", ListOf(ALIAS)),
        Field("page", Int(1)),
        Field("per_page", Int(1, common.MAX_PER_PAGE)),
        Field("total", COUNT),
        get=itemgetter,
    ),
)

DELIVERY = Resource(
    "Delivery",
    _fields(
        Field("id", Int()),
        Field("outcome", Str()),
        Field("blocked", Bool(), get=lambda delivery: delivery.outcome in activity.BLOCKED),
        Field("reason", Str()),
        Field("mail_from", Str(nullable=True)),
        Field("subject", Str(nullable=True)),
        Field("destination_id", Int(nullable=True)),
        Field("received_at", Time(nullable=True)),
        Field("created_at", Time()),
    ),
)
ACTIVITY = Resource(
    "Activity",
    _fields(
        Field("items", ListOf(DELIVERY)),
        Field(
            "totals",
            Inline(Resource("Totals", _fields(Field("forwarded", COUNT), Field("blocked", COUNT), get=itemgetter))),
        ),
        get=itemgetter,
    ),
)

CONTACT = Resource(
    "Contact",
    _fields(
        Field("id", ID, get=attrgetter("contact_id")),
        Field("address", Str(), "Their real address."),
        Field("name", Str()),
        Field("reverse_address", Str(), "Write to this from your mailbox to reach them.", get=attrgetter("reverse")),
        Field("origin", Enum(("forward", "user")), "forward: they wrote first; user: you created it."),
        Field("blocked", Bool()),
        Field("forwarded_count", COUNT),
        Field("replied_count", COUNT),
        Field("blocked_count", COUNT),
        Field("last_seen_at", Time(nullable=True)),
        Field("created_at", Time()),
    ),
)
CONTACT_LIST = Resource("ContactList", (Field("items", ListOf(CONTACT), get=lambda rows: rows),))
RULE = Resource(
    "Rule",
    _fields(
        Field("id", ID),
        Field("alias_id", Int(nullable=True), "null: every alias of the account."),
        Field("action", Enum(RULE_ACTIONS)),
        Field("kind", Enum(RULE_KINDS)),
        Field("value", Str()),
    ),
)
RULE_LIST = Resource("RuleList", (Field("items", ListOf(RULE), get=lambda rows: rows),))

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
