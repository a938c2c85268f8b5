"""The API's request and response schemas: each one checks or builds a body and renders itself as an
OpenAPI schema object, so the document (``web/api/openapi.py``) and the views share one description.

The schemas themselves are in one module per resource: ``web/api/alias_schemas.py``,
``contact_schemas.py`` and ``destination_schemas.py``; ``web/api/openapi.py`` lists them all.

A request field reads itself with the checks of ``web/api/common.py`` (their error codes and messages);
a response field takes its value from the object the view returns (``get``) and shapes it (``dump``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any

import web.api.common as common
from models import limits

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


def by_name(*fields: Field, get: Callable[[str], Callable[[Any], Any]] = attrgetter) -> tuple[Field, ...]:
    """The fields, each getting its value by its own name unless it says otherwise."""
    return tuple(one if one.get is not None else replace(one, get=get(one.name)) for one in fields)


# --- shared by several resources ------------------------------------------------------------------

EMAIL_MAX = limits.EMAIL_MAX_LENGTH
COUNT = Int(0)
OPTIONAL_COUNT = Int(0, nullable=True)

ERROR = Resource(
    "Error",
    (
        Field(
            "error",
            Inline(
                Resource(
                    "ErrorDetail",
                    by_name(
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
