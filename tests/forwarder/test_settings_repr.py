"""``repr(Settings)`` (in logs, tracebacks, a debugger) shows no secret: the database URL's password
is hidden and every password, token and secret is ``***`` (issue 12, item 25)."""

from __future__ import annotations

import re
from dataclasses import fields

from forwarder.settings import Settings

SECRET_NAME = re.compile(r"password|token|secret|credential")


def test_repr_hides_the_database_password_and_every_secret() -> None:
    secret_fields = [f.name for f in fields(Settings) if SECRET_NAME.search(f.name)]
    assert "relay_password" in secret_fields and "metrics_token" in secret_fields
    settings = Settings(
        database_url="postgresql+psycopg://othermail:Hunter2-db@db.example/othermail",
        **{name: f"S3CR3T-{name}" for name in secret_fields},
    )
    shown = repr(settings)
    assert "Hunter2-db" not in shown
    assert "postgresql+psycopg://othermail:***@db.example/othermail" in shown
    for name in secret_fields:
        assert f"S3CR3T-{name}" not in shown
        assert f"{name}='***'" in shown
    assert "relay_host=''" in shown and "domains=('othermail.example',)" in shown  # the rest stays visible


def test_an_unset_secret_shows_as_empty() -> None:
    shown = repr(Settings())
    assert "relay_password=''" in shown and "database_url=''" in shown
