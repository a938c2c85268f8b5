"""SmtpSender quotes an envelope address once, not at every message: smtplib's quoteaddr runs the
email package's address parser on MAIL FROM and RCPT TO of every message (a reverse address of a
two-way alias costs ~20 us to parse, the destination ~6 us), in the forwarding workers (issue
15.6). What the relay receives is unchanged."""

from __future__ import annotations

import smtplib

import pytest

from forwarder.adapters.smtp import sender as sender_module
from forwarder.adapters.smtp.sender import SmtpSender
from tests.forwarder.adapters.smtp.smtp_sink import SmtpSink

RAW = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
REVERSE = "sender_at_example.net_0f1e2d3c@othermail.example"


def test_each_address_is_parsed_once_and_the_relay_gets_the_same_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    sender_module.quoted_address.cache_clear()
    parsed: list[str] = []
    real = smtplib.quoteaddr

    def counting(address: str) -> str:
        parsed.append(address)
        return real(address)

    monkeypatch.setattr(smtplib, "quoteaddr", counting)
    with SmtpSink(tls="none") as sink, SmtpSender(sink.host, sink.port, "none", timeout=10) as relay:
        for _ in range(5):
            relay.send(RAW, sender=REVERSE, recipient="me@real.example")
        relay.send(RAW, sender="", recipient="you@real.example")  # a null sender: MAIL FROM:<>
        relay.send(RAW, sender="Name <odd@real.example>", recipient="me@real.example")
        assert [(d.mail_from, d.rcpt_tos) for d in sink.deliveries] == [
            *[(REVERSE, ("me@real.example",))] * 5,
            ("<>", ("you@real.example",)),  # as the sink records a null sender
            ("odd@real.example", ("me@real.example",)),
        ]
    assert sorted(parsed) == sorted([REVERSE, "me@real.example", "", "you@real.example", "Name <odd@real.example>"])


@pytest.mark.parametrize(
    "address", ["me@real.example", "", "<me@real.example>", "Name <me@real.example>", "a b@c", "\u00e9@real.example"]
)
def test_quoted_address_is_smtplib_s(address: str) -> None:
    assert sender_module.quoted_address(address) == smtplib.quoteaddr(address)
