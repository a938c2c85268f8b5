"""An alias's contacts page (issue 14): list, write first, block, unblock, delete; nobody else's."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import add_destination, user_id
from tests.web.conftest import PASSWORD, post, signup


@dataclass
class Ann:
    client: FlaskClient
    alias_id: int
    address: str


def make_alias(client: FlaskClient) -> tuple[int, str]:
    response = post(client, "/aliases/new", {}, page="/aliases/")
    match = re.search(r"/aliases/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    page = client.get(f"/aliases/{match.group(1)}").get_data(as_text=True)
    address = re.search(r'<h1 class="address">([^<]+)</h1>', page)
    assert address
    return int(match.group(1)), address.group(1)


@pytest.fixture
def ann(app: Flask, client: FlaskClient) -> Ann:
    signup(client, "ann@example.org")
    add_destination(app, user_id(app, "ann@example.org"), "home@real.example")
    return Ann(client, *make_alias(client))


def contacts_url(ann: Ann) -> str:
    return f"/aliases/{ann.alias_id}/contacts"


def test_the_alias_page_links_to_its_contacts(ann: Ann) -> None:
    page = ann.client.get(f"/aliases/{ann.alias_id}").get_data(as_text=True)
    assert f'href="/aliases/{ann.alias_id}/contacts"' in page


def test_creating_a_contact_shows_its_reverse_address_on_the_alias_domain(ann: Ann) -> None:
    url = contacts_url(ann)
    response = post(ann.client, url, {"address": "Bob@Example.NET", "name": "Bob"})
    assert response.status_code == 302
    page = ann.client.get(url).get_data(as_text=True)
    assert "bob@example.net" in page and "Bob" in page
    reverse = re.search(r'class="reverse" type="text" readonly value="([^"]+)"', page)
    assert reverse
    local, _, domain = reverse.group(1).partition("@")
    assert domain == ann.address.partition("@")[2]
    assert len(local) == 16 and "bob" not in local


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("not an address", "valid email address"),
        ("someone@othermail.example", "not an alias of this service"),
        ("x@alias.example", "not an alias of this service"),
        ("home@real.example", "your own address"),
        ("ANN@example.org", "your own address"),
    ],
)
def test_a_contact_must_be_an_outside_address(ann: Ann, address: str, words: str) -> None:
    response = post(ann.client, contacts_url(ann), {"address": address})
    assert response.status_code == 400
    assert words in response.get_data(as_text=True)
    assert 'class="reverse"' not in response.get_data(as_text=True)


def _contact_id(client: FlaskClient, url: str) -> int:
    match = re.search(r"/contacts/(\d+)/block", client.get(url).get_data(as_text=True))
    assert match
    return int(match.group(1))


def test_block_unblock_and_delete(ann: Ann) -> None:
    url = contacts_url(ann)
    post(ann.client, url, {"address": "bob@example.net"})
    contact = _contact_id(ann.client, url)
    assert post(ann.client, f"{url}/{contact}/block", {}, page=url).status_code == 302
    page = ann.client.get(url).get_data(as_text=True)
    assert "<strong>blocked</strong>" in page and f"/contacts/{contact}/unblock" in page
    assert post(ann.client, f"{url}/{contact}/unblock", {}, page=url).status_code == 302
    assert "<strong>blocked</strong>" not in ann.client.get(url).get_data(as_text=True)
    assert post(ann.client, f"{url}/{contact}/delete", {}, page=url).status_code == 302
    assert "bob@example.net" not in ann.client.get(url).get_data(as_text=True)


def test_mail_that_came_through_the_alias_lists_its_people_with_counts(app: Flask, ann: Ann) -> None:
    runtime = app.extensions["othermail.runtime"]
    domain = ann.address.partition("@")[2]
    runtime.contacts.contacts_for(ann.alias_id, domain, [("shop@example.com", "The Shop")])
    runtime.contacts.contacts_for(ann.alias_id, domain, [("shop@example.com", "The Shop")])
    page = ann.client.get(contacts_url(ann)).get_data(as_text=True)
    row = page[page.index("shop@example.com") :]
    assert "The Shop" in page
    assert re.search(
        r"<td[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d</td>\s*<td[^>]*>2</td>\s*<td[^>]*>0</td>\s*<td[^>]*>0</td>", row
    )


def test_another_users_alias_and_contacts_are_not_found(app: Flask, ann: Ann) -> None:
    url = contacts_url(ann)
    post(ann.client, url, {"address": "bob@example.net"})
    contact = _contact_id(ann.client, url)
    other = app.test_client()
    signup(other, "eve@example.org", PASSWORD)
    assert other.get(url).status_code == 404
    add_destination(app, user_id(app, "eve@example.org"), "eve@real.example")
    own_id, _ = make_alias(other)
    for action in ("block", "delete"):
        response = post(other, f"/aliases/{own_id}/contacts/{contact}/{action}", {}, page=f"/aliases/{own_id}/contacts")
        assert response.status_code == 404
    assert post(other, url, {"address": "x@example.net"}, page=f"/aliases/{own_id}/contacts").status_code == 404
    assert "bob@example.net" in ann.client.get(url).get_data(as_text=True)
