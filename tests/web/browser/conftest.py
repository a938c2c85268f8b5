"""Fixtures shared by the browser test modules: one Chromium and one populated, served othermail
per module (tests/web/browser/site.py), signed-in browser contexts for each screen size and colour
scheme, and the directory screenshots go to."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.live_server import CHROMIUM, CHROMIUM_ARGS
from tests.web.browser.site import Mode, Site, serve_populated


def _playwright() -> Any:
    if not Path(CHROMIUM).exists():
        missing = f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure, never a skip
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright in the venv")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    sync_api = _playwright()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The populated app, served on 127.0.0.1 for the whole module."""
    with serve_populated(tmp_path_factory.mktemp("site")) as served:
        yield served


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $OTHERMAIL_SCREENSHOTS when set (to keep them), else a temporary directory."""
    chosen = os.environ.get("OTHERMAIL_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def context_for(chromium: Any, site: Site) -> Iterator[Callable[[Mode, bool], Any]]:
    """``context_for(mode, signed_in)``: a browser context at that size and colour scheme, made once
    per module; signed-in ones share one sign-in (its cookies are copied, not signed in again)."""
    contexts: dict[tuple[str, bool], Any] = {}
    state: dict[str, Any] = {}

    def make(mode: Mode, signed_in: bool) -> Any:
        key = (mode.name, signed_in)
        if key not in contexts:
            if signed_in and "cookies" not in state:
                state["cookies"] = sign_in(chromium, site)
            context = chromium.new_context(base_url=site.base, color_scheme=mode.color_scheme, **mode.context)
            context.set_default_timeout(10_000)
            if signed_in:
                context.add_cookies(state["cookies"])
            contexts[key] = context
        return contexts[key]

    yield make
    for context in contexts.values():
        context.close()


def sign_in(chromium: Any, site: Site) -> list[Any]:
    """Sign in through the form once; the session cookies."""
    context = chromium.new_context(base_url=site.base)
    try:
        page = context.new_page()
        page.goto("/signin")
        page.get_by_label("Email").fill(site.email)
        page.get_by_label("Password").fill(site.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/dashboard")
        return context.cookies()
    finally:
        context.close()
