"""Links the service mails (password reset, destination verification, sign-in).

A mailed link must never be built from the request: its ``Host`` (or ``X-Forwarded-Host``) is the
client's to choose, and a reset requested with ``Host: evil.example`` would mail a valid token to
evil.example. Every mailed link starts with the configured address instead: ``OTHERMAIL_PUBLIC_URL``
(``Settings.public_url``), else the one box's own web address (``app.config["PUBLIC_URL"]``, set by
``forwarder/hosts/onebox.py`` once its port is known), else ``SERVER_NAME`` if the operator set it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from forwarder.errors import SettingsError

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def public_base() -> str:
    """The web app's address as users reach it, without a trailing slash."""
    config = current_app.config
    base = config["SETTINGS"].public_url or config.get("PUBLIC_URL") or ""
    if not base and config.get("SERVER_NAME"):
        base = f"{config.get('PREFERRED_URL_SCHEME', 'http')}://{config['SERVER_NAME']}"
    if not base:
        raise SettingsError(
            "OTHERMAIL_PUBLIC_URL is not set: the service cannot build the links it mails "
            "(set it to the web app's address, e.g. https://mail.example.org)"
        )
    return base.rstrip("/")


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of ``endpoint`` under :func:`public_base`, whatever host the request named."""
    base = urlsplit(public_base())
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)


def trusted_hosts(public_url: str, *, loopback: bool = False) -> list[str]:
    """Flask's ``TRUSTED_HOSTS`` for a site reached at ``public_url`` (plus the loopback names on the
    one box, which users open as http://127.0.0.1:port)."""
    hosts = [name for name in (urlsplit(public_url).hostname,) if name]
    return hosts + [name for name in LOOPBACK_NAMES if loopback and name not in hosts]
