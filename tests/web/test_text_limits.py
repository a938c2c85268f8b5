"""Each text limit is written once (models/limits.py): the column, the API, the web forms and the
CLI's account rules all hold the same number, refusing one character more and taking the maximum."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_api import make_account

from forwarder import accounts
from forwarder.errors import AccountError
from models import Alias, ApiToken, User, limits
from tests.web.conftest import signup


def test_the_columns_are_as_long_as_the_limits() -> None:
    assert Alias.__table__.c.label.type.length == limits.LABEL_MAX_LENGTH
    assert Alias.__table__.c.address.type.length == limits.EMAIL_MAX_LENGTH
    assert User.__table__.c.email.type.length == limits.EMAIL_MAX_LENGTH
    assert ApiToken.__table__.c.name.type.length == limits.TOKEN_NAME_MAX_LENGTH


def test_the_api_takes_the_longest_label_and_refuses_one_character_more(app: Flask, client: FlaskClient) -> None:
    ann = make_account(app, "ann@example.org")
    longest = "x" * limits.LABEL_MAX_LENGTH
    made = client.post(
        "/api/v1/aliases", json={"destination_ids": [ann.destination_id], "label": longest}, headers=ann.write
    )
    assert made.status_code == 201 and made.get_json()["label"] == longest
    too_long = client.post(
        "/api/v1/aliases", json={"destination_ids": [ann.destination_id], "label": longest + "x"}, headers=ann.write
    )
    assert too_long.status_code == 400 and too_long.get_json()["error"]["code"] == "invalid_request"


def _maxlength(page: str, name: str) -> int:
    match = re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*maxlength="(\d+)"', page)
    assert match, f"no maxlength on the {name} field"
    return int(match.group(1))


def test_the_web_forms_hold_the_same_limits(client: FlaskClient) -> None:
    signup(client)
    new_alias = client.get("/aliases/new").get_data(as_text=True)
    assert _maxlength(new_alias, "label") == limits.LABEL_MAX_LENGTH
    assert _maxlength(new_alias, "note") == limits.NOTE_MAX_LENGTH
    assert _maxlength(new_alias, "local_part") == limits.LOCAL_PART_MAX_LENGTH
    assert _maxlength(client.get("/account/tokens").get_data(as_text=True), "name") == limits.TOKEN_NAME_MAX_LENGTH


@pytest.mark.parametrize("extra", [0, 1])
def test_the_account_rules_the_cli_uses_take_the_longest_local_part_only(extra: int) -> None:
    local_part = "a" * (limits.LOCAL_PART_MAX_LENGTH + extra)
    if extra:
        with pytest.raises(AccountError, match=f"at most {limits.LOCAL_PART_MAX_LENGTH} characters"):
            accounts.check_local_part(local_part)
    else:
        assert accounts.check_local_part(local_part) == local_part
