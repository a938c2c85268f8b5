"""Contacts and sender rules through the JSON API (issue 14)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.test_api import Account, make_account

BASE = "/api/v1"


@pytest.fixture
def ann(app: Flask) -> Account:
    app.config["RATE_LIMITS"] = {**app.config["RATE_LIMITS"], "api": (10_000, 60), "alias-create": (1000, 3600)}
    return make_account(app, "ann@example.org")


def new_alias(client: FlaskClient, account: Account) -> dict:
    response = client.post(f"{BASE}/aliases", json={"domain": "alias.example"}, headers=account.write)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_a_contact_to_write_first(client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    response = client.post(
        f"{BASE}/aliases/{alias['id']}/contacts", json={"address": "Bob@Example.NET", "name": "Bob"}, headers=ann.write
    )
    assert response.status_code == 201
    contact = response.get_json()
    local, _, domain = contact["reverse_address"].partition("@")
    assert domain == "alias.example" and len(local) == 16
    assert (contact["address"], contact["name"], contact["origin"], contact["blocked"]) == (
        "bob@example.net",
        "Bob",
        "user",
        False,
    )
    again = client.post(
        f"{BASE}/aliases/{alias['id']}/contacts", json={"address": "bob@example.net"}, headers=ann.write
    )
    assert again.get_json()["reverse_address"] == contact["reverse_address"]
    listed = client.get(f"{BASE}/aliases/{alias['id']}/contacts", headers=ann.read).get_json()["items"]
    assert [c["reverse_address"] for c in listed] == [contact["reverse_address"]]


@pytest.mark.parametrize("address", ["x@othermail.example", "y@alias.example", "inbox.ann@example.org", "nope"])
def test_service_and_own_addresses_are_refused(client: FlaskClient, ann: Account, address: str) -> None:
    alias = new_alias(client, ann)
    response = client.post(f"{BASE}/aliases/{alias['id']}/contacts", json={"address": address}, headers=ann.write)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in {"invalid_contact", "invalid_email"}
    assert client.get(f"{BASE}/aliases/{alias['id']}/contacts", headers=ann.read).get_json()["items"] == []


def test_block_unblock_delete_and_nobody_elses(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    contact = client.post(
        f"{BASE}/aliases/{alias['id']}/contacts", json={"address": "bob@example.net"}, headers=ann.write
    ).get_json()
    url = f"{BASE}/contacts/{contact['id']}"
    eve = make_account(app, "eve@example.org")
    assert client.patch(url, json={"blocked": True}, headers=eve.write).status_code == 404
    assert client.delete(url, headers=eve.write).status_code == 404
    assert client.get(f"{BASE}/aliases/{alias['id']}/contacts", headers=eve.read).status_code == 404
    assert client.patch(url, json={"blocked": True}, headers=ann.read).status_code == 403
    assert client.patch(url, json={"blocked": True}, headers=ann.write).get_json()["blocked"] is True
    runtime = app.extensions["othermail.runtime"]
    assert runtime.contacts.sender_allowed(ann.user_id, alias["id"], "bob@example.net").reason == "blocked-contact"
    assert client.patch(url, json={"blocked": False}, headers=ann.write).get_json()["blocked"] is False
    assert client.delete(url, headers=ann.write).status_code == 204
    assert client.delete(url, headers=ann.write).status_code == 404


def test_alias_rules_add_list_remove(app: Flask, client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    url = f"{BASE}/aliases/{alias['id']}/rules"
    rule = client.post(url, json={"action": "block", "kind": "domain", "value": "Spam.Example"}, headers=ann.write)
    assert rule.status_code == 201
    assert rule.get_json() | {"id": 0} == {
        "id": 0,
        "alias_id": alias["id"],
        "action": "block",
        "kind": "domain",
        "value": "spam.example",
    }
    runtime = app.extensions["othermail.runtime"]
    verdict = runtime.contacts.sender_allowed(ann.user_id, alias["id"], "x@news.spam.example")
    assert (verdict.allowed, verdict.reason) == (False, "blocked-by-alias-rule")
    assert [r["id"] for r in client.get(url, headers=ann.read).get_json()["items"]] == [rule.get_json()["id"]]
    bad = client.post(url, json={"action": "allow", "kind": "address", "value": "no-at-sign"}, headers=ann.write)
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "invalid_rule")
    eve = make_account(app, "eve@example.org")
    assert client.delete(f"{BASE}/rules/{rule.get_json()['id']}", headers=eve.write).status_code == 404
    assert client.delete(f"{BASE}/rules/{rule.get_json()['id']}", headers=ann.write).status_code == 204
    assert client.get(url, headers=ann.read).get_json()["items"] == []


def test_a_name_with_control_characters_is_refused(client: FlaskClient, ann: Account) -> None:
    alias = new_alias(client, ann)
    body = {"address": "bob@example.net", "name": "Bob\r\nBcc: eve@example.net"}
    response = client.post(f"{BASE}/aliases/{alias['id']}/contacts", json=body, headers=ann.write)
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_text")
    assert client.get(f"{BASE}/aliases/{alias['id']}/contacts", headers=ann.read).get_json()["items"] == []


def test_account_rules_apply_to_every_alias(app: Flask, client: FlaskClient, ann: Account) -> None:
    first, second = new_alias(client, ann), new_alias(client, ann)
    url = f"{BASE}/rules"
    rule = client.post(url, json={"action": "block", "kind": "empty-sender"}, headers=ann.write)
    assert rule.status_code == 201, rule.get_json()
    assert rule.get_json()["alias_id"] is None and rule.get_json()["kind"] == "empty-sender"
    runtime = app.extensions["othermail.runtime"]
    for alias in (first, second):
        verdict = runtime.contacts.sender_allowed(ann.user_id, alias["id"], "")
        assert (verdict.allowed, verdict.reason) == (False, "blocked-by-account-rule")
    # an alias's own rule is listed under the alias, not with the account's
    client.post(
        f"{BASE}/aliases/{first['id']}/rules", json={"action": "allow", "kind": "domain", "value": "ok.example"},
        headers=ann.write,
    )  # fmt: skip
    assert [r["id"] for r in client.get(url, headers=ann.read).get_json()["items"]] == [rule.get_json()["id"]]
    assert client.post(url, json={"action": "block", "kind": "empty-sender"}, headers=ann.read).status_code == 403
    eve = make_account(app, "eve@example.org")
    assert client.get(url, headers=eve.read).get_json()["items"] == []
    assert client.delete(f"{BASE}/rules/{rule.get_json()['id']}", headers=ann.write).status_code == 204
    assert client.get(url, headers=ann.read).get_json()["items"] == []
