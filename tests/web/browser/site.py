"""A populated othermail for browser tests: one app on a migrated SQLite database, served on
127.0.0.1, with an admin account that has destinations, aliases (one with a very long address),
contacts, a domain, delivery log rows (one kept in quarantine) and an API token, so every page
shows its tables. Shared by the browser test modules through tests/web/browser/conftest.py.

Also the sizes the pages are checked at: a 390 px phone (iPhone 13's screen, emulated in Chromium)
and a 1280 x 800 desktop, each in light and dark colour schemes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.stores import LocalStore
from forwarder.runtime import Runtime
from forwarder.settings import Settings
from models import Alias, Delivery, User, UserDomain, utcnow
from tests.support.databases import migrate
from tests.support.factories import add_destination, user_id, web_session
from tests.web.browser.live_server import live_server
from tests.web.conftest import PASSWORD, links_in, post, signup
from web import create_app

USER = "ann@example.org"
#: An alias whose address is longer than a phone is wide and has no hyphen or space to break at: it must
#: wrap anyway, never scroll sideways.
LONG_LOCAL = "newsletter.of.the.neighbourhood.bicycle.repair.cooperative.2026"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Every page the browser tests look at, by name (paths in Site.pages): signed out, then signed in.
SIGNED_OUT = ["welcome", "signin", "signup", "reset", "new-password", "not-found-signed-out"]
SIGNED_IN = [
    "dashboard",
    "aliases",
    "alias-new",
    "alias-detail",
    "alias-delete",
    "contacts",
    "destinations",
    "destination-detail",
    "domains",
    "domain-detail",
    "quarantine",
    "message",
    "tokens",
    "account",
    "admin",
    "outbox",
    "not-found",
]
PAGES = [(name, False) for name in SIGNED_OUT] + [(name, True) for name in SIGNED_IN]


@dataclass(frozen=True)
class Mode:
    """One way of looking at the pages: a screen size and a colour scheme."""

    name: str
    context: dict[str, Any]
    color_scheme: str

    @property
    def phone(self) -> bool:
        return bool(self.context.get("is_mobile"))


# iPhone 13 as Playwright's device list describes it (playwright.devices["iPhone 13"]), minus the
# WebKit user agent and browser type: the same screen in Chromium.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1, "is_mobile": False}
MODES = [
    Mode("phone-light", PHONE, "light"),
    Mode("phone-dark", PHONE, "dark"),
    Mode("desktop-light", DESKTOP, "light"),
    Mode("desktop-dark", DESKTOP, "dark"),
]


@dataclass
class Site:
    """The served app and what the populated account holds (ids for the pages' URLs)."""

    app: Flask
    base: str
    email: str = USER
    password: str = PASSWORD
    ids: dict[str, int] = field(default_factory=dict)
    long_address: str = ""
    #: The link of a password reset mail (usable until the password is set): the new-password page.
    reset_path: str = ""

    def pages(self, signed_in: bool) -> dict[str, str]:
        """Every page worth checking, by name: path."""
        if not signed_in:
            return {
                "welcome": "/",
                "signin": "/signin",
                "signup": "/signup",
                "reset": "/reset",
                "new-password": self.reset_path,
                "not-found-signed-out": "/no-such-page",
            }
        ids = self.ids
        return {
            "dashboard": "/dashboard",
            "aliases": "/aliases/",
            "alias-new": "/aliases/new",
            "alias-detail": f"/aliases/{ids['long_alias']}",
            "alias-delete": f"/aliases/{ids['alias']}/delete",
            "contacts": f"/aliases/{ids['alias']}/contacts",
            "destinations": "/destinations/",
            "destination-detail": f"/destinations/{ids['destination']}",
            "domains": "/domains/",
            "domain-detail": f"/domains/{ids['domain']}",
            "quarantine": "/messages/quarantine",
            "message": f"/messages/{ids['quarantined']}",
            "tokens": "/account/tokens",
            "account": "/account/",
            "admin": "/admin/",
            "outbox": "/admin/outbox/",
            "not-found": "/aliases/999999",
        }


def build_app(tmp_path: Path) -> Flask:
    """The app as tests/web/conftest.py builds it, without SERVER_NAME (the live server's address
    is its own), with contact keys (two-way contacts) and service mail sent at once."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        domains=("othermail.example", "alias.example"),
        sender="outbox",
        outbox=tmp_path / "outbox",
        store_dir=tmp_path / "mail",
        contact_keys=(("k1", secrets.token_bytes(32)),),
    )
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "browser-secret",
            "SESSION_COOKIE_SECURE": False,
            "SETTINGS": settings,
            "RATE_LIMITS": {"signup": (50, 3600), "signin": (200, 900), "reset": (50, 3600)},
        },
        runtime=Runtime.build(settings, sender=MemorySender()),
    )
    app.extensions["othermail.mail_runner"] = lambda job: job()
    # links mailed while populating (the account's confirmation) need an address; live_server sets the real one
    app.config["PUBLIC_URL"] = "http://127.0.0.1"
    return app


def _created_alias(response: Any) -> int:
    match = re.search(r"/aliases/(\d+)$", response.headers.get("Location", ""))
    assert match, f"no alias created: {response.status_code} {response.get_data(as_text=True)[:500]}"
    return int(match.group(1))


def reset_link(app: Flask) -> str:
    """Ask for a password reset of the account, signed out; the path of the mailed link."""
    sender: MemorySender = app.extensions["othermail.runtime"].sender
    post(app.test_client(), "/reset", {"email": USER})
    links = [link for mail in sender.sent if mail.recipient == USER for link in links_in(mail.raw) if "/reset/" in link]
    assert links, "no password reset mail"
    return "/" + links[-1].split("://", 1)[1].partition("/")[2]


def populate(app: Flask) -> tuple[dict[str, int], str]:
    """Sign up the admin account and fill it through the app's own forms (and a few rows)."""
    client = app.test_client()
    signup(client, USER)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "email-unverified" not in dashboard, "the account's address was not confirmed"
    owner = user_id(app, USER)
    ids: dict[str, int] = {}
    ids["destination"] = add_destination(app, owner, "ann.real@mailbox.example")
    add_destination(app, owner, "ann.at.work.with.a.rather.long.address@employer-mail.example", verified=False)
    ids["alias"] = _created_alias(post(client, "/aliases/new", {}, page="/aliases/new"))
    ids["long_alias"] = _created_alias(
        post(
            client,
            "/aliases/new",
            {
                "custom": "1",
                "local_part": LONG_LOCAL,
                "domain": "othermail.example",
                "destination": str(ids["destination"]),
                "label": "Bike co-op",
                "duration": "1d",
                "max_messages": "5",
            },
        )
    )
    for address, name in (("bob@example.net", "Bob"), ("carol.with.a.long.name@faraway.example", "")):
        assert post(client, f"/aliases/{ids['alias']}/contacts", {"address": address, "name": name}).status_code == 302
    post(client, "/domains/", {"name": "ann-example.org"})
    post(client, "/account/tokens", {"name": "backup script", "scope": "read", "expires_in": "", "password": PASSWORD})
    with app.app_context():
        db = web_session(app)
        db.scalars(select(User).where(User.email == USER)).one().is_admin = True
        ids["domain"] = db.scalars(select(UserDomain.id)).one()
        long_address = db.get(Alias, ids["long_alias"]).address
        raw = b"From: Shop <deals@store.example>\r\nSubject: Spring sale\r\n\r\nBuy now.\r\n"
        rows = [
            ("forwarded", "Spring sale", None),
            ("dropped-spam", "You have won", "smtp/spam-1"),
            ("dropped-disabled", "Last chance", None),
        ]
        for outcome, subject, key in rows:
            row = Delivery(
                inbound_message_id=f"{outcome}@store.example",
                recipient=long_address,
                alias_id=ids["long_alias"],
                outcome=outcome,
                reason=f"{outcome} said the forwarder",
                mail_from="deals@store.example",
                subject=subject,
                bytes_in=len(raw),
                raw_key=key,
                created_at=utcnow(),
            )
            db.add(row)
            db.flush()
            if key:
                ids["quarantined"] = row.id
                LocalStore(app.config["SETTINGS"].store_dir).put(key, raw)
        db.commit()
    return ids, long_address


@contextmanager
def serve_populated(tmp_path: Path) -> Iterator[Site]:
    app = build_app(tmp_path)
    try:
        ids, long_address = populate(app)
        reset_path = reset_link(app)
        with live_server(app) as base:
            yield Site(app, base, ids=ids, long_address=long_address, reset_path=reset_path)
    finally:
        app.extensions["othermail.engine"].dispose()
