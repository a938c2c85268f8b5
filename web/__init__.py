"""The othermail web app: accounts, destinations, aliases, activity and the API.

``create_app`` is the application factory (Flask's tutorial style): defaults, then
``OTHERMAIL_*`` environment variables, then the test mapping. Nothing is read or connected at
import time; ``create_app`` is the edge where settings are read once.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from forwarder.runtime import Runtime
from forwarder.settings import Settings

DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # a session ends after this long (the absolute lifetime, also the cookie's) or after
    # SESSION_IDLE_LIFETIME without a request (forwarder/accounts/sessions.py)
    "PERMANENT_SESSION_LIFETIME": 60 * 60 * 24 * 14,
    "SESSION_IDLE_LIFETIME": 60 * 60 * 24 * 2,
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    # service mail a request asks for (a password reset) leaves from a worker thread after the
    # answer; "inline" sends it in the request (web/mailer.py send_later; the Zappa stages)
    "MAIL_WORKER": "thread",
}


def _secret_key(settings: Settings) -> str:
    """A development secret kept in the data folder, so sessions survive a restart."""
    path = Path(settings.data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:  # created 0600: never readable by others, not even between a write and a chmod
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        for _ in range(50):
            existing = path.read_text().strip()
            if existing:
                return existing
            time.sleep(0.02)
        raise
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def create_app(test_config: Mapping[str, Any] | None = None, runtime: Runtime | None = None) -> Flask:
    """The web app. ``runtime`` (forwarder/runtime.py) is what it runs on: its database, its
    sender, its mail store and forwarder; without one, it is built from the settings (the
    ``SETTINGS`` config, else the environment). Tests pass a runtime with their own parts."""
    from web import auth, csrf, db, security

    app = Flask(__name__)
    from web.converters import BoundedIntConverter

    app.url_map.converters["int"] = BoundedIntConverter  # before any route: an id out of range is a 404
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("OTHERMAIL_WEB")
    if test_config:
        app.config.update(test_config)
    settings = app.config.get("SETTINGS") or (runtime.settings if runtime is not None else Settings.from_env())
    app.config["SETTINGS"] = settings
    if runtime is None:
        if app.config.get("DATABASE_URL"):
            settings = dataclasses.replace(settings, database_url=app.config["DATABASE_URL"])
        runtime = Runtime.build(settings, ping_every_checkout=True)  # requests do not retry
    app.extensions["othermail.runtime"] = runtime
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(settings)
    from web.services.context import from_config

    app.extensions["othermail.services"] = from_config(app.config, runtime)
    if app.config.get("TRUSTED_HOSTS") is None and settings.public_url:
        from web.links import trusted_hosts

        app.config["TRUSTED_HOSTS"] = trusted_hosts(settings.public_url)  # any other Host is a 400

    db.init_app(app)
    csrf.init_app(app)
    security.init_app(app)
    from web import mailer

    mailer.init_app(app)  # a service mail that cannot be sent is a message, never a 500
    app.register_blueprint(auth.bp)
    from web import account, admin, outbox

    app.register_blueprint(account.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(outbox.bp)
    # alias_list's views (the alias list and its bulk form) register on aliases.bp when it is imported
    from web import alias_list, aliases, dashboard, destinations  # noqa: F401

    app.register_blueprint(destinations.bp)
    app.register_blueprint(aliases.bp)
    app.register_blueprint(dashboard.bp)
    from web import api, tokens

    app.register_blueprint(tokens.bp)
    app.register_blueprint(api.bp)
    from web import domains, messages

    app.register_blueprint(domains.bp)
    app.register_blueprint(messages.bp)
    from web import email_verification

    app.register_blueprint(email_verification.bp)
    from web import contacts

    app.register_blueprint(contacts.bp)
    from web import unsubscribe

    app.register_blueprint(unsubscribe.bp)
    from web import two_factor

    app.register_blueprint(two_factor.bp)
    from web import passkeys

    app.register_blueprint(passkeys.bp)
    return app
