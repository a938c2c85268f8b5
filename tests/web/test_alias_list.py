"""The alias list (issue 16): search, state filter, sort, pagination, bad query values, bulk
disable / enable / delete with one confirmation, select all without script, copy buttons."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from models import Alias, Destination, User, utcnow
from tests.support.factories import add_destination, user_id
from tests.support.factories import web_session as db_session
from tests.web.conftest import csrf, post, signup

LIST = "/aliases/"
BULK = "/aliases/bulk"
ROW = re.compile(
    r'<tr data-id="(\d+)">\s*<td class="choose">.*?<td class="address"><a href="/aliases/\d+">([^<]+)</a>', re.S
)


@dataclass
class Owner:
    client: FlaskClient
    user: int
    home: int


@pytest.fixture
def ann(app: Flask, client: FlaskClient) -> Owner:
    assert signup(client, "ann@example.org").status_code == 302
    uid = user_id(app, "ann@example.org")
    return Owner(client, uid, add_destination(app, uid, "home@real.example"))


def add(app: Flask, owner: int, local: str, **columns: Any) -> int:
    """An alias row ``local@othermail.example`` of user ``owner``; its id."""
    with app.app_context():
        db = db_session(app)
        destinations = columns.pop("destinations", [])
        row = Alias(address=f"{local}@othermail.example", user_id=owner, **columns)
        row.destinations = [db.get(Destination, d) for d in destinations]
        db.add(row)
        db.commit()
        return row.id


def shown(client: FlaskClient, path: str) -> list[str]:
    """The local parts of the addresses the list shows, in order."""
    response = client.get(path)
    assert response.status_code == 200, path
    return [address.partition("@")[0] for _, address in ROW.findall(response.get_data(as_text=True))]


def row(app: Flask, alias_id: int) -> Alias:
    with app.app_context():
        found = db_session(app).get(Alias, alias_id)
        assert found is not None
        db_session(app).expunge(found)
        return found


# --- search, filter, sort ------------------------------------------------------------------------


def test_search_looks_in_the_address_label_note_and_destinations(app: Flask, ann: Owner) -> None:
    work = add_destination(app, ann.user, "me@work.example")
    add(app, ann.user, "shop", label="Bike SHOP", created_at=utcnow() - timedelta(minutes=1))
    add(app, ann.user, "news", note="weekly from the Shop down the road", created_at=utcnow() - timedelta(minutes=2))
    add(app, ann.user, "jobs", destinations=[work], created_at=utcnow() - timedelta(minutes=3))
    add(app, ann.user, "plain", destinations=[ann.home], created_at=utcnow() - timedelta(minutes=4))
    add(app, ann.user, "shopping-list", created_at=utcnow() - timedelta(minutes=5))
    assert shown(ann.client, f"{LIST}?q=shop") == ["shop", "news", "shopping-list"]
    assert shown(ann.client, f"{LIST}?q=WORK.example") == ["jobs"]
    assert shown(ann.client, f"{LIST}?q=%25") == []  # a LIKE wildcard is a plain character
    # another account's alias to a destination of the same address is not ann's to see
    with app.test_client() as bob_client:
        signup(bob_client, "bob@example.org")
    bob = user_id(app, "bob@example.org")
    add(app, bob, "bobs-jobs", destinations=[add_destination(app, bob, "me@work.example")])
    assert shown(ann.client, f"{LIST}?q=work.example") == ["jobs"]
    page = ann.client.get(f"{LIST}?q=shop").get_data(as_text=True)
    assert "3 aliases matching “shop”" in page and 'value="shop"' in page


def states(app: Flask, owner: int) -> dict[str, int]:
    now, day = utcnow(), timedelta(days=1)
    return {
        "permanent": add(app, owner, "permanent", created_at=now - 5 * day),
        "dated": add(app, owner, "dated", expires_at=now + day, created_at=now - 4 * day),
        "budget": add(app, owner, "budget", max_messages=5, message_count=2, created_at=now - 3 * day),
        "spent": add(app, owner, "spent", max_messages=2, message_count=2, created_at=now - 2 * day),
        "idle": add(app, owner, "idle", idle_days=3, created_at=now - 9 * day, last_used_at=now - 4 * day),
        "off": add(app, owner, "off", enabled=False, created_at=now - 1 * day),
        "off-expired": add(app, owner, "off-expired", enabled=False, expires_at=now - day, created_at=now),
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("", ["off-expired", "off", "spent", "budget", "dated", "permanent", "idle"]),
        ("active", ["budget", "dated", "permanent"]),
        ("expiring", ["budget", "dated"]),
        ("expired", ["off-expired", "spent", "idle"]),
        ("disabled", ["off"]),
    ],
)
def test_each_state_filter(app: Flask, ann: Owner, state: str, expected: list[str]) -> None:
    states(app, ann.user)
    add(app, ann.user, "gone", deleted_at=utcnow(), enabled=False)
    page = ann.client.get(f"{LIST}?state={state}").get_data(as_text=True)
    assert [address.partition("@")[0] for _, address in ROW.findall(page)] == expected
    assert f'<option value="{state}" selected>' in page
    # each row's tag says the same state the filter chose (data-state keeps the API's "off")
    tags = re.findall(r'data-state="([a-z]+)">([a-z]+)<', page)
    if state:
        assert set(tags) == {
            {"expiring": ("active", "active"), "disabled": ("off", "disabled")}.get(state, (state, state))
        }


def test_sort_by_each_key_both_ways_with_ties_broken_by_id(app: Flask, ann: Owner) -> None:
    now = utcnow()
    ids = {
        "b": add(app, ann.user, "b", message_count=3, created_at=now - timedelta(hours=1), last_used_at=now),
        "a": add(app, ann.user, "a", message_count=3, created_at=now - timedelta(hours=2)),
        "c": add(
            app,
            ann.user,
            "c",
            message_count=9,
            created_at=now - timedelta(hours=3),
            last_used_at=now - timedelta(days=1),
        ),
        "d": add(app, ann.user, "d", message_count=0, created_at=now - timedelta(hours=4)),
    }
    assert ids["a"] > ids["b"]
    assert shown(ann.client, LIST) == ["b", "a", "c", "d"]
    assert shown(ann.client, f"{LIST}?sort=created&order=asc") == ["d", "c", "a", "b"]
    assert shown(ann.client, f"{LIST}?sort=address") == ["a", "b", "c", "d"]
    assert shown(ann.client, f"{LIST}?sort=address&order=desc") == ["d", "c", "b", "a"]
    # a and b tie on 3 messages: the higher id first going down, the lower first going up
    assert shown(ann.client, f"{LIST}?sort=messages") == ["c", "a", "b", "d"]
    assert shown(ann.client, f"{LIST}?sort=messages&order=asc") == ["d", "b", "a", "c"]
    # never used sorts last both ways
    assert shown(ann.client, f"{LIST}?sort=used") == ["b", "c", "d", "a"]
    assert shown(ann.client, f"{LIST}?sort=used&order=asc") == ["c", "b", "a", "d"]


# --- pages ---------------------------------------------------------------------------------------


def many(app: Flask, owner: int, count: int, prefix: str = "item") -> None:
    now = utcnow()
    with app.app_context():
        db = db_session(app)
        for n in range(count):
            db.add(
                Alias(
                    address=f"{prefix}{n:03d}@othermail.example", user_id=owner, created_at=now - timedelta(minutes=n)
                )
            )
        db.commit()


def test_pages_of_25_or_50_cover_every_alias_once(app: Flask, ann: Owner) -> None:
    many(app, ann.user, 50)
    first, second = shown(ann.client, LIST), shown(ann.client, f"{LIST}?page=2")
    assert len(first) == 25 and len(second) == 25 and sorted(first + second) == [f"item{n:03d}" for n in range(50)]
    page = ann.client.get(LIST).get_data(as_text=True)
    assert "page 1 of 2" in page and 'rel="prev"' not in page
    assert len(shown(ann.client, f"{LIST}?per_page=50")) == 50
    whole = ann.client.get(f"{LIST}?per_page=50").get_data(as_text=True)
    assert 'class="pager"' not in whole  # one page: no pager
    last = ann.client.get(f"{LIST}?page=2").get_data(as_text=True)
    assert "page 2 of 2" in last and 'rel="next"' not in last and 'rel="prev" href="/aliases/"' in last


def test_page_links_keep_the_query(app: Flask, ann: Owner) -> None:
    many(app, ann.user, 60)
    page = ann.client.get(f"{LIST}?q=item0&sort=address&order=desc&page=2").get_data(as_text=True)
    assert "page 2 of 3" in page
    links = dict(re.findall(r'rel="(next|prev)" href="([^"]+)"', page))
    for rel, number in (("next", 3), ("prev", 1)):
        args = dict(pair.split("=") for pair in links[rel].split("?", 1)[1].replace("&amp;", "&").split("&"))
        assert args == {
            "q": "item0",
            "sort": "address",
            "order": "desc",
            **({"page": str(number)} if number > 1 else {}),
        }
    assert shown(ann.client, links["next"].replace("&amp;", "&"))[0] == "item009"


def test_a_page_past_the_end_is_empty_and_links_back(app: Flask, ann: Owner) -> None:
    many(app, ann.user, 30)
    page = ann.client.get(f"{LIST}?page=7").get_data(as_text=True)
    assert ROW.findall(page) == [] and "No alias on this page." in page
    assert 'rel="prev" href="/aliases/?page=2"' in page  # the last page, not page 6


@pytest.mark.parametrize(
    "query",
    [
        "state=sleeping",
        "sort=colour",
        "order=sideways",
        "per_page=13",
        "per_page=abc",
        "per_page=99999999999999999999",
        "page=-1",
        "page=abc",
        "page=" + "9" * 5000,
        "page=%EF%BC%91",  # a full-width digit one
        "q=" + "x" * 500,
        "state=&sort=&order=&per_page=&page=",
        "state=expired&state=active",
    ],
)
def test_bad_values_fall_back_to_defaults(app: Flask, ann: Owner, query: str) -> None:
    many(app, ann.user, 3)
    response = ann.client.get(f"{LIST}?{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    if not query.startswith(("q=", "page=9", "state=expired")):
        assert shown(ann.client, f"{LIST}?{query}") == ["item000", "item001", "item002"]
        assert '<option value="created" selected>' in page and '<option value="desc" selected>' in page
        assert '<option value="25" selected>' in page and '<option value="" selected>All' in page


def test_the_list_costs_the_same_statements_for_3_or_60_aliases(app: Flask, ann: Owner) -> None:
    engine = app.extensions["othermail.engine"]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def listed(path: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert ann.client.get(path).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    many(app, ann.user, 3)
    listed(LIST)  # anything a first request does once
    few = listed(f"{LIST}?per_page=50&q=item&state=active&sort=used")
    many(app, ann.user, 57, prefix="more")
    assert listed(f"{LIST}?per_page=50&q=o&state=active&sort=used") == few
    assert sum("LIMIT" in s for s in statements) == 1 and sum("count(" in s.lower() for s in statements) == 1


# --- bulk actions --------------------------------------------------------------------------------


def bulk(client: FlaskClient, action: str, ids: list[int], confirm: bool = False, **extra: str):  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {"action": action, "alias": [str(i) for i in ids], **extra}
    if confirm:
        data["confirm"] = "yes"
    return client.post(BULK, data={"csrf_token": csrf(client, LIST), **data})


def test_bulk_disable_asks_once_then_disables_and_says_how_many(app: Flask, ann: Owner) -> None:
    ids = [add(app, ann.user, name) for name in ("one", "two", "three", "four")]
    already_off = add(app, ann.user, "sleeper", enabled=False)
    chosen = [*ids[:3], already_off]
    asked = bulk(ann.client, "disable", chosen, state="active", sort="address")
    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert "<h1>Disable 3 aliases?</h1>" in page
    assert re.findall(r'<li class="address">([^<]+)</li>', page) == [
        f"{n}@othermail.example" for n in ("one", "three", "two")
    ]
    assert "1 chosen alias is already disabled" in page
    assert all(row(app, i).enabled for i in ids)  # nothing changed yet
    form = re.search(r'<form method="post" action="/aliases/bulk".*?</form>', page, re.S)
    assert form
    hidden = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', form.group(0))
    fields: dict[str, list[str]] = {}
    for name, value in hidden:
        fields.setdefault(name, []).append(value)
    assert fields["confirm"] == ["yes"] and sorted(fields["alias"]) == sorted(str(i) for i in ids[:3])
    assert fields["state"] == ["active"] and fields["sort"] == ["address"]
    done = ann.client.post(BULK, data=fields)
    assert done.status_code == 302 and done.headers["Location"] == "/aliases/?state=active&sort=address"
    assert [row(app, i).enabled for i in ids] == [False, False, False, True]
    listing = ann.client.get(done.headers["Location"]).get_data(as_text=True)
    assert '<p class="flash" role="status">3 aliases disabled.</p>' in listing
    assert shown(ann.client, f"{LIST}?state=disabled&sort=address") == ["one", "sleeper", "three", "two"]


def test_bulk_enable_clears_the_services_reason_and_delete_retires_the_addresses(app: Flask, ann: Owner) -> None:
    off = add(app, ann.user, "complained", enabled=False, disabled_reason="spam complaint")
    on = add(app, ann.user, "fine")
    done = bulk(ann.client, "enable", [off, on], confirm=True)
    assert done.status_code == 302
    enabled = row(app, off)
    assert enabled.enabled and enabled.disabled_reason is None
    assert "1 alias enabled." in ann.client.get(LIST).get_data(as_text=True)
    asked = bulk(ann.client, "delete", [off, on]).get_data(as_text=True)
    assert "<h1>Delete 2 aliases?</h1>" in asked and "cannot be undone" in asked and 'class="danger"' in asked
    assert row(app, off).deleted_at is None
    assert bulk(ann.client, "delete", [off, on], confirm=True).status_code == 302
    assert all(row(app, i).deleted_at is not None and not row(app, i).enabled for i in (off, on))
    assert "2 aliases deleted." in ann.client.get(LIST).get_data(as_text=True)
    assert shown(ann.client, LIST) == []
    # a deleted alias cannot be chosen again
    assert bulk(ann.client, "enable", [off], confirm=True).status_code == 404


def test_bulk_refuses_another_accounts_aliases_whole(app: Flask, ann: Owner, client: FlaskClient) -> None:
    mine = add(app, ann.user, "mine")
    with app.test_client() as bob_client:
        signup(bob_client, "bob@example.org")
        bob = user_id(app, "bob@example.org")
    theirs = add(app, bob, "theirs")
    for confirm in (False, True):
        assert bulk(ann.client, "disable", [mine, theirs], confirm=confirm).status_code == 404
        assert bulk(ann.client, "delete", [theirs], confirm=confirm).status_code == 404
    assert row(app, mine).enabled and row(app, theirs).enabled and row(app, theirs).deleted_at is None
    assert bulk(ann.client, "disable", [999_999], confirm=True).status_code == 404
    assert bulk(ann.client, "disable", [], confirm=True).status_code == 302
    assert bulk(ann.client, "disable", ["x"], confirm=True).status_code == 404  # type: ignore[list-item]


def test_bulk_without_a_choice_or_an_action_changes_nothing_and_says_so(app: Flask, ann: Owner) -> None:
    one = add(app, ann.user, "one")
    response = bulk(ann.client, "disable", [], confirm=True, q="on")
    assert response.status_code == 302 and response.headers["Location"] == "/aliases/?q=on"
    assert "Choose at least one alias." in ann.client.get(LIST).get_data(as_text=True)
    assert bulk(ann.client, "explode", [one], confirm=True).status_code == 302
    assert "Choose disable, enable or delete." in ann.client.get(LIST).get_data(as_text=True)
    assert bulk(ann.client, "disable", list(range(1, 102)), confirm=True).status_code == 302
    assert "Choose at most 100 aliases at a time." in ann.client.get(LIST).get_data(as_text=True)
    assert row(app, one).enabled
    nothing = bulk(ann.client, "enable", [one]).get_data(as_text=True)
    assert "<h1>Nothing to enable</h1>" in nothing and 'name="confirm"' not in nothing


def test_bulk_needs_the_csrf_token(app: Flask, ann: Owner) -> None:
    one = add(app, ann.user, "one")
    response = ann.client.post(BULK, data={"action": "disable", "alias": str(one), "confirm": "yes"})
    assert response.status_code == 400 and row(app, one).enabled


def test_select_all_on_this_page_without_script(app: Flask, ann: Owner) -> None:
    many(app, ann.user, 30)
    page = ann.client.get(f"{LIST}?sort=address").get_data(as_text=True)
    assert 'name="alias"' in page and " checked" not in page
    form = re.search(r'<form method="get" action="/aliases/" class="inline select-all">(.*?)</form>', page, re.S)
    assert form
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', form.group(1)))
    assert fields == {"sort": "address", "select": "page"}
    ticked = ann.client.get(LIST, query_string=fields).get_data(as_text=True)
    boxes = re.findall(r'<input type="checkbox" name="alias" value="(\d+)"[^>]*>', ticked)
    checked = re.findall(r'<input type="checkbox" name="alias" value="(\d+)"[^>]*checked>', ticked)
    assert len(boxes) == 25 and checked == boxes
    assert "Select none" in ticked


# --- copy buttons --------------------------------------------------------------------------------

COPY = re.compile(
    r'<button class="copy quiet" type="button" data-copy="([^"]+)" aria-label="([^"]+)" hidden>Copy</button>'
)


def test_copy_buttons_on_the_list_the_alias_page_and_the_contacts_page(app: Flask, ann: Owner) -> None:
    alias_id = add(app, ann.user, "shop", destinations=[ann.home])
    address = "shop@othermail.example"
    for path in (LIST, f"/aliases/{alias_id}"):
        page = ann.client.get(path).get_data(as_text=True)
        assert COPY.findall(page) == [(address, f"Copy {address}")], path
        assert '<script src="/static/copy.js" defer></script>' in page
        assert 'aria-live="polite" aria-atomic="true" data-copy-status' in page
    contacts = f"/aliases/{alias_id}/contacts"
    assert post(ann.client, contacts, {"address": "bob@example.net"}).status_code == 302
    page = ann.client.get(contacts).get_data(as_text=True)
    reverse = re.search(r'class="reverse" type="text" readonly value="([^"]+)"', page)
    assert reverse
    assert COPY.findall(page) == [(reverse.group(1), "Copy the reverse address of bob@example.net")]
    assert '<script src="/static/copy.js" defer></script>' in page


def test_the_scripts_are_served(ann: Owner) -> None:
    for name in ("copy.js", "select.js"):
        response = ann.client.get(f"/static/{name}")
        assert response.status_code == 200 and "javascript" in response.content_type


def test_the_apis_search_looks_in_the_same_places(app: Flask, ann: Owner, client: FlaskClient) -> None:
    from web.services import tokens

    work = add_destination(app, ann.user, "me@work.example")
    add(app, ann.user, "jobs", destinations=[work])
    add(app, ann.user, "news", note="From the SHOP")
    add(app, ann.user, "other")
    with app.app_context():
        db = db_session(app)
        user = db.get(User, ann.user)
        _, secret = tokens.create(db, user, "read", "read", None)
    headers = {"Authorization": f"Bearer {secret}"}
    for q, expected in (("work.example", ["jobs@othermail.example"]), ("shop", ["news@othermail.example"])):
        body = client.get("/api/v1/aliases", query_string={"q": q}, headers=headers).get_json()
        assert [item["address"] for item in body["items"]] == expected and body["total"] == 1
    spec = client.get("/api/v1/openapi.json").get_json()
    [q_param] = [p for p in spec["paths"]["/aliases"]["get"]["parameters"] if p["name"] == "q"]
    assert "note" in q_param["description"] and "destination" in q_param["description"]
