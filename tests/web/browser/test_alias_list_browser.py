"""The alias list's copy buttons and bulk actions in real Chromium (issue 16): an address copied to
the clipboard (read back), with the Clipboard API and with its fallback; a reverse address copied
from the contacts page; select all on this page; a bulk disable through its confirmation page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from models import Alias, utcnow
from tests.support.factories import user_id, web_session
from tests.web.browser.site import MODES, Site

DESKTOP = next(mode for mode in MODES if mode.name == "desktop-light")
BULK_NAMES = ("bulk-a", "bulk-b", "bulk-c")
#: Pages served over plain HTTP from another host have no navigator.clipboard: the fallback's case.
NO_CLIPBOARD_API = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"


@pytest.fixture(scope="module")
def bulk_ids(site: Site) -> dict[str, int]:
    """Three more aliases of the site's account, for the bulk test."""
    owner = user_id(site.app, site.email)
    with site.app.app_context():
        db = web_session(site.app)
        rows = {
            name: Alias(address=f"{name}@othermail.example", user_id=owner, created_at=utcnow()) for name in BULK_NAMES
        }
        db.add_all(rows.values())
        db.commit()
        return {name: row.id for name, row in rows.items()}


@pytest.fixture(scope="module")
def context(context_for: Callable[[Any, bool], Any], site: Site) -> Any:
    signed_in = context_for(DESKTOP, True)
    signed_in.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    return signed_in


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    opened.close()
    assert errors == []


def serious_axe_findings(page: Any) -> list[str]:
    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    found = axe.run(page).response["violations"]
    return [f"{v['impact']} {v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def clipboard(page: Any) -> str:
    return str(page.evaluate("navigator.clipboard.readText()"))


def alias_address(site: Site, key: str) -> str:
    with site.app.app_context():
        found = web_session(site.app).get(Alias, site.ids[key])
        assert found is not None
        return found.address


def test_the_copy_button_puts_the_address_on_the_clipboard(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    address = alias_address(site, "alias")
    page.goto(f"/aliases/{site.ids['alias']}")
    page.evaluate("navigator.clipboard.writeText('nothing yet')")
    button = page.get_by_role("button", name=f"Copy {address}")
    expect(button).to_be_visible()
    button.click()
    expect(button).to_have_text("Copied")
    expect(page.locator("[data-copy-status]")).to_have_text(f"Copied {address}")
    assert clipboard(page) == address
    expect(button).to_have_text("Copy")  # back to its label after a moment

    # on the list, by keyboard
    page.goto("/aliases/")
    page.evaluate("navigator.clipboard.writeText('nothing yet')")
    long_address = alias_address(site, "long_alias")
    row_button = page.get_by_role("button", name=f"Copy {long_address}")
    row_button.focus()
    page.keyboard.press("Enter")
    expect(row_button).to_have_text("Copied")
    assert clipboard(page) == long_address


def test_a_reverse_address_is_copied_from_the_contacts_page(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"/aliases/{site.ids['alias']}/contacts")
    reverse = page.get_by_label("Reverse address of bob@example.net", exact=True).input_value()
    assert "@" in reverse
    page.evaluate("navigator.clipboard.writeText('nothing yet')")
    button = page.get_by_role("button", name="Copy the reverse address of bob@example.net")
    button.click()
    expect(button).to_have_text("Copied")
    expect(page.locator("[data-copy-status]")).to_have_text(f"Copied {reverse}")
    assert clipboard(page) == reverse


def test_without_the_clipboard_api_the_text_is_selected_and_copied(site: Site, context: Any) -> None:
    from playwright.sync_api import expect

    address = alias_address(site, "alias")
    reader = context.new_page()
    reader.goto("/aliases/")
    reader.evaluate("navigator.clipboard.writeText('nothing yet')")
    plain = context.new_page()
    plain.add_init_script(NO_CLIPBOARD_API)
    try:
        plain.goto(f"/aliases/{site.ids['alias']}")
        assert plain.evaluate("navigator.clipboard === undefined")
        button = plain.get_by_role("button", name=f"Copy {address}")
        button.click()
        expect(button).to_have_text("Copied")  # document.execCommand("copy") of the selection
        expect(plain.locator("[data-copy-status]")).to_have_text(f"Copied {address}")
        assert plain.evaluate("window.getSelection().toString()") == address  # the heading's text
        assert clipboard(reader) == address
    finally:
        plain.close()
        reader.close()


def test_select_all_on_this_page_ticks_every_box_in_place(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/aliases/")
    boxes = page.locator("input[type=checkbox][name=alias]")
    assert boxes.count() >= 2
    url = page.url
    page.get_by_role("button", name="Select all on this page").click()
    for n in range(boxes.count()):
        expect(boxes.nth(n)).to_be_checked()
    assert page.url == url  # ticked by the script, no reload
    page.get_by_role("button", name="Select none").click()
    for n in range(boxes.count()):
        expect(boxes.nth(n)).not_to_be_checked()


def test_bulk_disable_with_its_confirmation(site: Site, page: Any, bulk_ids: dict[str, int]) -> None:
    from playwright.sync_api import expect

    page.goto("/aliases/?q=bulk-&sort=address&order=asc")
    expect(page.locator("table.aliases tbody tr")).to_have_count(3)
    for name in ("bulk-a", "bulk-c"):
        page.get_by_label(f"Choose {name}@othermail.example").check()
    page.get_by_role("button", name="Disable…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Disable 2 aliases?")
    assert serious_axe_findings(page) == []  # the confirmation page is no page of the site's list
    expect(page.locator(".bulk-list li")).to_have_text(["bulk-a@othermail.example", "bulk-c@othermail.example"])
    with site.app.app_context():  # asking changed nothing
        db = web_session(site.app)
        assert all(db.scalars(select(Alias.enabled).where(Alias.id.in_(bulk_ids.values()))))
    page.get_by_role("button", name="Disable 2 aliases").click()
    expect(page.locator(".flash")).to_have_text("2 aliases disabled.")
    assert page.url.endswith("/aliases/?q=bulk-&sort=address")  # the list it came from (asc: the default)
    states = page.locator("table.aliases tbody tr .tag")
    expect(states).to_have_text(["disabled", "active", "disabled"])
    with site.app.app_context():
        db = web_session(site.app)
        db.expire_all()
        enabled = dict(db.execute(select(Alias.address, Alias.enabled).where(Alias.id.in_(bulk_ids.values()))).all())
    assert enabled == {
        "bulk-a@othermail.example": False,
        "bulk-b@othermail.example": True,
        "bulk-c@othermail.example": False,
    }
