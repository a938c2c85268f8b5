"""Review finding F6 (issue 12.10): an id out of every backend's range is a 404 on every route
that takes one, never a 500 (OverflowError on SQLite, out of range on PostgreSQL)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import update

from models import User
from tests.web.conftest import csrf, signup
from web import create_app  # noqa: F401 - the app fixture builds it

HUGE = "99999999999999999999"


def int_routes() -> list[tuple[str, str]]:
    """(method, path) of every rule with an int part, built from a throwaway app's url_map."""
    import tempfile
    from pathlib import Path

    from forwarder.settings import Settings

    tmp = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'x.db'}", domains=("othermail.example",))
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SETTINGS": settings})
    found = []
    for rule in app.url_map.iter_rules():
        if not any(type(conv).__name__.lower().startswith(("int", "bounded")) for conv in rule._converters.values()):
            continue
        path = rule.rule
        for name, conv in rule._converters.items():
            value = HUGE if "int" in type(conv).__name__.lower() or "bounded" in type(conv).__name__.lower() else "x"
            path = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    app.extensions["othermail.engine"].dispose()
    return found


ROUTES = int_routes()


def test_there_are_int_routes_to_check() -> None:
    assert len(ROUTES) >= 10


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_huge_id_is_a_404(app: Flask, method: str, path: str) -> None:
    client = app.test_client()
    signup(client, "ann@example.org")
    with app.app_context():
        from web.db import session

        session().execute(update(User).values(is_admin=True))
        session().commit()
    token = csrf(client, "/account/")
    headers = {"Authorization": "Bearer x"} if path.startswith("/api/") else {}
    answer = client.open(path, method=method, data={"csrf_token": token}, headers=headers)
    assert answer.status_code in (401, 404), (answer.status_code, answer.get_data(as_text=True)[:300])
