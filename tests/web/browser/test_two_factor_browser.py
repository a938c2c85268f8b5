"""Two-factor sign-in in real Chromium (issue 16): turn TOTP on from the account page (the QR code
drawn, the otpauth:// URI beside it), then sign in with the password and a code; a recovery code
signs in once and only once. Codes are computed with pyotp from the key the page shows."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask

from tests.web.browser.live_server import live_server
from tests.web.browser.site import build_app
from tests.web.conftest import PASSWORD, post, signup

axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright", reason="needs axe-playwright-python")

ANN = "ann@example.org"
BOB = "bob@example.org"
#: Where a page that needs a session sends a browser without one.
SIGNIN_PAGE = re.compile(r".*/signin\?next=/account/$")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    app = build_app(tmp_path_factory.mktemp("two-factor"))
    signup(app.test_client(), ANN)
    try:
        with live_server(app) as base:
            yield app, base
    finally:
        app.extensions["othermail.engine"].dispose()


@pytest.fixture
def new_page(chromium: Any, served: tuple[Flask, str]) -> Iterator[Any]:
    """``new_page()``: a page in a browser context of its own (no cookies: another browser)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = chromium.new_context(base_url=served[1])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        return page

    yield make
    for context in contexts:
        context.close()


def assert_accessible(page: Any) -> None:
    """No serious or critical axe-core finding (as tests/web/browser/test_accessibility.py asks of
    every page; these pages need a sign-in half done or a password given, so they are checked here)."""
    violations = [v for v in axe_sync.Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert violations == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]


def password_step(page: Any, email: str) -> None:
    page.goto("/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def code_after(secret: str, seconds: float) -> str:
    return pyotp.TOTP(secret).at(time.time() + seconds)


def heading_lines_of(page: Any, words: str) -> int:
    """How many lines ``words`` of the page's h1 take."""
    return page.evaluate(
        """words => {
          const walker = document.createTreeWalker(document.querySelector('h1'), NodeFilter.SHOW_TEXT);
          while (walker.nextNode()) {
            const node = walker.currentNode, at = node.data.indexOf(words), range = document.createRange();
            if (at < 0) continue;
            range.setStart(node, at);
            range.setEnd(node, at + words.length);
            return new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
          }
          return 0;
        }""",
        words,
    )


def test_turn_totp_on_then_sign_in_with_a_code(new_page: Any) -> None:
    page = new_page()
    password_step(page, ANN)
    page.wait_for_url("**/dashboard")
    page.goto("/account/")
    setup = page.locator("#totp-setup")
    setup.get_by_label("Your password").fill(PASSWORD)
    setup.get_by_role("button", name="Set up two-factor sign-in").click()
    page.wait_for_url("**/account/two-factor/setup")

    qr = page.get_by_role("img", name="QR code for your authenticator app")
    assert qr.is_visible() and qr.bounding_box()["width"] >= 100
    shown = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", shown)  # groups of four; the apps skip spaces
    secret = shown.replace(" ", "")
    assert page.locator("#totp-uri").inner_text() == pyotp.TOTP(secret).provisioning_uri(
        name=ANN, issuer_name="othermail"
    )
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the long URI wraps, nothing scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert qr.is_visible()
    assert heading_lines_of(page, "sign-in") == 1  # the heading does not break as "sign-" / "in"
    page.get_by_label("Code from the app").fill(code_after(secret, 0))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    page.wait_for_url("**/account/two-factor/enable")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    assert_accessible(page)
    page.get_by_role("link", name="I have saved them").click()
    page.wait_for_url("**/account/")
    assert "10 unused recovery code(s) left" in page.locator("#two-factor").inner_text()

    other = new_page()  # another browser: the password is no longer enough
    password_step(other, ANN)
    other.wait_for_url("**/signin/verify")
    other.goto("/account/")
    other.wait_for_url(SIGNIN_PAGE)  # not signed in between the two steps
    password_step(other, ANN)
    other.wait_for_url("**/signin/verify")
    assert_accessible(other)
    # the next step's code: the one that confirmed the setup may be of this step, and no code works twice
    other.get_by_label("Code from your authenticator app").fill(code_after(secret, 30))
    other.get_by_role("button", name="Verify").click()
    other.wait_for_url("**/dashboard")
    assert page.errors == [] and other.errors == []


def test_a_recovery_code_signs_in_once_and_only_once(served: tuple[Flask, str], new_page: Any) -> None:
    app, _ = served
    client = app.test_client()
    signup(client, BOB)
    setup = post(client, "/account/two-factor/setup", {"password": PASSWORD}, page="/account/")
    shown = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', setup.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    secret = shown.replace(" ", "")
    done = post(client, "/account/two-factor/enable", {"code": code_after(secret, 0)}, page="/account/")
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10

    first = new_page()
    password_step(first, BOB)
    first.wait_for_url("**/signin/verify")
    first.get_by_text("Use a recovery code").click()  # opens the <details>
    first.get_by_label("Recovery code").fill(codes[0])
    first.get_by_role("button", name="Use this recovery code").click()
    first.wait_for_url("**/dashboard")
    first.goto("/account/")
    assert "9 unused recovery code(s) left" in first.locator("#two-factor").inner_text()

    second = new_page()
    password_step(second, BOB)
    second.wait_for_url("**/signin/verify")
    second.get_by_text("Use a recovery code").click()
    second.get_by_label("Recovery code").fill(codes[0])
    second.get_by_role("button", name="Use this recovery code").click()
    alert = second.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "That recovery code is not right, or was used already."
    assert second.url.endswith("/signin/verify")
    second.goto("/account/")
    second.wait_for_url(SIGNIN_PAGE)  # still not signed in
    assert first.errors == []
