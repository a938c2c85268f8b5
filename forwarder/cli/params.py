"""Option types the commands share, so each value is checked once, where it is read, and a wrong
one is a usage error naming the option."""

from __future__ import annotations

from typing import Any

import click

from forwarder.core.addresses import is_valid_address


class EmailAddress(click.ParamType):
    """An addr-spec (``local@domain``) of printable 7-bit characters, stripped; its case is kept
    (the commands normalize it as they store or look it up)."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        address = str(value).strip()
        if not (address.isascii() and address.isprintable() and is_valid_address(address)):
            self.fail(f"{value!r} is not an email address (local@domain)", param, ctx)
        return address


ADDRESS = EmailAddress()
