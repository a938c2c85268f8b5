"""One-click unsubscribe tokens name their alias and contact and cannot be forged or altered."""

from __future__ import annotations

import pytest

from forwarder.flows.unsubscribe import sign, verify

OLD, NEW = b"o" * 32, b"n" * 32


def test_a_token_reads_back_under_its_key_and_an_older_listed_one() -> None:
    assert verify([NEW], sign(NEW, 12, 34)) == (12, 34)
    assert verify([NEW, OLD], sign(OLD, 12, 34)) == (12, 34)  # mail sent before a key rotation


@pytest.mark.parametrize(
    "token",
    [
        "",
        "12.34",
        "12.34.x.y",
        "a.34.mac",
        "12.-4.mac",
        "1" * 19 + ".1.mac",
        sign(OLD, 12, 34),
        # not ASCII (an SMTPUTF8 unsubscribe+... address, a /u/ link): refused, not TypeError/ValueError
        "12.34.é" + "0" * 31,
        "²2.34.mac",
        "١٢.34.mac",
    ],
)
def test_anything_else_is_refused(token: str) -> None:
    assert verify([NEW], token) is None


def test_changing_the_alias_or_the_contact_breaks_the_mac() -> None:
    alias, contact, mac = sign(NEW, 12, 34).split(".")
    assert verify([NEW], f"13.{contact}.{mac}") is None
    assert verify([NEW], f"{alias}.35.{mac}") is None
