"""Security notices from the views: :func:`notify` reads where the request came from (its IP
address and browser) and hands the notice to :mod:`web.services.security_notices`, which writes
and sends the mail. Call it right after the change is committed; it never raises."""

from __future__ import annotations

from flask import has_request_context, request

from models import User
from web.services import security_notices
from web.services.security_notices import UNKNOWN, Client, NoticeEvent

__all__ = ["NoticeEvent", "notify"]


def notify(user: User, event: NoticeEvent, *, detail: str = "") -> None:
    """Mail ``user`` a notice of ``event``, done by this request's client (see the service)."""
    client = Client.of(request.remote_addr, request.headers.get("User-Agent")) if has_request_context() else UNKNOWN
    security_notices.notify(user, event, client, detail=detail)
