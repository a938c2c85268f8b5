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

On Lambda (zappa_settings.json) secrets such as ``OTHERMAIL_DATABASE_URL`` and
``OTHERMAIL_WEB_SECRET_KEY`` come from SSM Parameter Store or Secrets Manager when
``OTHERMAIL_SSM_PATH`` or ``OTHERMAIL_SECRETS_ARN`` is set: they are fetched once here and laid over
the environment (``forwarder.adapters.aws.secrets``). Zappa's handler already takes the client's address
and scheme from API Gateway, so its stages set ``OTHERMAIL_WEB_PROXY_FIX=false``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from forwarder.adapters.aws.secrets import fetch_secrets
from forwarder.errors import SettingsError
from forwarder.settings import Settings
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


def _secret_config(fetched: Mapping[str, str]) -> dict[str, Any]:
    """``create_app`` overrides for secrets fetched from SSM / Secrets Manager (``forwarder.adapters.aws.secrets``).

    ``SETTINGS`` is read from the environment with the secrets laid over it; each fetched
    ``OTHERMAIL_WEB_*`` value is parsed as Flask's ``from_prefixed_env`` parses the environment's
    (JSON when it parses, else text). Nothing is fetched, and nothing overridden, unless
    ``OTHERMAIL_SSM_PATH`` or ``OTHERMAIL_SECRETS_ARN`` is set.
    """
    if not fetched:
        return {}
    config: dict[str, Any] = {"SETTINGS": Settings.from_env({**os.environ, **fetched})}
    for name, value in fetched.items():
        if name.startswith("OTHERMAIL_WEB_"):
            try:
                config[name.removeprefix("OTHERMAIL_WEB_")] = json.loads(value)
            except ValueError:
                config[name.removeprefix("OTHERMAIL_WEB_")] = value
    return config


app = create_app(_secret_config(fetch_secrets()))
if _enabled(app.config.get("PROXY_FIX", True)):
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]  # the WSGI middleware pattern Flask's docs give
