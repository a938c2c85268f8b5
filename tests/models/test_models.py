"""Model behaviour against the migrated schema, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, delete, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from models import Alias, Delivery, Destination, User, alias_destinations, utcnow
from tests.support.factories import make_destination, make_user


def association_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(alias_destinations)) or 0


# -- pure normalization (no database) ----------------------------------------


def test_normalize_address() -> None:
    assert Alias.normalize_address("  Shop@X.Example\n") == "shop@x.example"
    assert Alias(address="Shop@X.Example").address == "shop@x.example"
    assert User(email="Me@Example.ORG").email == "me@example.org"
    with pytest.raises(ValueError):
        Alias.normalize_address("no-at-sign")
    with pytest.raises(ValueError):
        Alias.normalize_address("@example.org")


def test_delivery_constructor_and_clipping() -> None:
    assert Delivery(destination_id=7).destination_key == 7
    assert Delivery(destination_id=7, destination_key=9).destination_key == 9
    with pytest.raises(ValueError, match="flush"):
        Delivery(destination=Destination(email="a@b.example"))
    delivery = Delivery(recipient=" Shop@X.Example ", subject="s\x00" + "x" * 300, reason="r" * 600)
    assert delivery.recipient == "shop@x.example"
    assert delivery.subject is not None and len(delivery.subject) == 255
    assert "\x00" not in delivery.subject
    assert len(delivery.reason) == 500


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


# -- against each backend -------------------------------------------------------


def test_alias_address_unique_case_insensitively(session: Session) -> None:
    session.add(Alias(address="shop@x.example"))
    session.commit()

    session.add(Alias(address="Shop@X.example"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    stored = session.scalars(text("SELECT address FROM aliases")).all()
    assert stored == ["shop@x.example"]


def test_delivery_unique_per_message_recipient_destination(session: Session) -> None:
    user = make_user(session)
    destination = make_destination(session, user, "inbox@example.org")
    alias = Alias(address="shop@x.example", user=user, destinations=[destination])
    session.add(alias)
    session.flush()

    def log(destination_key: int | None, **kw: object) -> Delivery:
        delivery = Delivery(
            inbound_message_id="ses-msg-1",
            recipient="Shop@X.example",
            alias=alias,
            destination_key=destination_key,
            outcome="forwarded",
            subject="é" * 300,  # clipped to fit, non-ASCII stored intact
            **kw,
        )
        session.add(delivery)
        return delivery

    first = log(None, destination_id=destination.id)
    session.commit()
    assert first.destination_key == destination.id
    assert first.id is not None and first.attempts == 1 and first.reason == ""

    log(destination.id)
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    log(0, reason="message-level outcome")
    session.commit()
    rows = session.execute(
        select(Delivery.recipient, Delivery.destination_key, Delivery.subject).order_by(Delivery.destination_key)
    ).all()
    assert [(r.recipient, r.destination_key) for r in rows] == [
        ("shop@x.example", 0),
        ("shop@x.example", destination.id),
    ]
    assert rows[0].subject == "é" * 255


def test_utc_datetime_round_trip(session: Session) -> None:
    plus_two = timezone(timedelta(hours=2))
    expires = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two)
    session.add(Alias(address="timed@x.example", expires_at=expires))
    session.commit()
    session.expire_all()

    loaded = session.scalars(select(Alias.expires_at)).one()
    assert loaded == expires
    assert loaded.tzinfo is UTC
    assert (loaded.hour, loaded.microsecond) == (5, 123456)

    # Stored as naive UTC: the raw column value carries no offset.
    raw = session.execute(text("SELECT expires_at FROM aliases").columns(expires_at=DateTime())).scalar_one()
    assert raw == datetime(2030, 5, 6, 5, 8, 9, 123456)

    # Aware comparisons in queries work; defaults are aware too.
    assert session.scalar(select(func.count()).where(Alias.expires_at > utcnow())) == 1
    assert session.scalars(select(Alias.created_at)).one().tzinfo is UTC


def test_utc_datetime_rejects_naive(session: Session) -> None:
    session.add(Alias(address="naive@x.example", expires_at=datetime(2030, 1, 1)))
    with pytest.raises(StatementError) as excinfo:
        session.flush()
    assert isinstance(excinfo.value.orig, ValueError)
    assert "naive datetime" in str(excinfo.value.orig)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Alias)) == 0


def test_alias_destinations_many_to_many(session: Session) -> None:
    user = make_user(session)
    home = make_destination(session, user, "home@example.org")
    work = make_destination(session, user, "work@example.org")
    shop = Alias(address="shop@x.example", user=user, destinations=[home, work])
    news = Alias(address="news@x.example", user=user, destinations=[home])
    session.add_all([shop, news])
    session.commit()
    session.expire_all()

    shop = session.scalars(select(Alias).where(Alias.address == "shop@x.example")).one()
    assert {d.email for d in shop.destinations} == {"home@example.org", "work@example.org"}
    home = session.scalars(select(Destination).where(Destination.email == "home@example.org")).one()
    assert {a.address for a in home.aliases} == {"shop@x.example", "news@x.example"}
    assert association_count(session) == 3

    shop.destinations.remove(home)
    session.commit()
    assert association_count(session) == 2

    # Hard-deleting an alias removes its association rows (ON DELETE CASCADE).
    session.execute(delete(Alias).where(Alias.address == "news@x.example"))
    session.commit()
    assert association_count(session) == 1


def test_deleting_user_keeps_aliases_reserved_and_cascades_destinations(session: Session) -> None:
    user = make_user(session)
    inbox = make_destination(session, user, "inbox@example.org")
    session.add(Alias(address="shop@x.example", user=user, destinations=[inbox]))
    session.commit()

    # A bulk DELETE: only the database's ON DELETE rules act, not the ORM.
    session.execute(delete(User).where(User.id == user.id))
    session.commit()
    session.expire_all()

    alias = session.scalars(select(Alias)).one()
    assert alias.address == "shop@x.example"
    assert alias.user_id is None
    assert session.scalar(select(func.count()).select_from(Destination)) == 0
    assert association_count(session) == 0

    session.add(Alias(address="SHOP@x.example", user=make_user(session, "new@example.org")))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_orm_delete_of_user_matches_database_rules(session: Session) -> None:
    user = make_user(session)
    inbox = make_destination(session, user, "inbox@example.org")
    alias = Alias(address="shop@x.example", user=user, destinations=[inbox])
    session.add(alias)
    session.commit()

    session.delete(user)
    session.commit()
    session.expire_all()

    assert session.scalars(select(Alias.user_id)).all() == [None]
    assert session.scalar(select(func.count()).select_from(Destination)) == 0
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_deleting_destination_keeps_delivery_log(session: Session) -> None:
    user = make_user(session)
    inbox = make_destination(session, user, "inbox@example.org")
    alias = Alias(address="shop@x.example", user=user, destinations=[inbox])
    session.add(alias)
    session.flush()
    session.add(
        Delivery(
            inbound_message_id="ses-msg-1",
            recipient=alias.address,
            alias=alias,
            destination_id=inbox.id,
            outcome="forwarded",
        )
    )
    session.commit()
    inbox_id = inbox.id

    session.execute(delete(Destination).where(Destination.id == inbox_id))
    session.commit()
    session.expire_all()

    delivery = session.scalars(select(Delivery)).one()
    assert delivery.destination_id is None
    assert delivery.destination_key == inbox_id  # keeps the row's uniqueness
    assert delivery.alias_id == alias.id
    assert association_count(session) == 0

    # Hard-deleting the alias likewise only detaches the log row.
    session.execute(delete(Alias).where(Alias.id == alias.id))
    session.commit()
    session.expire_all()
    delivery = session.scalars(select(Delivery)).one()
    assert delivery.alias_id is None
    assert delivery.recipient == "shop@x.example"
