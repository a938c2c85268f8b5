"""The layout on a 390 px phone and a 1280 px desktop (Playwright's device emulation in Chromium):
no page scrolls sideways, the navigation folds into a menu that needs no script and works from the
keyboard, tables turn into cards that name each value's column, long addresses wrap, and dark mode
follows the system's colour scheme through style.css's variables."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser.site import MODES, PAGES, Mode, Site

PHONE_LIGHT, PHONE_DARK, DESKTOP_LIGHT, DESKTOP_DARK = MODES
STYLE = Path(__file__).parents[3] / "web" / "static" / "style.css"
NAV_LINKS = ["Dashboard", "Aliases", "Destinations", "Domains", "Quarantine", "Account", "Admin"]
#: Every table with a header row, on the page that shows it with rows (name: page, table selector).
CARD_TABLES = {
    "destinations": "table.destinations",
    "contacts": "table.contacts",
    "domains": "table.domains",
    "tokens": "table.tokens",
    "dashboard": "table.activity",
    "alias-detail": "table.activity",
    "quarantine": "table.activity",
    "admin": "table.admin-totals",
    "aliases": "table.aliases",
    "account": "table.sessions",
}


def goto(context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode, name: str, signed_in: bool = True) -> Any:
    context = context_for(mode, signed_in)
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(site.pages(signed_in)[name])
    return page


def overflow(page: Any) -> list[str]:
    """The page's width past the screen, and the elements that stick out on the right."""
    return page.evaluate(
        """() => {
          const width = window.innerWidth, root = document.documentElement;
          const out = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 1 && e.getClientRects().length)
            .map(e => e.tagName + (e.className ? '.' + e.className : ''));
          return root.scrollWidth > width ? [`scrollWidth ${root.scrollWidth} > ${width}`, ...out.slice(0, 8)] : [];
        }"""
    )


@pytest.mark.parametrize(("name", "signed_in"), PAGES, ids=[name for name, _ in PAGES])
def test_no_page_scrolls_sideways_on_a_phone(
    context_for: Callable[[Mode, bool], Any], site: Site, name: str, signed_in: bool
) -> None:
    page = goto(context_for, site, PHONE_LIGHT, name, signed_in)
    assert page.evaluate("window.innerWidth") == 390
    assert overflow(page) == [], name
    if signed_in:  # the open menu stays on the screen too
        page.get_by_role("navigation", name="Main").locator("summary").click()
        assert overflow(page) == [], f"{name}, menu open"


def test_on_a_phone_the_navigation_is_a_menu_that_opens_from_the_keyboard(
    context_for: Callable[[Mode, bool], Any], site: Site
) -> None:
    page = goto(context_for, site, PHONE_LIGHT, "aliases")
    nav = page.get_by_role("navigation", name="Main")
    menu = nav.locator("summary")
    assert menu.is_visible() and menu.inner_text().strip() == "Menu"
    assert page.locator("script:not([src])").count() == 0  # no inline script opens it
    for label in NAV_LINKS:
        assert not nav.get_by_role("link", name=label).is_visible(), label
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # othermail
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    assert nav.locator("details").get_attribute("open") == ""
    for label in NAV_LINKS:
        link = nav.get_by_role("link", name=label)
        assert link.is_visible(), label
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
    assert nav.get_by_role("link", name="Aliases").get_attribute("aria-current") == "page"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Dashboard"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Destinations"
    page.keyboard.press("Enter")
    page.wait_for_url("**/destinations/")
    assert page.title() == "Destinations · othermail"
    assert not nav.get_by_role("link", name="Aliases").is_visible()  # a new page starts folded
    menu.press("Space")  # Space opens it as well
    assert nav.get_by_role("button", name="Sign out").is_visible()
    menu.press("Enter")  # and Enter folds it again
    assert not nav.get_by_role("button", name="Sign out").is_visible()


def test_on_a_desktop_the_navigation_links_show_without_a_menu(
    context_for: Callable[[Mode, bool], Any], site: Site
) -> None:
    page = goto(context_for, site, DESKTOP_LIGHT, "dashboard")
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.locator("summary").is_visible()
    boxes = [nav.get_by_role("link", name=label).bounding_box() for label in NAV_LINKS]
    assert all(box is not None and box["height"] > 0 for box in boxes)
    assert len({round(box["y"]) for box in boxes if box}) == 1  # one row, in the header
    assert nav.get_by_role("button", name="Sign out").is_visible()


def test_signed_out_the_two_links_show_on_a_phone_without_a_menu(
    context_for: Callable[[Mode, bool], Any], site: Site
) -> None:
    page = goto(context_for, site, PHONE_LIGHT, "welcome", signed_in=False)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.locator("summary").count() == 0
    assert nav.get_by_role("link", name="Sign in").is_visible()
    assert nav.get_by_role("link", name="Sign up").is_visible()


@pytest.mark.parametrize(("name", "selector"), CARD_TABLES.items(), ids=list(CARD_TABLES))
def test_on_a_phone_tables_become_labelled_cards_and_keep_their_headers_for_screen_readers(
    context_for: Callable[[Mode, bool], Any], site: Site, name: str, selector: str
) -> None:
    page = goto(context_for, site, PHONE_LIGHT, name)
    table = page.locator(selector).first
    cards = page.evaluate(
        """table => {
          const heads = [...table.querySelectorAll('thead th')]  // an action column's name is for screen readers only
            .map(th => th.querySelector('.visually-hidden') ? '' : th.textContent.trim());
          const head = table.querySelector('thead').getBoundingClientRect();
          const rows = [...table.querySelectorAll('tbody > tr')].map(tr => ({
            display: getComputedStyle(tr).display,
            width: tr.getBoundingClientRect().width,
            cells: [...tr.children].filter(td => !td.hasAttribute('colspan')).map((td, i) => ({
              column: heads[i], label: td.dataset.label ?? null, address: td.classList.contains('address'),
              shown: getComputedStyle(td, '::before').content,
            })),
          }));
          return {headHeight: head.height, rows};
        }""",
        table.element_handle(),
    )
    assert cards["headHeight"] <= 1  # the header row is hidden from view...
    assert table.get_by_role("columnheader").count() > 0  # ...but still there for screen readers
    assert table.get_by_role("cell").count() > 0
    assert cards["rows"], f"{name}: no rows to show"
    for row in cards["rows"]:
        assert row["display"] == "block" and 300 <= row["width"] <= 390, row
        for cell in row["cells"]:
            if cell["column"] and not (cell["address"] and cell["label"] is None):  # an address speaks for itself
                assert cell["label"] == cell["column"], cell  # each value names its column...
                assert cell["label"] in cell["shown"], cell  # ...on the screen


def test_on_a_desktop_tables_stay_tables(context_for: Callable[[Mode, bool], Any], site: Site) -> None:
    page = goto(context_for, site, DESKTOP_LIGHT, "destinations")
    table = page.locator("table.destinations")
    assert table.evaluate("t => getComputedStyle(t).display") == "table"
    assert table.locator("thead").bounding_box()["height"] > 10
    assert table.locator("tbody td").first.evaluate("td => getComputedStyle(td, '::before').content") == "none"


def test_a_long_address_wraps_inside_the_phone_screen(context_for: Callable[[Mode, bool], Any], site: Site) -> None:
    page = goto(context_for, site, PHONE_LIGHT, "alias-detail")
    heading = page.locator("h1.address")
    assert heading.inner_text().strip() == site.long_address and len(site.long_address) > 60
    box = heading.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    line = float(heading.evaluate("h => parseFloat(getComputedStyle(h).lineHeight) || 30"))
    assert box["height"] > 1.5 * line  # on more than one line


def test_forms_fit_the_phone_screen(context_for: Callable[[Mode, bool], Any], site: Site) -> None:
    for name in ("alias-new", "account", "tokens", "signup"):
        page = goto(context_for, site, PHONE_LIGHT, name, signed_in=name != "signup")
        for field in page.locator("main input:not([type=hidden]):visible, main select:visible, main textarea").all():
            box = field.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)


def rgb(value: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", value)[:3])


def luminance(value: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb(value))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("name", ["dashboard", "tokens", "aliases"])
def test_dark_mode_follows_the_system_colour_scheme(
    context_for: Callable[[Mode, bool], Any], site: Site, name: str
) -> None:
    colours = {}
    for mode in (DESKTOP_LIGHT, DESKTOP_DARK):
        page = goto(context_for, site, mode, name)
        colours[mode.color_scheme] = page.evaluate(
            """() => { const s = e => getComputedStyle(document.querySelector(e));
                       return [s('body').backgroundColor, s('body').color, s('header').backgroundColor,
                               s('main button, main .button').backgroundColor]; }"""
        )
    light, dark = colours["light"], colours["dark"]
    assert light[0] == "rgb(251, 251, 253)" and luminance(dark[0]) < 0.02  # a dark page...
    assert luminance(dark[1]) > 0.7  # ...with light text
    assert luminance(dark[2]) < 0.05 and light[2] == "rgb(255, 255, 255)"
    assert light[3] != dark[3]


def test_every_colour_in_the_stylesheet_is_a_variable() -> None:
    """Colours are written once, as variables in the :root blocks (light, then dark); the rules use them."""
    css = STYLE.read_text()
    colour = re.compile(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgb|rgba|hsl|hsla)\(")
    rules = re.sub(r":root\s*\{[^}]*\}", "", css)
    stray = [line.strip() for line in rules.splitlines() if colour.search(line)]
    assert stray == []
    light, dark = re.findall(r":root\s*\{([^}]*)\}", css)[:2]
    names = set(re.findall(r"--[\w-]+(?=:)", light))
    assert names and names == set(re.findall(r"--[\w-]+(?=:)", dark))  # the dark scheme sets each one
    assert "@media (prefers-color-scheme: dark)" in css
