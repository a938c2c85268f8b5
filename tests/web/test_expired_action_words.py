"""Issue 12.19: the web app (in the user's words) and the API (precisely) say what an expired alias's "reject" does."""

from __future__ import annotations

import re

from flask import Flask

from tests.web.test_aliases_pages import NEW, Ann, ann, create, new_id  # noqa: F401  (ann: the fixture)
from web.api.openapi import document


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_new_alias_page_says_what_reject_does(app: Flask, ann: Ann) -> None:  # noqa: F811
    page = _text(ann.client.get(NEW).get_data(as_text=True))
    assert "bounce" in page and "forged sender is dropped" in page
    for operator_word in ("one box", "550", "SMTP", "SPF", "DMARC"):  # the operator's detail is in the docs
        assert operator_word not in page, operator_word


def test_the_alias_page_says_what_reject_does(app: Flask, ann: Ann) -> None:  # noqa: F811
    alias_id = new_id(create(ann.client, destination=str(ann.home), expired_action="reject", duration="7d"))
    page = _text(ann.client.get(f"/aliases/{alias_id}").get_data(as_text=True))
    assert "bounce" in page and "forged sender is dropped" in page
    assert "one box" not in page and "550" not in page and "SPF" not in page


def test_the_openapi_document_says_what_reject_does() -> None:
    schemas = document()["components"]["schemas"]
    for name in ("Alias", "AliasCreate", "AliasUpdate"):
        described = schemas[name]["properties"]["expired_action"]["description"]
        assert (
            "SPF passed" in described and "DMARC" not in described and "550 5.1.1" in described and "drop" in described
        ), name
