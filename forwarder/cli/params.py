"""Option types the commands share, so each value is checked once, where it is read, and a wrong
one is a usage error naming the option."""

from __future__ import annotations

from typing import Any

import click

from forwarder.accounts import accepted_address


class EmailAddress(click.ParamType):
    """An address the web app would take too (:func:`forwarder.accounts.accepted_address`: no
    quoted local part, whitespace, backslash, stray @ or empty domain label), stripped; its case is
    kept (the commands normalize it as they store or look it up)."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        address = str(value).strip()
        if accepted_address(address) is None:
            self.fail(f"{value!r} is not an email address (local@domain)", param, ctx)
        return address


ADDRESS = EmailAddress()
