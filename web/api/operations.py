"""What each API view is, for the OpenAPI document: its summary, its success response, the failures
its service may add, its request body and query parameters. The views read their body and query
through the operation registered for them, so what is documented is what is checked.

The paths, methods and path parameters are not here: ``web/api/openapi.py`` takes them from the
routes themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import request

import web.api.common as common
from web.api.blueprint import bp
from web.api.schemas import NO_NUL, Body, Json, Resource

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class QueryInt:
    name: str
    default: int
    low: int
    high: int
    description: str

    def read(self) -> int:
        return common.query_int(self.name, self.default, self.low, self.high)

    def openapi(self) -> Json:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}


@dataclass(frozen=True)
class QueryText:
    name: str
    max_length: int
    description: str

    def read(self) -> str:
        value = request.args.get(self.name, "")
        if len(value) > self.max_length or "\x00" in value:
            raise common.invalid(f"{self.name} may have at most {self.max_length} characters and no NUL.")
        return value

    def openapi(self) -> Json:
        return {"type": "string", "maxLength": self.max_length, "pattern": NO_NUL}


@dataclass(frozen=True)
class Operation:
    summary: str
    status: int  # of success
    response_text: str
    #: The success body: a component schema, an inline JSON schema, or None for no body.
    response: Resource | Json | None = None
    #: Failures beyond those every operation of its kind has (see openapi.py).
    errors: tuple[int, ...] = ()
    body: Body | None = None
    query: tuple[QueryInt | QueryText, ...] = ()
    tag: str | None = None


#: By endpoint ("api.<view name>").
OPERATIONS: dict[str, Operation] = {}


def operation(summary: str, status: int, response_text: str, **details: Any) -> Callable[[View], View]:
    """Register the view's operation; put it under the route decorator."""

    def register(view: View) -> View:
        OPERATIONS[f"{bp.name}.{view.__name__}"] = Operation(summary, status, response_text, **details)
        return view

    return register


def current() -> Operation:
    return OPERATIONS[str(request.endpoint)]


def request_body() -> dict[str, Any]:
    """The request's body, checked and parsed with the schema documented for this view."""
    body = current().body
    if body is None:
        raise RuntimeError(f"{request.endpoint} documents no request body")
    return body.read()


def query() -> dict[str, Any]:
    """The request's query parameters, checked and parsed as documented for this view."""
    return {parameter.name: parameter.read() for parameter in current().query}
