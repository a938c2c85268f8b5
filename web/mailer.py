"""Mail the service itself sends (verification links, password resets), through the same
outbound sender port as forwarding: the local outbox, an SMTP relay or SES."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

from flask import current_app

from forwarder.core.addresses import is_valid_address
from forwarder.outbound import build_sender
from forwarder.senders import Sender


def service_sender() -> Sender:
    """The outbound sender the app uses (built once from the settings; tests put their own in
    ``app.extensions["othermail.sender"]``)."""
    return _sender()


def _sender() -> Sender:
    sender = current_app.extensions.get("othermail.sender")
    if sender is None:
        sender = build_sender(current_app.config["SETTINGS"])
        current_app.extensions["othermail.sender"] = sender
    return sender


def is_mailable(address: str) -> bool:
    """Whether ``address`` may go into a header and an envelope: a valid addr-spec of printable
    7-bit characters. ``is_valid_address`` alone takes a quoted local part holding a CR (as a
    quoted-pair), a NUL, another control character or 8-bit text."""
    return address.isascii() and address.isprintable() and is_valid_address(address)


def service_address() -> str:
    return f"noreply@{current_app.config['SETTINGS'].domains[0]}"


def send_mail(to: str, subject: str, text: str) -> None:
    """Send a plain-text message from the service's no-reply address."""
    if not is_mailable(to):
        raise ValueError(f"refusing to mail an address that is not printable 7-bit: {to!r}")
    message = EmailMessage()
    message["From"] = email.utils.formataddr(("othermail", service_address()))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=service_address().rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    _sender().send(message.as_bytes(), sender=service_address(), recipient=to)
