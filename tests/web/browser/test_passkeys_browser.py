"""Passkeys in real Chromium, with its virtual authenticator (the DevTools protocol's WebAuthn
domain): register a passkey on the account page, then sign in with it without a password.

WebAuthn refuses an IP address as the relying party, so this app's public address is
http://localhost:PORT (Chromium treats http://localhost as a secure context) and the browser
opens the site there; the live server still listens on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.web.browser.live_server import live_server
from tests.web.browser.site import build_app
from tests.web.conftest import PASSWORD, signup

axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright", reason="needs axe-playwright-python")

USER = "pat@example.org"
#: Signs in with a password and a security key as the second step.
SECOND = "sam@example.org"
PLATFORM = {"transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True}
#: An older USB security key: no discoverable credentials, no user verification (presence only).
USB_KEY = {"transport": "usb", "hasResidentKey": False, "hasUserVerification": False}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    app = build_app(tmp_path_factory.mktemp("passkeys"))
    try:
        with live_server(app) as base:
            local = base.replace("127.0.0.1", "localhost")
            app.config["PUBLIC_URL"] = local  # the relying party: localhost
            signup(app.test_client(), USER)
            signup(app.test_client(), SECOND)
            yield app, local
    finally:
        app.extensions["othermail.engine"].dispose()


class Browser:
    """A page with a virtual authenticator (a platform one, with resident keys and user
    verification, as a phone's or laptop's) and what the page complained about."""

    def __init__(self, chromium: Any, base: str, authenticator: dict[str, Any] = PLATFORM) -> None:
        self.context = chromium.new_context(base_url=base)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.added = ""  # the status line of the recovery codes page the first passkey led to
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        options = {"protocol": "ctap2", **authenticator}
        self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})["credentials"]

    def sign_in_with_password(self, email: str = USER, then: str = "**/dashboard") -> None:
        page = self.page
        page.goto("/signin")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(then)

    def add_passkey(self, name: str, check: bool = False) -> None:
        page = self.page
        page.goto("/account/")
        form = page.locator("#add-passkey")
        form.get_by_label("Name of the new passkey").fill(name)
        form.get_by_label("Your password").fill(PASSWORD)
        form.get_by_role("button", name="Add a passkey").click()
        create = page.get_by_role("button", name="Create the passkey")
        create.wait_for()
        if check:
            check_page(page, "add-passkey")
        create.click()
        page.wait_for_url(lambda url: urlsplit(url).path in ("/account/", "/account/passkeys/recovery-codes"))
        if urlsplit(page.url).path != "/account/":  # the first second factor: its recovery codes, once
            self.added = page.get_by_role("status").first.inner_text()
            assert page.locator("#recovery-codes li").count() == 10
            page.get_by_role("link", name="I have saved them").click()
            page.wait_for_url("**/account/")
        else:
            self.added = ""

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser(chromium: Any, served: tuple[Flask, str]) -> Iterator[Browser]:
    opened = Browser(chromium, served[1])
    yield opened
    opened.close()


def check_page(page: Any, name: str) -> None:
    """No serious or critical axe finding, at desktop width and on a 390 px phone, where nothing
    scrolls sideways (tests/web/browser/test_accessibility.py checks the other pages so)."""
    size = page.viewport_size
    try:
        for width, height in ((1280, 800), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            found = axe_sync.Axe().run(page).response["violations"]
            serious = [f"{v['impact']} {v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]
            assert serious == [], f"{name} at {width} px: {serious}"
            assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls at {width} px"
    finally:
        page.set_viewport_size(size)


def passkey_rows(page: Any) -> Any:
    return page.locator("#passkeys table tbody tr")


def test_register_a_passkey_then_sign_in_with_it_and_no_password(browser: Browser) -> None:
    page = browser.page
    browser.sign_in_with_password()
    browser.add_passkey("Virtual laptop", check=True)
    assert browser.added == "Passkey “Virtual laptop” added: two-factor sign-in is on. Other sessions were signed out."
    row = passkey_rows(page).filter(has_text="Virtual laptop")
    assert row.count() == 1 and "never" in row.inner_text()
    check_page(page, "account with a passkey")
    stored = browser.credentials()
    assert len(stored) == 1 and stored[0]["isResidentCredential"] and stored[0]["rpId"] == "localhost"

    browser.context.clear_cookies()  # signed out, the passkey still on the authenticator
    page.goto("/signin")
    check_page(page, "sign-in with the passkey button")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/dashboard")
    page.goto("/account/")
    row = passkey_rows(page).filter(has_text="Virtual laptop")
    assert "never" not in row.inner_text() and "UTC" in row.inner_text()
    assert browser.credentials()[0]["signCount"] >= 1

    row.get_by_role("link", name="Remove Virtual laptop").click()
    check_page(page, "remove a passkey")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Remove the passkey").click()
    page.wait_for_url("**/account/")
    assert page.get_by_text("Passkey “Virtual laptop” removed.").is_visible()
    assert passkey_rows(page).count() == 0
    assert browser.errors == []


def test_a_passkey_this_site_does_not_know_is_refused_on_the_page(browser: Browser, served: tuple[Flask, str]) -> None:
    page = browser.page
    browser.cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": browser.authenticator,
            "credential": {
                "credentialId": "AAECAwQFBgcICQoLDA0ODw==",
                "isResidentCredential": True,
                "rpId": "localhost",
                "privateKey": _pkcs8_p256(),
                "userHandle": "dW5rbm93bg==",
                "signCount": 0,
            },
        },
    )
    page.goto("/signin")
    page.get_by_role("button", name="Sign in with a passkey").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "That passkey was not accepted."
    assert page.url.endswith("/signin")
    # the refusal is an answer the page shows (a 403), not a script error
    assert [e for e in browser.errors if "403" not in e] == []


def test_a_security_key_as_the_second_step_after_the_password(chromium: Any, served: tuple[Flask, str]) -> None:
    browser = Browser(chromium, served[1], USB_KEY)
    try:
        page = browser.page
        browser.sign_in_with_password(SECOND)
        browser.add_passkey("USB key")
        assert passkey_rows(page).filter(has_text="USB key").count() == 1
        assert [c["isResidentCredential"] for c in browser.credentials()] == [False]

        browser.context.clear_cookies()
        browser.sign_in_with_password(SECOND, then="**/signin/verify")  # the password alone is not enough
        page.goto("/account/")
        assert urlsplit(page.url).path == "/signin"
        browser.sign_in_with_password(SECOND, then="**/signin/verify")
        check_page(page, "second step with the passkey button")
        page.get_by_role("button", name="Use a passkey").click()
        page.wait_for_url("**/dashboard")
        page.goto("/account/")
        assert "never" not in passkey_rows(page).filter(has_text="USB key").inner_text()
        assert browser.errors == []
    finally:
        browser.close()


def _pkcs8_p256() -> str:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der).decode()
