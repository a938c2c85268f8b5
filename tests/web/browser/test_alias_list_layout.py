"""The alias list's search box and bulk bar on a 390 px phone and a 1280 px desktop: the search
field's placeholder fits inside it (the full description is a visible hint tied to the field), and on
a phone the bulk bar's words sit above its three buttons, which share one row."""

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


def test_on_a_phone_the_bulk_buttons_share_one_row_under_their_label(
    context_for: Callable[[Mode, bool], Any], site: Site
) -> None:
    page = aliases_page(context_for, site, PHONE)
    bar = page.locator(".bulk-actions")
    label = bar.get_by_text("With the chosen aliases").bounding_box()
    buttons = [button.bounding_box() for button in bar.locator("button").all()]
    assert len(buttons) == 3 and label is not None and all(buttons)
    assert len({round(box["y"]) for box in buttons}) == 1, buttons  # one row
    assert label["y"] + label["height"] <= buttons[0]["y"], (label, buttons[0])  # the words above
    assert buttons[-1]["x"] + buttons[-1]["width"] <= 390
