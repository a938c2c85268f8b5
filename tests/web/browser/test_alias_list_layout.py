"""The alias list's search box and bulk bar on a 390 px phone and a 1280 px desktop: the search
field's placeholder fits inside it (the full description is a visible hint tied to the field)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.web.browser.site import MODES, Mode, Site

PHONE = next(mode for mode in MODES if mode.name == "phone-light")
DESKTOP = next(mode for mode in MODES if mode.name == "desktop-dark")


def aliases_page(context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode) -> Any:
    context = context_for(mode, True)
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(site.pages(True)["aliases"])
    return page


@pytest.mark.parametrize("mode", [PHONE, DESKTOP], ids=lambda mode: mode.name)
def test_the_search_placeholder_fits_and_the_hint_describes_the_field(
    context_for: Callable[[Mode, bool], Any], site: Site, mode: Mode
) -> None:
    page = aliases_page(context_for, site, mode)
    field = page.get_by_label("Search")
    room, text = field.evaluate(
        """f => {
          const s = getComputedStyle(f), ctx = document.createElement('canvas').getContext('2d');
          ctx.font = `${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
          const inner = f.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
          return [inner, ctx.measureText(f.placeholder).width];
        }"""
    )
    assert text <= room, (mode.name, text, room)
    hint = page.locator("#" + str(field.get_attribute("aria-describedby")))
    assert hint.is_visible() and "address, label, note or destination" in hint.inner_text().lower()
    box = field.bounding_box()
    assert box is not None and box["width"] >= 200 and box["x"] + box["width"] <= page.evaluate("innerWidth")
