"""What every API view shares: the caller, JSON errors, input checking, and how times are shown.

Input is checked strictly: a body must be a JSON object with only known fields, each of the
documented type and range (``web/api/schemas.py`` reads bodies with the checks here); anything
else is ``invalid_request``. Responses are built by the schemas of ``web/api/schemas.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Response, g, jsonify, request

from forwarder.errors import ApiError
from models import ApiToken, User

MAX_ID = 2**31 - 1
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def object_id(value: int, what: str) -> int:
    """A path id, or 404 for one no row can have (the route's int converter takes any size)."""
    if not 1 <= value <= MAX_ID:
        raise ApiError(404, "not_found", f"No such {what}.")
    return value


def token() -> ApiToken:
    found: ApiToken = g.api_token
    return found


def user() -> User:
    return token().user


# --- input -------------------------------------------------------------------------------------


def body(allowed: Iterable[str]) -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise invalid(f"Unknown field(s): {', '.join(unknown)}.")
    return data


def string(data: dict[str, Any], name: str, max_length: int, *, nullable: bool = False) -> str | None:
    """The field as a string ('' for an explicit null when ``nullable``), or None when absent."""
    if name not in data:
        return None
    value = data[name]
    if value is None and nullable:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string.")
    if len(value) > max_length:
        raise invalid(f"{name} may have at most {max_length} characters.")
    if "\x00" in value:
        raise invalid(f"{name} may not contain NUL characters.")
    return value


def integer(data: dict[str, Any], name: str, low: int, high: int, code: str = "invalid_request") -> int | None:
    """The field as an int within [low, high], or None when absent or null."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer.")
    if not low <= value <= high:
        raise ApiError(400, code, f"{name} must be between {low} and {high}.")
    return value


def boolean(data: dict[str, Any], name: str) -> bool | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false.")
    return value


def choice(data: dict[str, Any], name: str, choices: Iterable[str]) -> str | None:
    if name not in data:
        return None
    value = data[name]
    options = list(choices)
    if value not in options:
        raise invalid(f"{name} must be one of: {', '.join(options)}.")
    return str(value)


def id_list(data: dict[str, Any], name: str, max_items: int = 50) -> list[int] | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, list) or not 1 <= len(value) <= max_items:
        raise invalid(f"{name} must be a list of 1 to {max_items} ids.")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= MAX_ID for i in value):
        raise invalid(f"{name} must hold positive integer ids.")
    return value


def query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or not low <= int(raw) <= high:
        raise invalid(f"{name} must be an integer between {low} and {high}.")
    return int(raw)


# --- output ------------------------------------------------------------------------------------


def when(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def seconds(delta: Any) -> int | None:
    return None if delta is None else max(0, int(delta.total_seconds()))
