"""A database session per request, kept on ``g`` and closed in teardown (``flaskr/db.py``)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from forwarder.runtime import Runtime
from web.services.context import ServiceContext


def init_app(app: Flask) -> None:
    runtime = app.extensions["othermail.runtime"]
    app.extensions["othermail.engine"] = runtime.engine
    app.extensions["othermail.sessions"] = runtime.sessions
    app.teardown_appcontext(_close)


def runtime() -> Runtime:
    """The app's runtime (forwarder/runtime.py): what views hand to the services."""
    return current_app.extensions["othermail.runtime"]  # set by create_app


def services() -> ServiceContext:
    """What views hand to the services besides the session (web/services/context.py)."""
    return current_app.extensions["othermail.services"]  # set by create_app


def session() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["othermail.sessions"]()
    return g.db


def _close(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
