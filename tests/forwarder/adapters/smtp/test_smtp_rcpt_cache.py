"""The RCPT check asks the directory once per address and KNOWN_CACHE_SECONDS, and only trusts "exists"."""

from __future__ import annotations

import smtplib
from pathlib import Path

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp import ingress as smtp_ingress
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.stores import MemoryStore


def test_found_addresses_are_remembered_for_a_while_unknown_ones_never(tmp_path: Path) -> None:
    asked: list[str] = []
    existing = {"shop@othermail.example"}

    def known(address: str) -> bool:
        asked.append(address)
        return address.lower() in existing

    clock = [1000.0]
    handler = IngressHandler(("othermail.example",), Spool(tmp_path / "spool", MemoryStore()), known, lambda _: None)
    handler._clock = lambda: clock[0]
    listener = SmtpListener(handler, "127.0.0.1", 0, 100_000)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            client.ehlo()
            client.mail("jane@example.net")
            assert client.rcpt("shop@othermail.example")[0] == 250
            assert client.rcpt("SHOP@othermail.example")[0] == 250  # remembered, case-insensitively
            assert client.rcpt("ghost@othermail.example")[0] == 550
            existing.add("ghost@othermail.example")  # created meanwhile: found at once
            assert client.rcpt("ghost@othermail.example")[0] == 250
            clock[0] += smtp_ingress.KNOWN_CACHE_SECONDS
            existing.clear()  # (aliases are never deleted; a catch-all may be switched off)
            assert client.rcpt("shop@othermail.example")[0] == 550  # asked again after the while
    finally:
        listener.stop()
    assert asked == [
        "shop@othermail.example",
        "ghost@othermail.example",
        "ghost@othermail.example",
        "shop@othermail.example",
    ]
