"""``/healthz`` and ``/metrics`` of the one-box process, answered before the web app sees them.

A WSGI middleware rather than Flask routes: the two paths need no session, no CSRF, no database
session per request and no sign-in, and keep answering whatever the web app does; ``web/`` stays
unaware of them. Neither reveals personal data: ``/healthz`` says which part is failing (by
exception class, never a message or a URL) and ``/metrics`` holds counters by outcome.

Access: ``/healthz`` is open (load balancers and systemd checks call it). ``/metrics`` requires
``Authorization: Bearer <OTHERMAIL_METRICS_TOKEN>`` when that token is set; without one, it
answers only clients connecting from loopback directly, not through a proxy: a request carrying
``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP`` is refused, since behind a reverse proxy every
client seems to come from 127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from forwarder.ops.metrics import PROMETHEUS_CONTENT_TYPE

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


class OpsEndpoints:
    def __init__(
        self, app: WsgiApp, *, health: Callable[[], dict[str, Any]], metrics: Callable[[], str], token: str = ""
    ) -> None:
        self.app = app
        self.health = health
        self.metrics = metrics
        self.token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if path not in ("/healthz", "/metrics"):
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _answer(
                environ,
                start_response,
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                "GET or HEAD\n",
                [("Allow", "GET, HEAD")],
            )
        if path == "/healthz":
            report = self.health()
            status = "200 OK" if report.get("status") == "ok" else "503 Service Unavailable"
            return _answer(
                environ, start_response, status, "application/json", json.dumps(report, sort_keys=True) + "\n"
            )
        refusal = self._refusal(environ)
        if refusal is not None:
            status, text, headers = refusal
            return _answer(environ, start_response, status, "text/plain; charset=utf-8", text, headers)
        return _answer(environ, start_response, "200 OK", PROMETHEUS_CONTENT_TYPE, self.metrics())

    def _refusal(self, environ: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]] | None:
        if self.token:
            given = environ.get("HTTP_AUTHORIZATION") or ""
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
                return None
            return (
                "401 Unauthorized",
                "/metrics needs Authorization: Bearer <OTHERMAIL_METRICS_TOKEN>\n",
                [("WWW-Authenticate", 'Bearer realm="othermail metrics"')],
            )
        if _loopback(environ.get("REMOTE_ADDR") or "") and not any(environ.get(h) for h in PROXY_HEADERS):
            return None
        return (
            "403 Forbidden",
            "/metrics answers loopback only; set OTHERMAIL_METRICS_TOKEN to scrape it from elsewhere\n",
            [],
        )


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return (mapped or ip).is_loopback


def _answer(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: str,
    content_type: str,
    text: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *(extra or []),
        ],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
