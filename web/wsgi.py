"""The WSGI entry point: ``web.wsgi:app`` (uWSGI's ``module = web.wsgi:app``, see deploy/ec2/).

Importing this module is the edge: ``create_app()`` reads the ``OTHERMAIL_*`` settings from the
environment here, once. Nothing else imports it.

On one box the app always sits behind nginx, which talks to uWSGI over a unix socket; without
help the app would see nginx's side of the connection (no client address, plain ``http``). nginx
sets ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (replacing whatever the
client sent, deploy/ec2/nginx/othermail.conf), and werkzeug's ``ProxyFix`` trusts exactly one such
hop, so rate limits count per client address and external links (password reset, destination
verification) start with ``https://`` and the site's name. ``OTHERMAIL_WEB_PROXY_FIX=false`` turns
it off, for a server that faces clients directly: there the headers would be the client's to forge.
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
