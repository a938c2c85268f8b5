"""The WSGI entry point: ``web.wsgi:app`` (uWSGI's ``module = web.wsgi:app``, see deploy/ec2/).

Importing this module is the edge: ``create_app()`` reads the ``OTHERMAIL_*`` settings from the
environment here, once. Nothing else imports it.

Behind nginx the app must see the client's address (rate limits count per client), the https
scheme and the site's name (external links in mail, Flask-WTF's referrer check on https). Over
the uwsgi protocol nginx passes the first two itself (``REMOTE_ADDR``, ``HTTPS``); it also sets
``X-Forwarded-For``, ``-Proto`` and ``-Host``, replacing whatever a client sent under those names
(deploy/ec2/nginx/othermail.conf; tests/deploy/test_ec2.py checks it), and werkzeug's ``ProxyFix``
applies them, trusting exactly that one hop, so the app sees the same whether nginx reaches it
with ``uwsgi_pass`` or with an HTTP ``proxy_pass``. ``OTHERMAIL_WEB_PROXY_FIX=false`` turns it off,
for a server that faces clients directly: there those headers would be the client's to forge.
"""

from __future__ import annotations

from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from forwarder.errors import SettingsError
from web import create_app


def _enabled(value: Any) -> bool:
    """``OTHERMAIL_WEB_PROXY_FIX`` arrives parsed as JSON when it parses (``true``, ``0``), else as text."""
    if not isinstance(value, str):
        return bool(value)
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"OTHERMAIL_WEB_PROXY_FIX must be true or false, not {value!r}")


app = create_app()
if _enabled(app.config.get("PROXY_FIX", True)):
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
