"""The DATA screen (replies to reverse addresses) is asked only about mail to recipients it may
refuse: ordinary mail to an alias is spooled without a trip to a thread for it."""

from __future__ import annotations

import smtplib
from pathlib import Path

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.stores import MemoryStore
from forwarder.core.decide import Verdicts

ALIAS = "shop@othermail.example"
REVERSE = "abcdefghijklmnop@othermail.example"
RAW = b"From: Jane <jane@example.net>\r\nSubject: hi\r\n\r\nbody\r\n"


def test_the_screen_is_asked_only_when_every_recipient_is_one_it_screens(tmp_path: Path) -> None:
    asked: list[tuple[str, ...]] = []

    def screen(raw: bytes, verdicts: Verdicts | None, mail_from: str, recipients: tuple[str, ...]) -> str | None:
        asked.append(recipients)
        return "550 5.7.1 not from the owner"

    dispatched: list[str] = []
    handler = IngressHandler(
        ("othermail.example",),
        Spool(tmp_path / "spool", MemoryStore()),
        lambda address: address in (ALIAS, REVERSE),
        dispatched.append,
        screen=screen,
        screens=lambda address: address.startswith("abcdefghijklmnop@"),
    )
    listener = SmtpListener(handler, "127.0.0.1", 0, 100_000)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            assert client.sendmail("jane@example.net", [ALIAS], RAW) == {}  # not screened, spooled
            assert asked == [] and len(dispatched) == 1
            client.mail("jane@example.net")
            assert client.rcpt(REVERSE)[0] == 250
            assert client.data(RAW)[0] == 550  # screened and refused
            assert asked == [(REVERSE,)]
            client.rset()
            assert client.sendmail("jane@example.net", [REVERSE, ALIAS], RAW) == {}  # an alias too: not screened
            assert asked == [(REVERSE,)] and len(dispatched) == 2
    finally:
        listener.stop()
