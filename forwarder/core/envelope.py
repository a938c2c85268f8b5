"""What SES left in a stored message about its delivery, for ingresses that get no SES event.

An S3 ``ObjectCreated`` event names only the object. SES stores the message with a ``Received``
line of its own (``... by inbound-smtp.<region>.amazonaws.com ... for <recipient>;``) and its
verdicts in ``X-SES-Spam-Verdict`` / ``X-SES-Virus-Verdict``; this module reads them back. The
recipients are the addresses on the service's domains found in that ``Received`` line and in
To, Cc, Delivered-To and X-Original-To: a blind copy to a second alias that SES's line does not
name cannot be recovered from the message, which is why the SES event is the preferred trigger.
"""

from __future__ import annotations

import re

from forwarder.core.addresses import parse_address_list
from forwarder.core.decide import Verdicts
from forwarder.core.message import SplitMessage

_FOR = re.compile(rb"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?", re.I)
_RECIPIENT_FIELDS = ("to", "cc", "delivered-to", "x-original-to")


def recipients_from_headers(msg: SplitMessage, domains: tuple[str, ...]) -> tuple[str, ...]:
    wanted = {d.lower() for d in domains}
    found: dict[str, None] = {}

    def keep(address: str) -> None:
        address = address.strip().lower()
        if address.rpartition("@")[2] in wanted:
            found.setdefault(address, None)

    for f in msg.get_all("received")[:3]:
        for match in _FOR.finditer(f.value):
            keep(match.group(1).decode("ascii", "replace"))
    for key in _RECIPIENT_FIELDS:
        for f in msg.get_all(key):
            for box in parse_address_list(f.value.decode("utf-8", "replace")):
                keep(box.address)
    return tuple(found)


def verdicts_from_headers(msg: SplitMessage) -> Verdicts:
    def status(key: str) -> str:
        f = msg.first(key)
        return f.value.decode("ascii", "replace").strip().upper() if f is not None else "PASS"

    return Verdicts(spam=status("x-ses-spam-verdict"), virus=status("x-ses-virus-verdict"))
