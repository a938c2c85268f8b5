"""SqlContactBook on SQLite, PostgreSQL and MariaDB (issue 14): reverse addresses, the Message-ID
map and sender rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import Engine, func, select, update

from forwarder.adapters.sealing import Sealer
from forwarder.adapters.sql.contacts import SqlContactBook
from forwarder.ports import ContactBook, ContactRef
from models import Alias, Contact, MessageLink, SenderRule, User, make_engine, make_session_factory
from tests.support.races import race

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = ("k1", bytes(range(32)))


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ids(engine: Engine) -> dict[str, int]:
    with make_session_factory(engine)() as session:
        user = User(email="owner@example.org")
        session.add(user)
        session.flush()
        shop = Alias(address="shop@othermail.example", user_id=user.id)
        news = Alias(address="news@custom.example", user_id=user.id)
        session.add_all([shop, news])
        session.commit()
        return {"user": user.id, "shop": shop.id, "news": news.id}


def book(engine: Engine, *keys: tuple[str, bytes], now: datetime = NOW) -> SqlContactBook:
    return SqlContactBook(engine, Sealer(keys or [KEY]), clock=lambda: now, thread_days=180)


def test_it_is_a_contact_book(engine: Engine) -> None:
    assert isinstance(book(engine), ContactBook)


def test_one_stable_random_reverse_address_per_alias_and_address(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    first = contacts.contacts_for(ids["shop"], "othermail.example", [("Ann.Example@Mail.example", "Ann")])
    assert list(first) == ["ann.example@mail.example"]
    reverse = first["ann.example@mail.example"]
    local, domain = reverse.split("@")
    assert domain == "othermail.example"
    assert len(local) == 16 and set(local) <= set("abcdefghijklmnopqrstuvwxyz234567")  # 80 bits of base32
    assert "ann" not in local and "mail" not in local
    again = contacts.contacts_for(ids["shop"], "othermail.example", [("  ANN.EXAMPLE@mail.EXAMPLE ", "")])
    assert again == first
    other_alias = contacts.contacts_for(ids["news"], "custom.example", [("ann.example@mail.example", "")])
    assert other_alias["ann.example@mail.example"].endswith("@custom.example")
    assert other_alias["ann.example@mail.example"].split("@")[0] != local
    with engine.connect() as connection:
        row = connection.execute(
            select(Contact.forwarded_count, Contact.last_seen_at, Contact.address_sealed, Contact.origin).where(
                Contact.reverse_local == local
            )
        ).one()
    assert row.forwarded_count == 2 and row.last_seen_at == NOW and row.origin == "forward"
    assert "ann" not in row.address_sealed.lower()


def test_several_people_at_once_and_nothing_for_blank_addresses(engine: Engine, ids: dict[str, int]) -> None:
    too_long = "é" * 130 + "@x.example"  # 140 characters but 270 octets: over RFC 5321's 254
    people = [("a@x.example", "A"), ("b@y.example", ""), ("A@X.example", "again"), ("", "nobody"), (too_long, "")]
    found = book(engine).contacts_for(ids["shop"], "othermail.example", people)
    assert sorted(found) == ["a@x.example", "b@y.example"]
    assert len(set(found.values())) == 2


def test_two_threads_creating_the_same_contact_get_one(engine: Engine, ids: dict[str, int]) -> None:
    books = [book(engine) for _ in range(2)]
    results = race(
        [
            partial(contacts.contacts_for, ids["shop"], "othermail.example", [("race@x.example", "")])
            for contacts in books
        ],
        within=60,
    )
    assert results[0] == results[1]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Contact)).scalar_one() == 1


def test_by_reverse_finds_the_contact_whatever_the_case(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    reverse = contacts.contacts_for(ids["shop"], "othermail.example", [("Bob@Example.net", "Bob B.")])[
        "bob@example.net"
    ]
    ref = contacts.by_reverse(reverse.upper())
    assert ref == ContactRef(
        contact_id=ref.contact_id if ref else 0,
        alias_id=ids["shop"],
        alias_address="shop@othermail.example",
        address="bob@example.net",
        name="Bob B.",
        blocked=False,
        reverse=reverse,
    )
    assert contacts.by_reverse(reverse.split("@")[0] + "@custom.example") is None  # another domain
    assert contacts.by_reverse("nosuchreverse00@othermail.example") is None
    assert contacts.by_reverse("not an address") is None


def test_create_makes_a_user_contact_once(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    made = contacts.create(ids["news"], "custom.example", "Carol@Example.net", "Carol")
    assert made.reverse.endswith("@custom.example") and made.address == "carol@example.net"
    assert contacts.create(ids["news"], "custom.example", "carol@example.net") == made
    for bad in ("no-at-sign", "@example.net", "x" * 250 + "@example.net"):
        with pytest.raises(ValueError):
            contacts.create(ids["news"], "custom.example", bad)
    assert contacts.contacts_for(ids["news"], "custom.example", [("carol@example.net", "")]) == {
        "carol@example.net": made.reverse
    }
    with engine.connect() as connection:
        assert connection.execute(select(Contact.origin)).scalars().all() == ["user"]


def test_a_reply_link_is_told_from_a_forward_link(engine: Engine, ids: dict[str, int]) -> None:
    """A bounce or an auto-reply naming a copy the alias sent is an answer to a reply (issue 14)."""
    contacts = book(engine)
    ref = contacts.create(ids["shop"], "othermail.example", "dan@example.net")
    contacts.link(ids["shop"], ref.contact_id, ["<fwd-1@email.amazonses.com>"], "<theirs@example.net>")
    contacts.link(ids["shop"], ref.contact_id, ["0100r1", "<r1@othermail.example>"], "<mine@real.example>", "reply")
    assert contacts.answers_reply(ids["shop"], ["<x@y>", "<R1@othermail.example>"])
    assert contacts.answers_reply(ids["shop"], ["0100r1"])
    assert not contacts.answers_reply(ids["shop"], ["<fwd-1@email.amazonses.com>"])  # a forwarded copy's id
    assert not contacts.answers_reply(ids["news"], ["<r1@othermail.example>"])  # another alias
    assert not contacts.answers_reply(ids["shop"], [])
    assert not book(engine, now=NOW + timedelta(days=181)).answers_reply(ids["shop"], ["0100r1"])  # expired


def test_links_round_trip_and_expire(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    ref = contacts.create(ids["shop"], "othermail.example", "dan@example.net")
    contacts.link(ids["shop"], ref.contact_id, ["<0100abc@email.amazonses.com>"], "<orig-1@example.net>")
    contacts.link(ids["shop"], None, ["reply-2@othermail.example"], "<their-2@example.net>")
    contacts.link(ids["shop"], ref.contact_id, ["<0100abc@email.amazonses.com>"], "<orig-1@example.net>")  # again
    assert contacts.original_for(ids["shop"], "<0100ABC@email.amazonses.com>") == "<orig-1@example.net>"
    assert contacts.original_for(ids["shop"], " <reply-2@othermail.example> ") == "<their-2@example.net>"
    assert contacts.original_for(ids["news"], "<0100abc@email.amazonses.com>") is None  # another alias
    assert contacts.original_for(ids["shop"], "<unknown@x>") is None
    with engine.connect() as connection:
        sealed = connection.execute(select(MessageLink.original_sealed, MessageLink.expires_at)).all()
    assert all("orig-1" not in row[0] and "their-2" not in row[0] for row in sealed)
    assert {row[1] for row in sealed} == {NOW + timedelta(days=180)}

    later = book(engine, now=NOW + timedelta(days=181))
    assert later.original_for(ids["shop"], "<0100abc@email.amazonses.com>") is None  # expired, even unpruned
    assert contacts.prune(NOW + timedelta(days=179)) == 0
    assert contacts.prune(NOW + timedelta(days=180)) == 2
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(MessageLink)).scalar_one() == 0


def _rule(engine: Engine, user_id: int, alias_id: int | None, action: str, kind: str, value: str = "") -> None:
    with engine.begin() as connection:
        connection.execute(
            SenderRule.__table__.insert().values(
                user_id=user_id, alias_id=alias_id, action=action, kind=kind, value=value, created_at=NOW
            )
        )


def test_no_rules_let_everyone_in(engine: Engine, ids: dict[str, int]) -> None:
    verdict = book(engine).sender_allowed(ids["user"], ids["shop"], "anyone@example.net")
    assert verdict.allowed and verdict.reason == "no-rule"


def test_domain_rules_match_subdomains_only(engine: Engine, ids: dict[str, int]) -> None:
    _rule(engine, ids["user"], None, "block", "domain", "spam.example")
    contacts = book(engine)
    for sender in ("x@spam.example", "x@mail.SPAM.example"):
        verdict = contacts.sender_allowed(ids["user"], ids["shop"], sender)
        assert (verdict.allowed, verdict.reason) == (False, "blocked-by-account-rule")
    for sender in ("x@notspam.example", "spam.example@other.example", ""):
        assert contacts.sender_allowed(ids["user"], ids["shop"], sender).allowed


def test_alias_rules_override_account_rules_and_block_wins_at_one_level(engine: Engine, ids: dict[str, int]) -> None:
    _rule(engine, ids["user"], None, "block", "domain", "example.net")
    _rule(engine, ids["user"], ids["shop"], "allow", "address", "friend@example.net")
    contacts = book(engine)
    verdict = contacts.sender_allowed(ids["user"], ids["shop"], "Friend@Example.net")
    assert (verdict.allowed, verdict.reason) == (True, "allowed-by-alias-rule")
    assert not contacts.sender_allowed(ids["user"], ids["news"], "friend@example.net").allowed  # the account rule
    _rule(engine, ids["user"], ids["shop"], "block", "domain", "example.net")
    verdict = contacts.sender_allowed(ids["user"], ids["shop"], "friend@example.net")
    assert (verdict.allowed, verdict.reason) == (False, "blocked-by-alias-rule")


def test_the_empty_sender_is_matched_by_its_own_kind(engine: Engine, ids: dict[str, int]) -> None:
    _rule(engine, ids["user"], ids["shop"], "block", "empty-sender")
    contacts = book(engine)
    assert not contacts.sender_allowed(ids["user"], ids["shop"], "").allowed
    assert not contacts.sender_allowed(ids["user"], ids["shop"], "<>").allowed
    assert contacts.sender_allowed(ids["user"], ids["shop"], "someone@example.net").allowed
    assert contacts.sender_allowed(ids["user"], ids["news"], "").allowed


def test_allow_only_lets_in_allow_listed_and_known_unblocked_contacts(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    contacts.create(ids["shop"], "othermail.example", "known@example.net")
    blocked = contacts.create(ids["shop"], "othermail.example", "blocked@example.net")
    with engine.begin() as connection:
        connection.execute(update(Contact).where(Contact.id == blocked.contact_id).values(blocked=True))
        connection.execute(update(Alias).where(Alias.id == ids["shop"]).values(sender_mode="allow-only"))
    _rule(engine, ids["user"], None, "allow", "domain", "partner.example")
    verdicts = {
        sender: contacts.sender_allowed(ids["user"], ids["shop"], sender)
        for sender in ("known@example.net", "blocked@example.net", "a@partner.example", "stranger@example.net")
    }
    assert {sender: (v.allowed, v.reason) for sender, v in verdicts.items()} == {
        "known@example.net": (True, "known-contact"),
        "blocked@example.net": (False, "blocked-contact"),
        "a@partner.example": (True, "allowed-by-account-rule"),
        "stranger@example.net": (False, "not-allow-listed"),
    }
    assert contacts.sender_allowed(ids["user"], ids["news"], "stranger@example.net").allowed  # mode "any"
    with engine.begin() as connection:
        connection.execute(update(User).values(sender_mode="allow-only"))
    assert not contacts.sender_allowed(ids["user"], ids["news"], "stranger@example.net").allowed  # the account's mode


def test_reseal_moves_every_row_to_the_current_key_and_lookups_work_throughout(
    engine: Engine, ids: dict[str, int]
) -> None:
    old, new = KEY, ("k2", bytes(range(32, 64)))
    before = book(engine, old)
    reverse = before.contacts_for(ids["shop"], "othermail.example", [("ann@example.net", "Ann")])["ann@example.net"]
    for n in range(5):  # more rows than one batch
        before.create(ids["news"], "custom.example", f"person{n}@example.net", f"P{n}")
        before.link(ids["news"], None, [f"<seen-{n}@email.amazonses.com>"], f"<orig-{n}@example.net>")

    def works(contacts: SqlContactBook) -> None:
        ref = contacts.by_reverse(reverse)
        assert ref is not None and (ref.address, ref.name) == ("ann@example.net", "Ann")
        assert contacts.contacts_for(ids["shop"], "othermail.example", [("ann@example.net", "")]) == {
            "ann@example.net": reverse
        }
        assert contacts.original_for(ids["news"], "<seen-3@email.amazonses.com>") == "<orig-3@example.net>"
        assert contacts.sender_allowed(ids["user"], ids["shop"], "ann@example.net").allowed

    works(before)
    during = book(engine, new, old)
    works(during)
    assert during.reseal(batch_size=2) == (6, 5)
    assert during.reseal(batch_size=2) == (0, 0)  # nothing left on the old key
    with engine.connect() as connection:
        contacts = connection.execute(select(Contact.address_sealed, Contact.name_sealed, Contact.address_digest)).all()
        links = connection.execute(select(MessageLink.seen_sealed, MessageLink.original_sealed)).all()
    assert all(a.startswith("k2:") and n.startswith("k2:") for a, n, _ in contacts)
    assert all(s.startswith("k2:") and o.startswith("k2:") for s, o in links)
    after = book(engine, new)
    assert {digest for *_, digest in contacts} == {
        after._sealer.digest(a) for a in ["ann@example.net"] + [f"person{n}@example.net" for n in range(5)]
    }
    works(after)
    assert len(set(during.contacts_for(ids["news"], "custom.example", [("person1@example.net", "")]).values())) == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Contact)).scalar_one() == 6  # no duplicates


def test_contacts_are_listed_counted_blocked_and_deleted(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    reverse = contacts.contacts_for(ids["shop"], "othermail.example", [("ann@example.net", "Ann")])["ann@example.net"]
    made = contacts.create(ids["shop"], "othermail.example", "bob@example.net")
    contacts.create(ids["news"], "custom.example", "elsewhere@example.net")
    contacts.count(made.contact_id, replied=2, blocked=1)
    listed = contacts.contacts_of(ids["shop"], "othermail.example")
    assert [(c.address, c.name, c.reverse, c.origin) for c in listed] == [
        ("ann@example.net", "Ann", reverse, "forward"),
        ("bob@example.net", "", made.reverse, "user"),
    ]
    assert [(c.forwarded_count, c.replied_count, c.blocked_count) for c in listed] == [(1, 0, 0), (0, 2, 1)]
    assert listed[0].last_seen_at == NOW and listed[1].last_seen_at is None and listed[1].created_at == NOW
    assert contacts.set_blocked(ids["shop"], made.contact_id, True)
    assert not contacts.set_blocked(ids["news"], made.contact_id, True)  # not that alias's contact
    ref = contacts.by_reverse(made.reverse)
    assert ref is not None and ref.blocked
    assert not contacts.sender_allowed(ids["user"], ids["shop"], "bob@example.net").allowed
    contacts.link(ids["shop"], made.contact_id, ["<s@x>"], "<o@y>")
    assert not contacts.delete_contact(ids["news"], made.contact_id)
    assert contacts.delete_contact(ids["shop"], made.contact_id)
    assert contacts.by_reverse(made.reverse) is None
    assert contacts.original_for(ids["shop"], "<s@x>") is None  # its links went with it


def test_rules_are_added_listed_and_removed(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    account = contacts.add_rule(ids["user"], None, "block", "domain", " Spam.Example ")
    alias = contacts.add_rule(ids["user"], ids["shop"], "allow", "address", "Friend@Spam.example")
    empty = contacts.add_rule(ids["user"], ids["shop"], "block", "empty-sender", "ignored")
    assert [(r.id, r.alias_id, r.action, r.kind, r.value) for r in contacts.rules(ids["user"])] == [
        (account, None, "block", "domain", "spam.example"),
        (alias, ids["shop"], "allow", "address", "friend@spam.example"),
        (empty, ids["shop"], "block", "empty-sender", ""),
    ]
    assert [r.id for r in contacts.rules(ids["user"], ids["shop"])] == [alias, empty]
    assert contacts.sender_allowed(ids["user"], ids["shop"], "friend@spam.example").allowed
    for bad in (("drop", "domain", "x.example"), ("block", "regex", ".*"), ("block", "address", "no-at-sign")):
        with pytest.raises(ValueError):
            contacts.add_rule(ids["user"], None, *bad)
    assert not contacts.remove_rule(ids["user"] + 1, account)  # another account's rule
    assert contacts.remove_rule(ids["user"], account)
    assert [r.id for r in contacts.rules(ids["user"])] == [alias, empty]


def test_forgetting_an_alias_removes_its_contacts_links_and_rules(engine: Engine, ids: dict[str, int]) -> None:
    contacts = book(engine)
    contacts.create(ids["shop"], "othermail.example", "ann@example.net")
    kept = contacts.create(ids["news"], "custom.example", "ann@example.net")
    contacts.link(ids["shop"], None, ["<a@x>"], "<b@y>")
    contacts.add_rule(ids["user"], ids["shop"], "block", "domain", "x.example")
    account_rule = contacts.add_rule(ids["user"], None, "block", "domain", "y.example")
    contacts.forget_alias(ids["shop"])
    assert contacts.contacts_of(ids["shop"], "othermail.example") == []
    assert contacts.original_for(ids["shop"], "<a@x>") is None
    assert [r.id for r in contacts.rules(ids["user"])] == [account_rule]
    assert contacts.by_reverse(kept.reverse) == kept


def test_preparing_a_forward_checks_the_rules_and_makes_the_contacts_in_one_go(
    engine: Engine, ids: dict[str, int]
) -> None:
    contacts = book(engine)
    people = [("Jane@Shop.example", "Jane"), ("bob@shop.example", "")]
    prepared = contacts.prepare_forward("SHOP@othermail.example", people, "jane@shop.example")
    assert prepared is not None and prepared.alias_id == ids["shop"] and prepared.verdict.allowed
    assert set(prepared.contacts) == {"jane@shop.example", "bob@shop.example"}
    assert all(r.endswith("@othermail.example") for r in prepared.contacts.values())
    assert contacts.prepare_forward("shop@othermail.example", people, "x@y.example").contacts == prepared.contacts
    assert contacts.prepare_forward("nobody@othermail.example", people, "jane@shop.example") is None
    _rule(engine, ids["user"], ids["shop"], "block", "domain", "shop.example")
    refused = contacts.prepare_forward("shop@othermail.example", people, "jane@shop.example")
    assert refused is not None and not refused.verdict.allowed and refused.contacts == {}
    [jane] = [c for c in contacts.contacts_of(ids["shop"], "othermail.example") if c.address == "jane@shop.example"]
    # the refused known sender is counted blocked by the message's record (Directory.begin), never
    # here, and a forward by its first claim: a redelivery counts nothing
    assert refused.blocked == (jane.contact_id,) and jane.blocked_count == 0
    assert jane.forwarded_count == 0
    assert sorted(prepared.counted) == sorted(
        c.contact_id for c in contacts.contacts_of(ids["shop"], "othermail.example")
    )


def test_preparing_a_forward_maps_the_thread_ids_the_alias_linked_and_not_expired(
    engine: Engine, ids: dict[str, int]
) -> None:
    contacts = book(engine)
    contacts.link(ids["shop"], None, ["<Seen-1@ses.example>", "seen-2@ses.example"], "<mine@real.example>")
    contacts.link(ids["news"], None, ["<seen-3@ses.example>"], "<other@real.example>")  # another alias's
    later = book(engine, now=NOW + timedelta(days=181))
    later.link(ids["shop"], None, ["<fresh@ses.example>"], "<fresh-original@real.example>")
    asked = ["<seen-1@SES.example>", "seen-2@ses.example", "<seen-3@ses.example>", "<unknown@x.example>", "<>"]
    prepared = contacts.prepare_forward("shop@othermail.example", [], "jane@shop.example", asked)
    assert prepared is not None
    assert prepared.originals == {
        "<seen-1@SES.example>": "<mine@real.example>",
        "seen-2@ses.example": "<mine@real.example>",
    }
    expired = later.prepare_forward("shop@othermail.example", [], "jane@shop.example", [*asked, "<fresh@ses.example>"])
    assert expired is not None and expired.originals == {"<fresh@ses.example>": "<fresh-original@real.example>"}
