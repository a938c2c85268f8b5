"""Point 8 of the spec: a user sees and changes only their own data; every response carries the
security headers; no user input reaches a mail header unvalidated.

The routes are read from ``app.url_map``, never listed by hand, so a route added later is walked
too; a route with a variable this file does not understand fails the walk until it is mapped in
:data:`ID_KINDS` (an object id) or :data:`SIGNED_LINKS` (a signed link).

Two accounts take part: Ann, whose rows are the target, and Bob, who is signed in through the web
session and holds a read-write and a read-only API token. Bob calls every method of every route
with an id in it using Ann's ids: each answer is a 404, the same one a made-up id gets (so nothing
tells Bob that Ann's rows exist), and Ann's rows are compared column by column before and after.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from forwarder.adapters.senders import MaildirSender, MemorySender, SentMessage
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.adapters.stores import LocalStore
from forwarder.core import Policy
from forwarder.core.addresses import is_valid_address
from forwarder.core.validator import validate_bytes
from forwarder.flows.forward import Forwarder, Inbound
from forwarder.flows.unsubscribe import sign
from models import (
    Alias,
    ApiToken,
    Contact,
    Delivery,
    Destination,
    SenderRule,
    User,
    UserDomain,
    UserSession,
    WebAuthnCredential,
    make_session_factory,
    utcnow,
)
from tests.web.conftest import PASSWORD, csrf, links_in, post, signup
from web.services import tokens

# --- what the routes mean ----------------------------------------------------------------------

#: The kind of object each id variable of a route names. A route with an id variable missing here
#: fails :func:`classify`, so a new route cannot escape the ownership walk.
ID_KINDS = {
    "destination_id": "destination",
    "alias_id": "alias",
    "token_id": "api_token",
    "domain_id": "domain",
    "delivery_id": "delivery",
    "session_id": "session",
    "contact_id": "contact",
    "rule_id": "rule",
    "passkey_id": "passkey",
}
#: Routes whose variable is a signed link (``token``): the signature authorises them, not a session.
SIGNED_LINKS = {
    "auth.reset": "reset",
    "destinations.verify": "verification",
    "email.verify": "account-email",
    "unsubscribe.confirm": "unsubscribe",  # issue 14: one-click unsubscribe, from forwarded mail's List-Unsubscribe
    "unsubscribe.one_click": "unsubscribe",
}
#: Admin-only routes whose variable is a message key of the local outbox (a Maildir file, nobody's
#: row): the admin check guards them. Walks use :data:`OUTBOX_KEY` unless a real one is given.
OUTBOX_KEYS = {"outbox.message": "key", "outbox.raw": "key"}
OUTBOX_KEY = "1700000000.M1P1Q1.nowhere.example"
#: The blueprints of the admin pages.
ADMIN_ENDPOINTS = ("admin.", "outbox.")
#: The API collections, for the body a write to an id-less API route carries.
API_COLLECTIONS = {"aliases": "alias", "destinations": "destination", "rules": "rule"}
#: Pages anyone may open: everything else outside the API needs a session.
PUBLIC_PAGES = frozenset({"auth.home", "auth.signin", "auth.signup", "auth.reset_request"})
#: Public without being pages: signing out, and the two signed links.
#: two_factor.verify: the second sign-in step, after a right password (a pending state, no session yet).
#: passkeys.*: signing in with a passkey, without a password or as that second step (JSON answers).
PUBLIC_ACTIONS = frozenset(
    {
        "auth.signout",
        "auth.reset_form",
        "two_factor.verify",
        "passkeys.signin_options",
        "passkeys.signin",
        "passkeys.second_factor_options",
        "passkeys.second_factor",
        *SIGNED_LINKS,
    }
)  # reset_form: after a reset link
PUBLIC_API = frozenset({"api.openapi"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: An id no row has: it must get exactly the answer another user's id gets.
MISSING_ID = 987_654
#: Fewer routes with ids than this means the walk lost its way (there are 21 today).
MIN_ID_RULES = 20

_VARIABLE = re.compile(r"<(?:(?P<converter>[A-Za-z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[A-Za-z_]\w*)>")


@dataclass(frozen=True)
class Route:
    """One rule of the URL map and what its variables are."""

    rule: Rule
    ids: dict[str, str]  # variable -> kind of object
    link: str | None  # the variable holding a signed link, if any
    static_file: str | None  # the variable holding a static file name, if any
    outbox_key: str | None = None  # the variable holding an outbox message key, if any

    @property
    def endpoint(self) -> str:
        return self.rule.endpoint

    @property
    def is_api(self) -> bool:
        return self.endpoint.startswith("api.")

    @property
    def is_static(self) -> bool:
        return self.endpoint == "static"

    @property
    def has_variables(self) -> bool:
        return bool(self.ids or self.link or self.static_file or self.outbox_key)

    @property
    def methods(self) -> list[str]:
        """Every method a view answers (OPTIONS is Flask's own and never reaches one)."""
        return sorted((self.rule.methods or set()) - {"OPTIONS"})

    @property
    def kind(self) -> str:
        """The kind of object the route acts on: its id's, or its API collection's."""
        if self.ids:
            return next(iter(self.ids.values()))
        collection = self.rule.rule.removeprefix("/api/v1/").split("/")[0]
        assert collection in API_COLLECTIONS, f"{self.rule.rule}: unknown API collection, add it to API_COLLECTIONS"
        return API_COLLECTIONS[collection]

    def path(self, values: Mapping[str, object]) -> str:
        if self.outbox_key:
            values = {self.outbox_key: OUTBOX_KEY, **values}
        return _VARIABLE.sub(lambda m: str(values[m.group("name")]), self.rule.rule)

    def __str__(self) -> str:
        return f"{self.rule.rule} ({self.endpoint})"


def classify(rule: Rule) -> Route:
    """The rule with its variables understood; fails for a variable nobody mapped."""
    ids: dict[str, str] = {}
    link = static_file = outbox_key = None
    for match in _VARIABLE.finditer(rule.rule):
        name, converter = match.group("name"), match.group("converter") or "default"
        if name in ID_KINDS:
            ids[name] = ID_KINDS[name]
        elif converter in ("int", "uuid") or name == "id" or name.endswith("_id"):
            pytest.fail(
                f"{rule.rule} ({rule.endpoint}): id variable {name!r} is not in ID_KINDS; map it so "
                "the ownership walk covers it"
            )
        elif rule.endpoint in SIGNED_LINKS and name == "token":
            link = name
        elif rule.endpoint == "static" and name == "filename":
            static_file = name
        elif OUTBOX_KEYS.get(rule.endpoint) == name:
            outbox_key = name
        else:
            pytest.fail(f"{rule.rule} ({rule.endpoint}): variable {name!r} is neither an object id nor a signed link")
    return Route(rule, ids, link, static_file, outbox_key)


def routes(app: Flask) -> list[Route]:
    return [classify(rule) for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))]


# --- the two accounts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    user_id: int
    email: str
    ids: dict[str, list[int]]  # kind -> this owner's ids
    verified_destination: int
    pending_destination: int
    alias_address: str
    write: dict[str, str]  # Authorization headers
    read: dict[str, str]
    secrets: tuple[str, ...]  # text no other user may ever be shown

    def id_values(self, route: Route) -> Iterator[dict[str, int]]:
        """Every combination of this owner's ids for the route's id variables."""
        names = list(route.ids)
        for combination in itertools.product(*(self.ids[route.ids[name]] for name in names)):
            yield dict(zip(names, combination, strict=True))


@dataclass(frozen=True)
class World:
    app: Flask
    client: FlaskClient  # signed in as bob
    ann: Owner
    bob: Owner


def _db(app: Flask) -> Any:
    from web.db import session

    return session()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def give_rows(app: Flask, user_id: int, name: str) -> Owner:
    """Two destinations (one verified), an alias with limits, a delivery, two tokens and a verified domain."""
    now = utcnow()
    with app.app_context():
        db = _db(app)
        user = db.get(User, user_id)
        home = Destination(user_id=user_id, email=f"{name}-home@real.example", verified_at=now)
        pending = Destination(user_id=user_id, email=f"{name}-pending@real.example")
        alias = Alias(
            address=f"{name}-shop@othermail.example",
            user_id=user_id,
            max_messages=10,
            message_count=1,
            forwarded_count=1,
            label=f"{name}'s private label",
            note=f"{name}'s private note",
        )
        alias.destinations.append(home)
        domain = UserDomain(
            user_id=user_id,
            name=f"{name}-domain.test",
            verification_token=f"{name}-secret-token",
            status="verified",
            verified_at=now,
            tokens=(f"{name}dkim1", f"{name}dkim2", f"{name}dkim3"),
        )
        db.add_all([home, pending, alias, domain])
        db.flush()
        forwarded = Delivery(
            inbound_message_id=f"{name}-m1",
            recipient=alias.address,
            alias_id=alias.id,
            destination_id=home.id,
            destination_key=home.id,
            outcome="forwarded",
            raw_key=f"smtp/{name}-m1",
            mail_from=f"{name}-sender@store.example",
            subject=f"{name}'s private subject",
        )
        # in quarantine, kept in the store: its page, download and release are walked too
        quarantined = Delivery(
            inbound_message_id=f"{name}-m2",
            recipient=alias.address,
            alias_id=alias.id,
            outcome="dropped-spam",
            raw_key=f"smtp/{name}-m2",
            mail_from=f"{name}-sender@store.example",
            subject=f"{name}'s private spam",
        )
        db.add_all([forwarded, quarantined])
        db.commit()
        store = LocalStore(app.config["SETTINGS"].store_dir)
        for row in (forwarded, quarantined):
            store.put(row.raw_key, f"From: {row.mail_from}\r\nSubject: {row.subject}\r\n\r\nbody\r\n".encode())
        write, write_secret = tokens.create(db, user, f"{name}-write-token", "write", None)
        read, read_secret = tokens.create(db, user, f"{name}-read-token", "read", None)
        browser = UserSession(
            user_id=user_id,
            token_hash=f"{name:0<64}",
            created_at=now,
            last_seen_at=now,
            ip="192.0.2.1",
            user_agent=f"{name}-browser/1.0",
        )
        passkey = WebAuthnCredential(
            user_id=user_id, credential_id=f"{name}-credential", public_key=b"key", name=f"{name}'s private passkey"
        )
        db.add_all([browser, passkey])
        db.commit()
        book = app.extensions["othermail.runtime"].contacts  # issue 14: a contact and a sender rule
        contact = book.create(
            alias.id, "othermail.example", f"{name}-friend@people.example", f"{name}'s private friend"
        )
        rule_id = book.add_rule(user_id, alias.id, "block", "address", f"{name}-pest@people.example")
        return Owner(
            user_id=user_id,
            email=user.email,
            ids={
                "destination": [home.id, pending.id],
                "alias": [alias.id],
                "api_token": [write.id, read.id],
                "domain": [domain.id],
                "delivery": [forwarded.id, quarantined.id],
                "session": [browser.id],
                "contact": [contact.contact_id],
                "rule": [rule_id],
                "passkey": [passkey.id],
            },
            verified_destination=home.id,
            pending_destination=pending.id,
            alias_address=alias.address,
            write=_bearer(write_secret),
            read=_bearer(read_secret),
            secrets=(
                user.email,
                home.email,
                pending.email,
                alias.address,
                f"{name}'s private",
                f"{name}-sender@store.example",
                f"{name}-write-token",
                f"{name}-read-token",
                write.prefix,
                read.prefix,
                domain.name,
                domain.verification_token,
                f"{name}dkim1",
                f"{name}-browser/1.0",
                f"{name}-friend@people.example",
                contact.reverse,
                f"{name}-pest@people.example",
            ),
        )


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    app.config["RATE_LIMITS"].update({"alias-create": (1000, 3600), "verification": (1000, 3600)})
    with app.app_context():
        db = _db(app)
        db.add(User(email="ann@example.org", password_hash="x", password_changed_at=utcnow()))
        db.commit()
        ann_id = db.scalars(select(User.id).where(User.email == "ann@example.org")).one()
    assert signup(client, "bob@example.org").status_code == 302
    with app.app_context():
        bob_id = _db(app).scalars(select(User.id).where(User.email == "bob@example.org")).one()
    return World(app, client, give_rows(app, ann_id, "ann"), give_rows(app, bob_id, "bob"))


# --- database snapshots ------------------------------------------------------------------------

Row = tuple[tuple[str, Any], ...]


def _columns(row: object, skip: Iterable[str] = ()) -> Row:
    return tuple((a.key, getattr(row, a.key)) for a in inspect(row).mapper.column_attrs if a.key not in skip)


def snapshot(app: Flask, user_id: int) -> dict[str, list[Row]]:
    """Every row of the user's, column by column (a token's ``last_used_at`` aside: using it moves that)."""
    with app.app_context():
        db = _db(app)
        aliases = list(db.scalars(select(Alias).where(Alias.user_id == user_id).order_by(Alias.id)))
        alias_ids = [a.id for a in aliases]
        return {
            "user": [_columns(db.get(User, user_id))],
            "destinations": [
                _columns(d)
                for d in db.scalars(select(Destination).where(Destination.user_id == user_id).order_by(Destination.id))
            ],
            "aliases": [
                _columns(a) + (("destination_ids", tuple(sorted(d.id for d in a.destinations))),) for a in aliases
            ],
            "api_tokens": [
                _columns(t, skip={"last_used_at"})
                for t in db.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
            ],
            "deliveries": [
                _columns(d)
                for d in db.scalars(select(Delivery).where(Delivery.alias_id.in_(alias_ids)).order_by(Delivery.id))
            ],
            "user_domains": [
                _columns(d)
                for d in db.scalars(select(UserDomain).where(UserDomain.user_id == user_id).order_by(UserDomain.id))
            ],
            "contacts": [
                _columns(c)
                for c in db.scalars(select(Contact).where(Contact.alias_id.in_(alias_ids)).order_by(Contact.id))
            ],
            "sender_rules": [
                _columns(r)
                for r in db.scalars(select(SenderRule).where(SenderRule.user_id == user_id).order_by(SenderRule.id))
            ],
            "webauthn_credentials": [
                _columns(k) for k in db.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id))
            ],
            "user_sessions": [
                _columns(r)
                for r in db.scalars(
                    select(UserSession).where(UserSession.user_id == user_id, UserSession.ip == "192.0.2.1")
                )
            ],
        }


# --- requests ----------------------------------------------------------------------------------


def form_payload(owner: Owner) -> dict[str, str]:
    """Every form field the pages read, filled so that a missing ownership check would change something."""
    return {
        "email": "stolen@evil.example",
        "label": "taken over",
        "note": "taken over",
        "expired_action": "reject",
        "destination": str(owner.verified_destination),
        "duration": "7d",
        "idle_days": "9",
        "extra_messages": "5",
        "name": "taken over",
        "scope": "write",
        "catch_all": "on",
        "password": PASSWORD,  # the signed-in user's own: only an ownership check stops a change
    }


def api_payload(kind: str, owner: Owner) -> dict[str, Any]:
    """A body the API accepts for a write to ``kind``, so a missing check would go through."""
    payloads: dict[str, dict[str, Any]] = {
        "alias": {"label": "taken over", "destination_ids": [owner.verified_destination]},
        "destination": {"email": "stolen@evil.example"},
        "contact": {"blocked": True},
        "rule": {"action": "allow", "kind": "empty-sender"},
    }
    assert kind in payloads, f"no API payload for {kind!r}"
    return payloads[kind]


def call(
    client: FlaskClient,
    route: Route,
    method: str,
    path: str,
    *,
    actor: Owner,
    headers: dict[str, str],
    csrf_token: str | None,
) -> TestResponse:
    """``method path`` as ``actor`` would send it: a JSON body to the API, a form with CSRF to pages."""
    if route.is_api:
        body = api_payload(route.kind, actor) if method in WRITE_METHODS - {"DELETE"} else None
        return client.open(path, method=method, headers=headers, json=body)
    form = {"csrf_token": csrf_token or "", **form_payload(actor)} if method in WRITE_METHODS else None
    return client.open(path, method=method, headers=headers, data=form)


def error_code(response: TestResponse) -> str:
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, response.get_data(as_text=True)[:300]
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"], body
    return str(body["error"]["code"])


def assert_nothing_of(owner: Owner, response: TestResponse, where: str) -> None:
    text = response.get_data(as_text=True)
    shown = [secret for secret in owner.secrets if secret in text]
    assert not shown, f"{where} shows another user's {shown}"


def redirect_path(response: TestResponse) -> str:
    assert response.status_code == 302, response.status_code
    return urlsplit(response.headers["Location"]).path


# --- headers and markup ------------------------------------------------------------------------


def csp_directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), words[1:])
    return directives


def assert_security_headers(response: TestResponse, where: str) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    assert policy, f"{where}: no Content-Security-Policy"
    directives = csp_directives(policy)
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, f"{where}: {policy}"
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts and "'self'" in scripts, f"{where}: scripts are not limited to 'self': {policy}"
    assert not set(scripts) & {"*", "data:", "http:", "https:", "blob:"}, f"{where}: {policy}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{where}: {policy}"
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy"), where


class _InlineCode(HTMLParser):
    """Collects whatever the CSP would block: inline script, event handlers, inline style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=…> attribute")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "script":
            self._in_script = True
            if not dict(attrs).get("src"):
                self.problems.append("<script> without src")
        if tag == "style":
            self.problems.append("<style> element")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script body {data.strip()[:40]!r}")


def inline_code(html: str) -> list[str]:
    parser = _InlineCode()
    parser.feed(html)
    parser.close()
    return parser.problems


# --- mail --------------------------------------------------------------------------------------

MARK = "victim@evil.example"
#: Addresses that try to break out of the header they are put in, or to smuggle a second
#: recipient, a control character or 8-bit text into it. Each must be refused.
ADDRESS_INJECTIONS: tuple[str, ...] = (
    f"ann@example.net\r\nBcc: {MARK}",
    f"ann@example.net\nBcc: {MARK}",
    f"ann@example.net\rBcc: {MARK}",
    f"ann@example.net\r\n\r\nBcc: {MARK}",
    f"ann@example.net%0D%0ABcc: {MARK}",
    f"ann@example.net, {MARK}",
    f"Ann <ann@example.net>, {MARK}",
    f"ann@example.net\tBcc: {MARK}",
    f'"ann\\\r\nBcc: {MARK}"@example.net',
    f'"ann\\\rBcc: {MARK}"@example.net',
    f'"ann\u2028Bcc: {MARK}"@example.net',
    f'"ann\x85Bcc: {MARK}"@example.net',
    f'"ann\x0bBcc: {MARK}"@example.net',
    f'"ann\x00Bcc: {MARK}"@example.net',
    '"jöe"@example.net',
    "jöe@exämple.net",
)
LOCAL_PART_INJECTIONS: tuple[str, ...] = (
    f"shop\r\nBcc: {MARK}",
    f"shop\nBcc: {MARK}",
    "shop@evil.example",
    "shop\u2028x",
    "jöe",
    *ADDRESS_INJECTIONS,
)
#: Free text that never goes into a mail: stored as typed (stripped), shown escaped.
TEXT_INJECTIONS: tuple[str, ...] = (
    f"shop\r\nBcc: {MARK}",
    f"shop\nBcc: {MARK}\n\nbody",
    f"shop\u2028Bcc: {MARK}",
    f"=?utf-8?q?shop=0D=0ABcc:_{MARK}?=",
    "<script>alert(1)</script>",
)
ADDRESS_ERROR = "Enter a valid email address."


def _head(raw: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


def assert_mail_is_clean(message: SentMessage) -> None:
    """A message the service sent: SES would take it, and nobody typed a header into it."""
    assert validate_bytes(message.raw) == [], (message.recipient, validate_bytes(message.raw))
    for address in (message.recipient, message.sender):
        assert address.isascii() and address.isprintable() and is_valid_address(address), repr(address)
    head = _head(message.raw).decode("ascii")  # the validator passed: 7-bit
    unfolded = re.sub(r"\r?\n[ \t]", " ", head)
    names = [line.split(":", 1)[0].strip().lower() for line in unfolded.splitlines()]
    assert "bcc" not in names, head
    assert "evil.example" not in head, head
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    assert [name.lower() for name in parsed] == names
    assert all("evil.example" not in str(value) for value in parsed.values()), head


def assert_outbox_is_clean(outbox: MemorySender) -> None:
    for message in outbox.sent:
        assert_mail_is_clean(message)
    assert all("evil.example" not in m.recipient for m in outbox.sent)


# --- 1. another user's ids, on every route -----------------------------------------------------


def test_every_route_variable_is_understood(app: Flask) -> None:
    walked = routes(app)  # classify() fails for an unmapped variable
    assert sum(1 for r in walked if r.ids) >= MIN_ID_RULES
    assert {kind for r in walked for kind in r.ids.values()} == set(ID_KINDS.values())


@pytest.mark.parametrize("path", ["/widgets/<int:widget_id>", "/widgets/<uuid:key>", "/widgets/<name>"])
def test_a_new_route_with_an_unmapped_variable_fails_the_walk(path: str) -> None:
    with pytest.raises(pytest.fail.Exception):
        classify(Rule(path, endpoint="widgets.detail"))


#: The sign-out form's CSRF token in every signed-in page: signed with the time, so two pages
#: rendered a second apart differ there, whatever they say about the row asked for.
CSRF_VALUE = re.compile(rb'(name="csrf_token" value=")[^"]*(")')


def page_text(response: TestResponse) -> bytes:
    """The response body with CSRF token values blanked."""
    return CSRF_VALUE.sub(rb"\1\2", response.get_data())


def test_another_users_ids_get_404_on_every_route_and_change_nothing(world: World, outbox: MemorySender) -> None:
    app, ann, bob, client = world.app, world.ann, world.bob, world.client
    before, sent = snapshot(app, ann.user_id), len(outbox.sent)
    token = csrf(client, "/account/")
    walked: list[str] = []
    for route in routes(app):
        if not route.ids:
            continue
        for values in ann.id_values(route):
            path, missing = route.path(values), route.path({name: MISSING_ID for name in values})
            for method in route.methods:
                where = f"bob: {method} {path} ({route.endpoint})"
                headers = bob.write if route.is_api else {}
                response = call(client, route, method, path, actor=bob, headers=headers, csrf_token=token)
                assert response.status_code == 404, f"{where} -> {response.status_code}"
                if route.is_api and method != "HEAD":
                    assert error_code(response) == "not_found", where
                assert_nothing_of(ann, response, where)
                assert_security_headers(response, where)
                nobody = call(client, route, method, missing, actor=bob, headers=headers, csrf_token=token)
                assert (nobody.status_code, page_text(nobody)) == (response.status_code, page_text(response)), (
                    f"{where}: another user's id is told apart from an id nobody has"
                )
        walked.append(route.endpoint)
    assert len(walked) >= MIN_ID_RULES, walked
    assert snapshot(app, ann.user_id) == before
    assert outbox.sent[sent:] == [], "a mail went out for another user's row"


def test_another_users_destination_ids_in_a_body_are_refused(world: World) -> None:
    app, ann, bob, client = world.app, world.ann, world.bob, world.client
    before, bob_before = snapshot(app, ann.user_id), snapshot(app, bob.user_id)
    bob_alias = bob.ids["alias"][0]
    token = csrf(client, "/account/")
    for destination in ann.ids["destination"]:
        page = client.post(
            "/aliases/new",
            data={"csrf_token": token, "custom": "1", "destination": str(destination), "local_part": "grab"},
        )
        assert page.status_code == 400 and "Choose your own destinations." in page.get_data(as_text=True)
        page = client.post(
            f"/aliases/{bob_alias}/destinations", data={"csrf_token": token, "destination": str(destination)}
        )
        assert page.status_code == 400 and "Choose your own destinations." in page.get_data(as_text=True)
        response = client.post("/api/v1/aliases", json={"destination_ids": [destination]}, headers=bob.write)
        assert response.status_code == 400 and error_code(response) == "no_destination"
        response = client.patch(
            f"/api/v1/aliases/{bob_alias}", json={"destination_ids": [destination]}, headers=bob.write
        )
        assert response.status_code == 400 and error_code(response) == "no_destination"
    assert snapshot(app, ann.user_id) == before
    assert snapshot(app, bob.user_id) == bob_before


def test_no_page_or_list_shows_another_users_data(world: World) -> None:
    ann, bob, client = world.ann, world.bob, world.client
    seen = 0
    for route in routes(world.app):
        if "GET" not in route.methods or route.has_variables:
            continue
        response = client.get(route.path({}), headers=bob.write if route.is_api else {})
        assert response.status_code in (200, 302, 403), f"{route}: {response.status_code}"
        assert_nothing_of(ann, response, str(route))
        seen += response.status_code == 200
    for route in routes(world.app):  # bob's own objects, through each route that shows one
        if "GET" in route.methods and route.ids:
            for values in bob.id_values(route):
                response = client.get(route.path(values), headers=bob.write if route.is_api else {})
                assert response.status_code == 200, f"{route}: {response.status_code}"
                assert_nothing_of(ann, response, str(route))
                seen += 1
    assert seen >= 12
    assert bob.alias_address in client.get("/aliases/").get_data(as_text=True)  # the check can fail


# --- 2. sessions: the admin pages and every other page -----------------------------------------


def test_admin_routes_refuse_other_users_and_send_strangers_to_sign_in(app: Flask, world: World) -> None:
    admin = [route for route in routes(app) if route.endpoint.startswith(ADMIN_ENDPOINTS)]
    assert admin, "no admin routes found"
    token = csrf(world.client, "/account/")
    stranger = app.test_client()
    stranger_token = csrf(stranger, "/signin")
    for route in admin:
        path = route.path({name: world.bob.ids[kind][0] for name, kind in route.ids.items()})
        for method in route.methods:
            response = call(world.client, route, method, path, actor=world.bob, headers={}, csrf_token=token)
            assert response.status_code in (403, 404), f"non-admin {method} {path}: {response.status_code}"
            assert_nothing_of(world.ann, response, path)
            response = call(stranger, route, method, path, actor=world.bob, headers={}, csrf_token=stranger_token)
            assert redirect_path(response) == "/signin", f"anonymous {method} {path}"


def test_every_page_but_the_public_ones_needs_a_session(app: Flask, world: World) -> None:
    stranger = app.test_client()
    token = csrf(stranger, "/signin")  # a valid token, so a POST reaches the session check
    guarded = public = 0
    for route in routes(app):
        if route.is_api or route.is_static:
            continue
        if route.endpoint in PUBLIC_PAGES:
            assert not route.has_variables
            response = stranger.get(route.path({}))
            assert response.status_code == 200, f"{route}: {response.status_code}"
            public += 1
            continue
        if route.endpoint in PUBLIC_ACTIONS:
            continue
        path = route.path({name: world.ann.ids[kind][0] for name, kind in route.ids.items()})
        for method in route.methods:
            response = call(stranger, route, method, path, actor=world.bob, headers={}, csrf_token=token)
            assert response.status_code == 302, f"anonymous {method} {path}: {response.status_code}"
            location = urlsplit(response.headers["Location"])
            assert location.path == "/signin" and parse_qs(location.query).get("next") == [path], location
            guarded += 1
    assert public == len(PUBLIC_PAGES)
    assert guarded >= 25


# --- 3. the API's tokens -----------------------------------------------------------------------


def test_the_api_without_a_token_is_401_everywhere(app: Flask, world: World) -> None:
    anonymous = app.test_client()
    called = 0
    for route in routes(app):
        if not route.is_api:
            continue
        path = route.path({name: world.bob.ids[kind][0] for name, kind in route.ids.items()})
        if route.endpoint in PUBLIC_API:
            assert anonymous.get(path).status_code == 200
            continue
        for method in route.methods:
            for client, headers in ((anonymous, {}), (world.client, {}), (anonymous, _bearer("om_not-a-token"))):
                response = call(client, route, method, path, actor=world.bob, headers=headers, csrf_token=None)
                where = f"{method} {path} with {headers or 'no token'}"
                assert response.status_code == 401, f"{where}: {response.status_code}"
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), where
                if method != "HEAD":
                    assert error_code(response) == "unauthorized", where
                called += 1
    assert called >= 3 * 14


def test_a_read_token_may_only_read(app: Flask, world: World) -> None:
    bob, client = world.bob, world.client
    before = snapshot(app, bob.user_id)
    writes = reads = 0
    for route in routes(app):
        if not route.is_api or route.endpoint in PUBLIC_API:
            continue
        for values in bob.id_values(route):
            path = route.path(values)
            for method in route.methods:
                response = call(client, route, method, path, actor=bob, headers=bob.read, csrf_token=None)
                where = f"read token: {method} {path}"
                if method in WRITE_METHODS:
                    assert response.status_code == 403 and error_code(response) == "forbidden", where
                    writes += 1
                else:
                    assert response.status_code == 200, f"{where}: {response.status_code}"
                    reads += 1
    assert writes >= 8 and reads >= 6
    assert snapshot(app, bob.user_id) == before


# --- 4. security headers and markup ------------------------------------------------------------


def _signed_links(world: World, outbox: MemorySender) -> dict[str, str]:
    """A live verification link and a live password reset link of bob's, from the mails sent."""
    token = csrf(world.client, "/account/")
    added = world.client.post("/destinations/", data={"csrf_token": token, "email": "bob-new@real.example"})
    assert added.status_code == 302
    assert world.client.post("/reset", data={"csrf_token": token, "email": world.bob.email}).status_code == 302
    assert signup(world.app.test_client(), "carol@example.org", verify=False).status_code == 302  # her own link
    links = [urlsplit(link).path for message in outbox.sent for link in links_in(message.raw)]
    found = {
        kind: next(link for link in links if link.startswith(prefix))
        for kind, prefix in (
            ("verification", "/destinations/verify/"),
            ("reset", "/reset/"),
            ("account-email", "/email/verify/"),
        )
    }
    keys = world.app.extensions["othermail.runtime"].unsubscribe_keys  # no mail carries one here: signed directly
    found["unsubscribe"] = "/u/" + sign(keys[0], world.bob.ids["alias"][0], world.bob.ids["contact"][0])
    assert set(found) == set(SIGNED_LINKS.values())
    return found


def test_every_page_bob_can_reach_carries_the_headers_and_no_inline_code(world: World, outbox: MemorySender) -> None:
    app, bob, client = world.app, world.bob, world.client
    with app.app_context():  # an admin too, so the admin pages are walked as well
        _db(app).get(User, bob.user_id).is_admin = True
        _db(app).commit()
    links = _signed_links(world, outbox)
    static = sorted(str(p.relative_to(app.static_folder)) for p in Path(app.static_folder).rglob("*") if p.is_file())
    assert static
    delivered = MaildirSender(app.config["SETTINGS"].outbox).send(  # so the outbox pages show a message
        b"From: Store <orders@store.example>\r\nSubject: Parcel\r\n\r\nOn its way.\r\n",
        sender="orders@store.example",
        recipient=bob.email,
    )
    get_routes = [route for route in routes(app) if "GET" in route.methods]
    pages = 0
    for route in get_routes:
        if route.static_file:
            paths = [route.path({route.static_file: name}) for name in static]
        elif route.link:
            paths = [route.path({route.link: links[SIGNED_LINKS[route.endpoint]].rsplit("/", 1)[1]})]
        elif route.outbox_key:
            paths = [route.path({route.outbox_key: delivered})]
        else:
            paths = [route.path(values) for values in bob.id_values(route)]
        assert paths, route
        for path in paths:
            response = client.get(path, headers=bob.write if route.is_api else {})
            assert response.status_code in (200, 302), f"{path}: {response.status_code}"
            assert_security_headers(response, path)
            if response.status_code == 200 and response.mimetype == "text/html":
                problems = inline_code(response.get_data(as_text=True))
                assert not problems, f"{path}: {problems}"
                pages += 1
    assert pages >= 14, pages
    for path in ("/no/such/page", "/api/v1/no-such", f"/aliases/{MISSING_ID}"):  # errors carry them too
        response = client.get(path, headers=bob.write)
        assert response.status_code == 404
        assert_security_headers(response, path)


# --- 5. no user input reaches a mail header unvalidated ----------------------------------------


def test_signup_and_reset_refuse_header_breaking_addresses(
    app: Flask, client: FlaskClient, outbox: MemorySender
) -> None:
    for value in ADDRESS_INJECTIONS:
        response = post(client, "/signup", {"email": value, "password": PASSWORD, "confirm": PASSWORD})
        assert response.status_code == 400, repr(value)
        assert ADDRESS_ERROR in response.get_data(as_text=True), repr(value)
    with app.app_context():
        assert _db(app).scalar(select(func.count()).select_from(User)) == 0
    assert signup(client, "bob@example.org").status_code == 302
    token = csrf(client, "/reset")
    for value in (
        *ADDRESS_INJECTIONS,
        f"bob@example.org\r\nBcc: {MARK}",
        f"bob@example.org\nBcc: {MARK}",
        '"bob\x00"@example.org',
        "bob@example.org, bob@example.org",
    ):
        response = client.post("/reset", data={"csrf_token": token, "email": value})
        assert redirect_path(response) == "/signin", repr(value)  # the same answer whatever was typed
    assert outbox.sent == []
    response = client.post("/reset", data={"csrf_token": token, "email": " BOB@example.org\r\n"})
    assert redirect_path(response) == "/signin"
    assert [m.recipient for m in outbox.sent] == ["bob@example.org"]  # trimmed: harmless
    assert_outbox_is_clean(outbox)


def test_destination_addresses_with_header_breaking_input_are_refused(world: World, outbox: MemorySender) -> None:
    app, bob, client = world.app, world.bob, world.client
    before = snapshot(app, bob.user_id)
    token = csrf(client, "/account/")
    for value in ADDRESS_INJECTIONS:
        where = repr(value)
        page = client.post("/destinations/", data={"csrf_token": token, "email": value})
        assert page.status_code == 400 and ADDRESS_ERROR in page.get_data(as_text=True), where
        page = client.post(
            f"/destinations/{bob.pending_destination}/change", data={"csrf_token": token, "email": value}
        )
        assert page.status_code == 400 and ADDRESS_ERROR in page.get_data(as_text=True), where
        response = client.post("/api/v1/destinations", json={"email": value}, headers=bob.write)
        assert response.status_code == 400 and error_code(response) in ("invalid_email", "invalid_request"), where
        response = client.patch(
            f"/api/v1/destinations/{bob.pending_destination}", json={"email": value}, headers=bob.write
        )
        assert response.status_code == 400 and error_code(response) in ("invalid_email", "invalid_request"), where
    assert snapshot(app, bob.user_id) == before
    assert outbox.sent == []
    # Surrounding white space is trimmed: stored harmlessly, and the mail is clean.
    page = client.post("/destinations/", data={"csrf_token": token, "email": " Web@Real.example\r\n"})
    assert page.status_code == 302
    response = client.post("/api/v1/destinations", json={"email": "\tapi@real.example\n"}, headers=bob.write)
    assert response.status_code == 201
    assert sorted(m.recipient for m in outbox.sent) == ["api@real.example", "web@real.example"]
    assert_outbox_is_clean(outbox)


def test_custom_local_parts_with_header_breaking_input_are_refused(world: World, outbox: MemorySender) -> None:
    app, bob, client = world.app, world.bob, world.client
    before = snapshot(app, bob.user_id)
    token = csrf(client, "/account/")
    for value in LOCAL_PART_INJECTIONS:
        page = client.post(
            "/aliases/new",
            data={
                "csrf_token": token,
                "custom": "1",
                "local_part": value,
                "destination": str(bob.verified_destination),
            },
        )
        assert page.status_code == 400 and "An alias may hold letters" in page.get_data(as_text=True), repr(value)
        response = client.post(
            "/api/v1/aliases",
            json={"local_part": value, "destination_ids": [bob.verified_destination]},
            headers=bob.write,
        )
        assert response.status_code == 400, repr(value)
        assert error_code(response) in ("invalid_local_part", "invalid_request"), repr(value)
    assert snapshot(app, bob.user_id) == before
    assert outbox.sent == []


def _forward(app: Flask, outbox: MemorySender, address: str, n: int) -> None:
    raw = (
        f"From: Store <orders@store.example>\r\nTo: {address}\r\nSubject: Parcel {n}\r\n"
        f"Message-ID: <p{n}@store.example>\r\n\r\nOn its way.\r\n"
    ).encode()
    forwarder = Forwarder(
        SqlDirectory(make_session_factory(app.extensions["othermail.engine"])), outbox, Policy(), utcnow
    )
    forwarder.process(raw, Inbound(f"inbound-{n}", (address,), mail_from="orders@store.example"))


def test_labels_and_notes_are_stored_as_typed_and_never_reach_a_mail(world: World, outbox: MemorySender) -> None:
    app, bob, client = world.app, world.bob, world.client
    token = csrf(client, "/account/")
    created: dict[int, str] = {}  # alias id -> the text it holds
    for n, value in enumerate(TEXT_INJECTIONS):
        page = client.post(
            "/aliases/new",
            data={
                "csrf_token": token,
                "custom": "1",
                "label": value,
                "note": value,
                "destination": str(bob.verified_destination),
            },
        )
        assert page.status_code == 302, repr(value)
        web_id = int(page.headers["Location"].rsplit("/", 1)[1])
        response = client.post(
            "/api/v1/aliases",
            json={"label": value, "note": value, "destination_ids": [bob.verified_destination]},
            headers=bob.write,
        )
        assert response.status_code == 201, (repr(value), response.get_json())
        created |= {web_id: value, response.get_json()["id"]: value}
        edited = TEXT_INJECTIONS[(n + 1) % len(TEXT_INJECTIONS)]
        assert (
            client.post(
                f"/aliases/{web_id}/edit",
                data={"csrf_token": token, "label": edited, "note": edited, "expired_action": "drop"},
            ).status_code
            == 302
        )
        created[web_id] = edited
        response = client.patch(
            f"/api/v1/aliases/{bob.ids['alias'][0]}", json={"label": value, "note": value}, headers=bob.write
        )
        assert response.status_code == 200
    with app.app_context():
        rows = {a.id: a for a in _db(app).scalars(select(Alias).where(Alias.id.in_(created)))}
        assert {i: (rows[i].label, rows[i].note) for i in created} == {
            i: (text.strip()[:100], text.strip()) for i, text in created.items()
        }
        addresses = [rows[i].address for i in sorted(created)]
    for alias_id in created:  # shown escaped, never as markup
        page = client.get(f"/aliases/{alias_id}").get_data(as_text=True)
        assert not inline_code(page)
    assert "&lt;script&gt;" in client.get("/aliases/").get_data(as_text=True)
    for n, address in enumerate([*addresses, bob.alias_address]):
        _forward(app, outbox, address, n)
    assert len(outbox.sent) == len(addresses) + 1
    assert {m.recipient for m in outbox.sent} == {"bob-home@real.example"}
    assert_outbox_is_clean(outbox)


def test_nul_in_a_label_or_note_is_refused_on_the_pages(app: Flask, client: FlaskClient) -> None:
    from tests.support.factories import add_destination, user_id
    from tests.web.test_aliases_pages import LIST, NEW

    signup(client, "nul@example.org")
    uid = user_id(app, "nul@example.org")
    destination = add_destination(app, uid, "nul@real.example")
    for field in ("label", "note"):
        response = post(client, NEW, {field: "a\x00b", "destination": str(destination)}, page=LIST)
        assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)
    with app.app_context():
        from web.db import session

        assert session().scalar(select(func.count()).select_from(Alias)) == 0
