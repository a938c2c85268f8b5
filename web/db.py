"""A database session per request, kept on ``g`` and closed in teardown (``flaskr/db.py``)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from models import make_engine, make_session_factory


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    engine = make_engine(app.config.get("DATABASE_URL") or settings.resolved_database_url)
    app.extensions["othermail.engine"] = engine
    app.extensions["othermail.sessions"] = make_session_factory(engine)
    app.teardown_appcontext(_close)


def session() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["othermail.sessions"]()
    return g.db


def _close(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
