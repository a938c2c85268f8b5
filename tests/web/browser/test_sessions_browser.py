"""Ending sessions in real Chromium (issue 16): two browsers signed in to one account; the first
ends the second from the account page's session list, and the second is signed out at its next
click; then "End every other session" signs out every browser but this one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.web.browser.live_server import live_server
from tests.web.browser.site import build_app
from tests.web.conftest import PASSWORD, signup

ANN = "ann@example.org"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app: Flask = build_app(tmp_path_factory.mktemp("sessions"))
    signup(app.test_client(), ANN)
    try:
        with live_server(app) as base:
            yield base
    finally:
        app.extensions["othermail.engine"].dispose()


@pytest.fixture
def browser(chromium: Any, served: str) -> Iterator[Any]:
    """``browser(user_agent)``: a signed-in page in a browser context of its own."""
    contexts: list[Any] = []

    def signed_in(user_agent: str) -> Any:
        context = chromium.new_context(base_url=served, user_agent=user_agent)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/signin")
        page.get_by_label("Email").fill(ANN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url("**/dashboard")
        return page

    yield signed_in
    for context in contexts:
        context.close()


def signed_out(page: Any) -> bool:
    page.goto("/account/")
    return "/signin" in page.url


def test_end_another_session_then_every_other_one(browser: Any) -> None:
    phone, laptop, tablet = browser("Phone Browser 1.0"), browser("Laptop Browser 2.0"), browser("Tablet Browser 3.0")
    phone.goto("/account/")
    laptop_row = phone.locator("table.sessions tbody tr", has_text="Laptop Browser")
    this_row = phone.locator("table.sessions tbody tr", has_text="Phone Browser")
    assert this_row.get_by_text("this session").is_visible()
    laptop_row.get_by_role("button", name="End").click()
    phone.wait_for_url("**/account/")
    assert phone.get_by_text("That session was ended").is_visible()
    assert phone.locator("table.sessions tbody tr", has_text="Laptop Browser").count() == 0
    assert signed_out(laptop)  # at its very next request
    assert not signed_out(tablet)

    phone.goto("/account/")
    phone.get_by_role("button", name="End every other session").click()
    phone.wait_for_url("**/account/")
    assert phone.locator("table.sessions tbody tr", has_text="Tablet Browser").count() == 0
    assert signed_out(tablet)
    assert not signed_out(phone)
