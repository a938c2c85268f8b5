"""Small builders shared by test directories (issue 13): fake AWS credentials, free ports, and user
and destination rows (in a session, or in a web app's database), instead of a copy in each directory."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from flask import Flask
    from sqlalchemy.orm import Session

    from forwarder.runtime import Runtime
    from models import Destination, User

#: moto's default account, and the region the tests run AWS in.
AWS_ACCOUNT = "123456789012"
AWS_REGION = "us-east-1"


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str = AWS_REGION) -> None:
    """Credentials botocore accepts and moto ignores; no profile of the machine's is read."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def free_udp_and_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (a DNS server binds both). The port the system
    gives for UDP may be in use for TCP (another test's connection): then another one is tried."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
        try:
            with socket.socket() as tcp:
                tcp.bind((host, port))
        except OSError:
            continue
        return port
    raise OSError(f"no port free for both UDP and TCP on {host} after 50 tries")


def make_user(session: Session, email: str = "owner@example.org") -> User:
    """A user row, flushed (it has its id)."""
    from models import User

    user = User(email=email)
    session.add(user)
    session.flush()
    return user


def make_destination(session: Session, user: User, email: str) -> Destination:
    """An unverified destination of ``user``, flushed."""
    from models import Destination

    destination = Destination(user=user, email=email)
    session.add(destination)
    session.flush()
    return destination


# --------------------------------------------------------------------------- rows of a web app


def web_session(app: Flask) -> Session:
    """The web app's database session (call inside ``app.app_context()``)."""
    from web.db import session

    return session()


def user_id(app: Flask, email: str) -> int:
    """The id of the user signed up as ``email``."""
    from sqlalchemy import select

    from models import User

    with app.app_context():
        return web_session(app).scalars(select(User.id).where(User.email == email)).one()


def add_destination(app: Flask, user_id: int, email: str, verified: bool = True) -> int:
    """A destination row of user ``user_id``, verified unless told; its id."""
    from models import Destination, utcnow

    with app.app_context():
        db = web_session(app)
        row = Destination(user_id=user_id, email=email, verified_at=utcnow() if verified else None)
        db.add(row)
        db.commit()
        return row.id


# --------------------------------------------------------------------------- two-way aliases


def two_way_runtime(
    tmp_path: Path, alias: str, owner: str, *, display_name: str = "", database_url: str = "", **settings: object
) -> Runtime:
    """A runtime with contact keys and a memory sender on ``database_url`` (already migrated) or a
    new migrated SQLite database, and one user whose ``alias`` forwards to the verified destination
    ``owner``."""
    import secrets

    from forwarder.adapters.senders import MemorySender
    from forwarder.runtime import Runtime
    from forwarder.settings import Settings
    from models import Alias, Destination, User, utcnow
    from tests.support.databases import migrate

    url = database_url
    if not url:
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        migrate(url)
    values: dict[str, object] = dict(
        data_dir=tmp_path,
        database_url=url,
        domains=("othermail.example",),
        sender="outbox",
        outbox=tmp_path / "outbox",
        store_dir=tmp_path / "mail",
        contact_keys=(("k1", secrets.token_bytes(32)),),
    )
    runtime = Runtime.build(Settings(**{**values, **settings}), sender=MemorySender())  # type: ignore[arg-type]
    with runtime.sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        row = Alias(address=alias, user_id=user.id, display_name=display_name)
        row.destinations.append(Destination(user_id=user.id, email=owner, verified_at=utcnow()))
        db.add(row)
        db.commit()
    return runtime
