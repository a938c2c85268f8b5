"""axe-core (through axe-playwright-python) on every page, signed out and signed in, on a 390 px
phone and a 1280 px desktop, in light and dark colour schemes: no serious or critical violation.
Each page's screenshot is written at each size and scheme, and must be a real PNG.

Also what axe does not check by itself: a skip link to the main content that moves focus there,
the header / navigation / main landmarks, a page title, and a visible focus outline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.site import MODES, PAGES, PNG_MAGIC, Mode, Site

axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright", reason="needs axe-playwright-python")

BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def axe() -> Any:
    return axe_sync.Axe()


def open_page(context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode, name: str, signed_in: bool) -> Any:
    context = context_for(mode, signed_in)
    page = context.pages[0] if context.pages else context.new_page()
    path = site.pages(signed_in)[name]
    response = page.goto(path)
    assert response is not None
    expected = 404 if name.startswith("not-found") else 200
    assert response.status == expected, f"{path}: {response.status}"
    return page


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']} at {targets}")
    return "\n".join(lines)


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
@pytest.mark.parametrize(("name", "signed_in"), PAGES, ids=[name for name, _ in PAGES])
def test_no_serious_axe_violation_and_a_screenshot(
    context_for: Callable[[Mode, bool], Any],
    site: Site,
    axe: Any,
    screenshots: Path,
    mode: Mode,
    name: str,
    signed_in: bool,
) -> None:
    page = open_page(context_for, site, mode, name, signed_in)
    results = axe.run(page)
    violations = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
    assert violations == [], f"{name} ({mode.name}):\n{describe(violations)}"
    shot = screenshots / f"{name}-{mode.name}.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000, f"{shot} is not a real PNG"
    width = int.from_bytes(data[16:20], "big")  # the IHDR chunk: the image is as wide as the screen
    assert width == mode.context["viewport"]["width"] * mode.context["device_scale_factor"]


@pytest.mark.parametrize(("name", "signed_in"), PAGES, ids=[name for name, _ in PAGES])
def test_landmarks_title_and_language(
    context_for: Callable[[Mode, bool], Any], site: Site, name: str, signed_in: bool
) -> None:
    page = open_page(context_for, site, MODES[0], name, signed_in)
    assert page.evaluate("document.documentElement.lang") == "en"
    title = page.title()
    assert title.endswith(" · othermail") and len(title) > len(" · othermail"), title
    assert page.get_by_role("banner").count() == 1
    assert page.get_by_role("navigation", name="Main").count() == 1
    assert page.get_by_role("main").count() == 1
    assert page.locator("main h1").count() == 1


@pytest.mark.parametrize("mode", [MODES[0], MODES[2]], ids=["phone", "desktop"])
def test_the_skip_link_is_the_first_stop_and_moves_focus_to_the_main_content(
    context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode
) -> None:
    page = open_page(context_for, site, mode, "dashboard", True)
    skip = page.get_by_role("link", name="Skip to main content")
    assert skip.bounding_box() is None or skip.bounding_box()["width"] <= 1  # hidden until focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    box = skip.bounding_box()
    assert box is not None and box["width"] > 50 and box["y"] >= 0  # shown once focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.tagName") == "MAIN"
    page.keyboard.press("Tab")  # the next stop is inside the main content, past the navigation
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")


@pytest.mark.parametrize("mode", [MODES[0], MODES[3]], ids=["phone-light", "desktop-dark"])
def test_keyboard_focus_is_visible_on_links_buttons_and_fields(
    context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode
) -> None:
    page = open_page(context_for, site, mode, "tokens", True)
    seen: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement, s = getComputedStyle(e);
                       return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        tag, style, width = focused
        if tag == "BODY":
            continue
        assert style != "none" and width >= 2, f"no visible focus on a {tag}: {focused}"
        seen.add(tag)
    assert {"A", "BUTTON", "INPUT", "SELECT"} <= seen, seen


def test_every_field_has_a_label(context_for: Callable[[Mode, bool], Any], site: Site) -> None:
    """axe checks labels too; this names every field without an accessible name, on every page."""
    unlabelled: list[str] = []
    for name, signed_in in PAGES:
        page = open_page(context_for, site, MODES[2], name, signed_in)
        for field in page.locator("input:not([type=hidden]), select, textarea").all():
            label = field.evaluate(
                """e => (e.labels && e.labels.length ? [...e.labels].map(l => l.textContent).join(' ') : '')
                        + (e.getAttribute('aria-label') || '')
                        + (e.getAttribute('aria-labelledby') ? 'x' : '')"""
            )
            if not label.strip():
                unlabelled.append(f"{name}: {field.evaluate('e => e.outerHTML')[:120]}")
    assert unlabelled == []


def test_the_scan_covers_every_page_the_site_fixture_names(site: Site) -> None:
    assert sorted(site.pages(False)) == sorted(name for name, signed_in in PAGES if not signed_in)
    assert sorted(site.pages(True)) == sorted(name for name, signed_in in PAGES if signed_in)
