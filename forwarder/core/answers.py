"""Which messages a bounce or an auto-reply answers: the Message-IDs it names.

A two-way alias sends mail (replies, first messages), so a bounce or an auto-reply to it may
answer one of those; the reply flow links each copy's ids (forwarder/flows/reply.py), and the
ids found here are looked up among them. An auto-reply names the message it answers in
In-Reply-To and References (RFC 3834 section 3.1.5). A delivery status notification (RFC 3464,
RFC 6533) carries the returned message, or its header block, as a ``message/rfc822``,
``message/global``, ``text/rfc822-headers`` or ``message/global-headers`` part, whose
Message-ID names it; only the first such part is read, and only the first :data:`SCAN_BYTES` of
the body, so a large report costs little. At most :data:`MAX_IDS` ids are returned (In-Reply-To's
first, then the newest of References): anyone can send a References field of a megabyte, and each
id costs a look-up parameter.
"""

from __future__ import annotations

import re

from forwarder.core.fields import MSG_ID
from forwarder.core.message import SplitMessage

#: How much of a report's body is searched for the returned message's Message-ID.
SCAN_BYTES = 256 * 1024
#: The most ids a message is looked up by (a thread's answer names its parent first and last).
MAX_IDS = 20
_RETURNED = re.compile(
    rb"content-type:[ \t]*(?:message/rfc822|message/global|text/rfc822-headers|message/global-headers)",
    re.IGNORECASE,
)
_RETURNED_ID = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^\r\n]{1,250}>)", re.IGNORECASE | re.MULTILINE)


def answered_ids(message: SplitMessage, is_bounce: bool) -> list[str]:
    """The Message-IDs (``<x@y>``, once each, in order) ``message`` answers."""
    parents = [i for f in message.get_all("in-reply-to") for i in MSG_ID.findall(f.value)][:MAX_IDS]
    thread = [i for f in message.get_all("references") for i in MSG_ID.findall(f.value)]
    found = parents + thread[::-1][: MAX_IDS - len(parents)]
    if is_bounce:  # a report, or mail from the null sender
        body = bytes(message.body[:SCAN_BYTES])
        part = _RETURNED.search(body)
        if part is not None:
            returned = _RETURNED_ID.search(body, part.end())
            if returned is not None:
                found = MSG_ID.findall(returned.group(1))[:1] + found[: MAX_IDS - 1]
    return list(dict.fromkeys(i.decode("ascii") for i in found))
