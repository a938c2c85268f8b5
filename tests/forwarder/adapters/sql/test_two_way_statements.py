"""What a two-way forward costs the database over a one-way forward (issue 15), counted with
SQLAlchemy events on every backend so that it cannot grow back unnoticed: the same message, from a
sender whose contacts exist (steady state), forwarded by the same alias once with two-way forwarding
(the default) and once without, on one engine. ``pytest -s`` prints the counts; bench/two_way.py
prints them next to the time each path takes.

The two-way extra today: ``ContactBook.prepare_forward``'s one read (the alias, the sender modes, the
participants' contacts and the sender rules) in one transaction of its own; the contacts' counters,
updated by the message's first claim (``Directory.begin``: one more statement there, none on
PostgreSQL, where the alias's count carries it), so that a redelivery does not count them again; and
the thread links written with the outcomes (``Directory.settle``: one insert that keeps links
already there).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, Verdicts
from forwarder.flows.forward import Inbound
from forwarder.runtime import Runtime
from forwarder.settings import Settings
from models import Alias, Contact, Destination, MessageLink, User, make_session_factory, utcnow
from tests.support.round_trips import psycopg_commands

ALIAS = "shop-7hq2@othermail.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")
#: Before issue 15's two-way work: 6 statements in prepare_forward alone, 8 over one-way in all.
#: prepare_forward reads; the claim counts the contacts (PostgreSQL: in the claim's one statement;
#: MariaDB: in the claim's procedure call); the settle writes the links (PostgreSQL: in the settle's
#: one statement). On PostgreSQL the read runs on an autocommit connection: no transaction (no
#: BEGIN and COMMIT round trips).
MAX_PREPARE_STATEMENTS = {"sqlite": 1, "postgresql": 1, "mysql": 1}
MAX_CONTACT_COUNT_STATEMENTS = 1
MAX_EXTRA_STATEMENTS = {"sqlite": 3, "postgresql": 1, "mysql": 2}
MAX_EXTRA_TRANSACTIONS = {"sqlite": 1, "postgresql": 0, "mysql": 1}


def message(n: int, thread: str = "") -> bytes:
    return (
        f"From: Jane <jane@shop.example>\r\nTo: {ALIAS}\r\nCc: Bob <bob@shop.example>\r\n"
        f"Subject: order {n}\r\nMessage-ID: <order-{n}@shop.example>\r\n{thread}\r\nYour order.\r\n"
    ).encode()


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    def touching(self, *tables: str) -> list[str]:
        return [s for s in self.statements if any(t in s for t in tables)]


@dataclass
class Paths:
    one_way: Runtime
    two_way: Runtime

    @property
    def engine(self) -> Engine:
        return self.two_way.engine

    def forward(self, runtime: Runtime, n: int, thread: str = "") -> Counted:
        counted = Counted()

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            counted.statements.append(" ".join(sql.split()))

        def begin(_conn: Any) -> None:
            counted.transactions += 1

        postgresql = self.engine.dialect.name == "postgresql"
        sent: list[str] = []
        event.listen(self.engine, "before_cursor_execute", statement)
        if not postgresql:  # PostgreSQL: the BEGINs psycopg sends (tests/support/round_trips.py)
            event.listen(self.engine, "begin", begin)
        try:
            with psycopg_commands(sent) if postgresql else nullcontext():
                reports = runtime.forwarder.process(
                    message(n, thread), Inbound(f"in-{n}", (ALIAS,), PASS, "jane@shop.example")
                )
        finally:
            event.remove(self.engine, "before_cursor_execute", statement)
            if not postgresql:
                event.remove(self.engine, "begin", begin)
        assert [r.outcome for r in reports] == [Outcome.FORWARDED]
        if postgresql:
            counted.transactions = sent.count("BEGIN")
        return counted


@pytest.fixture
def paths(migrated_url: str, tmp_path: Path) -> Iterator[Paths]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=migrated_url,
        domains=("othermail.example",),
        sender="outbox",
        public_url="https://mail.othermail.example",
        contact_keys=(("k1", secrets.token_bytes(32)),),
    )
    two_way = Runtime.build(settings, sender=MemorySender())
    one_way = Runtime.build(replace(settings, two_way=False), sender=MemorySender(), engine=two_way.engine)
    with make_session_factory(two_way.engine)() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email="me@real.example", verified_at=utcnow()))
        db.add(alias)
        db.commit()
    made = Paths(one_way, two_way)
    made.forward(two_way, 0)  # the contacts are made, the caches (users' domains) filled
    made.forward(one_way, 1)
    yield made
    one_way.close()
    two_way.close()


def test_a_two_way_forward_from_known_contacts_costs_few_statements_over_one_way(paths: Paths) -> None:
    backend = paths.engine.dialect.name
    one = paths.forward(paths.one_way, 2)
    two = paths.forward(paths.two_way, 3)
    print(f"\n{backend:<10} one-way {len(one.statements)} statements, {one.transactions} transactions")
    print(f"{backend:<10} two-way {len(two.statements)} statements, {two.transactions} transactions")
    for s in two.statements:
        print("    " + s[:140])
    prepare = two.touching("sender_rules")
    assert len(prepare) <= MAX_PREPARE_STATEMENTS[backend], prepare
    counting = [s for s in two.touching("UPDATE contacts", "CALL othermail_first_claim") if s not in prepare]
    assert len(counting) == MAX_CONTACT_COUNT_STATEMENTS, counting
    assert len(two.statements) - len(one.statements) <= MAX_EXTRA_STATEMENTS[backend], two.statements
    assert two.transactions - one.transactions <= MAX_EXTRA_TRANSACTIONS[backend]
    with make_session_factory(paths.engine)() as db:  # what the statements did is still all done
        counts = db.execute(select(Contact.forwarded_count, Contact.last_seen_at)).all()
        assert [c.forwarded_count for c in counts] == [2, 2]  # message 0 and message 3
        assert all(c.last_seen_at is not None for c in counts)
        links = db.scalars(select(MessageLink.kind)).all()
        assert len(links) == 4 and set(links) == {"forward"}  # each copy's id and the sender's, twice


def test_the_thread_ids_of_an_answer_are_mapped_back_in_the_same_statements(paths: Paths) -> None:
    """The sender's answer names the owner's reply (its id, linked when the reply went out) and
    older ids: they are looked up in the same read as the contacts, not one read each."""
    contacts = paths.two_way.contacts
    alias_id = contacts.by_reverse(_reverse(paths, "jane@shop.example")).alias_id  # type: ignore[union-attr]
    contacts.link(alias_id, None, ["<reply-9@ses.example>"], "<owner-9@real.example>", kind="reply")
    thread = (
        "In-Reply-To: <reply-9@ses.example>\r\n"
        "References: <order-0@shop.example> <nowhere-1@x.example> <nowhere-2@x.example> <reply-9@ses.example>\r\n"
    )
    plain = paths.forward(paths.two_way, 4)
    answer = paths.forward(paths.two_way, 5, thread)
    assert len(answer.statements) == len(plain.statements), answer.statements
    assert answer.transactions == plain.transactions
    sent = paths.two_way.sender
    assert isinstance(sent, MemorySender)
    header = sent.sent[-1].raw.split(b"\r\n\r\n", 1)[0]
    assert b"In-Reply-To: <owner-9@real.example>" in header
    assert b"<reply-9@ses.example>" not in header


def _reverse(paths: Paths, address: str) -> str:
    with make_session_factory(paths.engine)() as db:
        alias_id = db.scalar(select(Alias.id).where(Alias.address == ALIAS))
    assert alias_id is not None
    return paths.two_way.contacts.create(alias_id, "othermail.example", address).reverse


def test_links_written_by_a_racing_delivery_do_not_undo_the_outcomes(paths: Paths) -> None:
    """One insert that keeps the first link and adds the rest (the old read-then-insert could lose
    a race with a concurrent settle to an IntegrityError that rolled back the outcomes beside it;
    this test checks the statement's semantics, not the race itself)."""
    from forwarder.adapters.sql.directory.statements import _insert_new_links

    book = paths.two_way.contacts
    with make_session_factory(paths.engine)() as db:
        alias_id = db.scalars(select(Alias.id)).one()
    first = book.link_rows(alias_id, None, ["<raced@x>"], "<one@y>")
    again = book.link_rows(alias_id, None, ["<raced@x>", "<fresh@x>"], "<two@y>")
    with paths.engine.connect() as connection:
        _insert_new_links(connection, first)
        _insert_new_links(connection, again)  # the raced one is already there: no error
        connection.commit()
    assert book.original_for(alias_id, "<raced@x>") == "<one@y>"  # the first link stands
    assert book.original_for(alias_id, "<fresh@x>") == "<two@y>"


def _contact_counts(engine: Engine) -> list[int]:
    with make_session_factory(engine)() as db:
        return list(db.scalars(select(Contact.forwarded_count).order_by(Contact.id)))


def test_a_redelivered_message_counts_its_contacts_once(paths: Paths) -> None:
    """The contacts are counted with the message's first claim, in its transaction, not before it:
    a redelivery of the same message (SES retries, a worker's event seen twice) counts nothing."""
    assert _contact_counts(paths.engine) == [1, 1]  # message 0
    paths.forward(paths.two_way, 3)
    assert _contact_counts(paths.engine) == [2, 2]
    sent = len(paths.two_way.sender.sent)  # type: ignore[attr-defined]
    paths.two_way.forwarder.process(message(3), Inbound("in-3", (ALIAS,), PASS, "jane@shop.example"))
    assert len(paths.two_way.sender.sent) == sent  # type: ignore[attr-defined]
    assert _contact_counts(paths.engine) == [2, 2]
