"""The JSON API under ``/api/v1``, for scripts holding a personal API token.

Every call but ``GET /api/v1/openapi.json`` needs ``Authorization: Bearer <token>``; the session
cookie never authenticates here, which is also why the blueprint is exempt from CSRF. A ``read``
token may only GET. Each call counts against the ``api`` rate limit of its token. Every failure
under ``/api/v1``, Flask's own 404 and 405 included, is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from forwarder.accounts import tokens
from web import ratelimit
from web.api.blueprint import PREFIX as PREFIX
from web.api.blueprint import bp
from web.api.common import ApiError, error_response
from web.api.operations import operation
from web.db import session
from web.errors import error_page
from web.services.errors import ServiceError

#: What a ``read`` token may do.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ENDPOINTS = frozenset({"api.openapi"})
#: The code reported for an HTTP status Flask or Werkzeug raised.
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "invalid_request",
    429: "rate_limited",
}


def _bearer() -> str:
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def _limited(who: str) -> ApiError | None:
    wait = ratelimit.hit("api", who)
    if wait is None:
        return None
    return ApiError(429, "rate_limited", f"Too many requests; try again in {wait} seconds.", {"Retry-After": str(wait)})


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    token = tokens.lookup(session(), _bearer())
    if token is None:
        raise _limited(f"anonymous:{ratelimit.client_key(request.remote_addr)}") or ApiError(
            401,
            "unauthorized",
            "Send a valid API token as: Authorization: Bearer <token>.",
            {"WWW-Authenticate": 'Bearer realm="othermail"'},
        )
    limited = _limited(f"token:{token.id}")
    if limited is not None:
        raise limited
    if token.scope != "write" and request.method not in READ_METHODS:
        raise ApiError(403, "forbidden", "This token has the read scope; changes need a write token.")
    g.api_token = token


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    session().rollback()  # nothing half-changed is committed later in this request
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error_response(exc.status, exc.code, exc.message, headers)


def _in_api() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Flask's own errors (an unknown path, a wrong method, a too large body) as JSON, under /api/v1 only."""
    if not _in_api():
        return error_page(exc)  # the web pages' own layout (web/errors.py)
    status = exc.code or 500
    code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "invalid_request")
    allowed = getattr(exc, "valid_methods", None)
    headers = {"Allow": ", ".join(allowed)} if allowed else None
    messages = {404: "No such resource.", 405: f"{request.method} is not allowed here."}
    return error_response(status, code, messages.get(status, exc.description or exc.name), headers)


@bp.get("/openapi.json")
@operation("This document.", 200, "The OpenAPI document.", response={"type": "object"}, tag="meta")
def openapi():
    from web.api.openapi import document

    return jsonify(document())


from web.api import aliases, contacts, destinations  # noqa: E402,F401  (the views register themselves on bp)
