"""The objects made per message with ``frozen.slot_setters`` behave as the dataclasses they were:
built by position or keyword with the same defaults, equal by value, hashable, and frozen."""

from __future__ import annotations

import dataclasses

import pytest

from forwarder.core.addresses import Mailbox
from forwarder.core.decide import MessageFacts
from forwarder.core.forward import Outgoing, Prepared, Result, prepare
from forwarder.core.headers import Origin
from forwarder.core.outcomes import Decision, Outcome

RAW = b"From: Jane <jane@example.net>\r\nTo: a@othermail.example\r\n\r\nHi\r\n"


def test_built_by_position_or_keyword_with_the_same_defaults() -> None:
    sender = Mailbox("Jane", "jane@example.net")
    assert Origin(sender, True, None, None) == Origin(
        sender=sender, reply_to_valid=True, charset=None, message_id=None, from_text=""
    )
    split = prepare(RAW).split
    origin = Origin(sender, True, None, None)
    assert Prepared(split, origin, MessageFacts()).envelope_from is None
    decision = Decision(Outcome.FORWARDED, "forwarded")
    assert Result(decision) == Result(decision=decision, outgoing=None, repairs=())
    assert Outgoing(b"A: 1\r\n\r\n", b"x") == Outgoing(head=b"A: 1\r\n\r\n", body=b"x")
    assert dataclasses.replace(origin, charset="utf-8").charset == "utf-8"
    assert [f.name for f in dataclasses.fields(Result)] == ["decision", "outgoing", "repairs"]


def test_frozen_and_hashable() -> None:
    decision = Decision(Outcome.FORWARDED, "forwarded")
    objects = [
        Origin(None, False, "utf-8", b"<a@b>", "x"),
        Prepared(prepare(RAW).split, Origin(None, False, None, None), MessageFacts(), "a@b"),
        Outgoing(b"A: 1\r\n\r\n", b"x"),
        Result(decision, Outgoing(b"A: 1\r\n\r\n", b"x"), ("r",)),
    ]
    for obj in objects:
        field = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert hash(Origin(None, False, None, None)) == hash(Origin(None, False, None, None))
    assert hash(Result(decision)) == hash(Result(decision))
    assert repr(Outgoing(b"h", b"b")) == "Outgoing(head=b'h', body=b'b')"
