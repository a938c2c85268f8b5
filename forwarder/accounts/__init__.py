"""Creating users, destinations and aliases: shared by the operator CLI and the web app."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forwarder.core.addresses import is_valid_address
from forwarder.errors import AccountError
from forwarder.local_parts import LOCAL_PART as LOCAL_PART
from forwarder.local_parts import RESERVED as RESERVED
from forwarder.local_parts import check_local_part as check_local_part
from models import Alias, Destination, User, normalize_email
from models.limits import LOCAL_PART_MAX_LENGTH as LOCAL_PART_MAX_LENGTH

#: Neutral words for generated aliases: they say nothing about the user.
WORDS = (
    "amber",
    "anchor",
    "apple",
    "arch",
    "aspen",
    "atlas",
    "autumn",
    "badge",
    "basil",
    "beacon",
    "birch",
    "bison",
    "blade",
    "bloom",
    "breeze",
    "brook",
    "cable",
    "cactus",
    "canyon",
    "cedar",
    "cinder",
    "clover",
    "cobalt",
    "comet",
    "coral",
    "crane",
    "crest",
    "cypress",
    "delta",
    "dune",
    "ember",
    "falcon",
    "fern",
    "field",
    "flint",
    "forest",
    "frost",
    "garnet",
    "glade",
    "granite",
    "harbor",
    "hazel",
    "heron",
    "hollow",
    "indigo",
    "iris",
    "island",
    "jasper",
    "juniper",
    "kestrel",
    "lagoon",
    "lantern",
    "larch",
    "lemon",
    "linen",
    "lotus",
    "maple",
    "marble",
    "meadow",
    "mesa",
    "mint",
    "moss",
    "nectar",
    "north",
    "oak",
    "ocean",
    "olive",
    "onyx",
    "opal",
    "orchid",
    "otter",
    "pebble",
    "pepper",
    "pine",
    "plum",
    "prairie",
    "quartz",
    "quill",
    "raven",
    "reed",
    "ridge",
    "river",
    "robin",
    "sage",
    "salt",
    "shadow",
    "shell",
    "sierra",
    "slate",
    "sparrow",
    "spruce",
    "stone",
    "summit",
    "tango",
    "thistle",
    "tide",
    "timber",
    "topaz",
    "tulip",
    "valley",
    "velvet",
    "willow",
    "winter",
    "yarrow",
    "zephyr",
)
_SUFFIX = "abcdefghjkmnpqrstuvwxyz23456789"
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def is_mailable(address: str) -> bool:
    """Whether ``address`` may go into a header and an envelope: a valid addr-spec of printable
    7-bit characters. ``is_valid_address`` alone takes a quoted local part holding a CR (as a
    quoted-pair), a NUL, another control character or 8-bit text."""
    return address.isascii() and address.isprintable() and is_valid_address(address)


def accepted_address(raw: object) -> str | None:
    """The stored form of an address a user typed (sign-up, sign-in, reset, destinations, the
    API, the operator CLI), or None: the one validator they all share.

    Beyond :func:`is_mailable` it refuses what a mailbox address has no need of and what makes one
    mailbox look like several or hides text in an address: a quoted local part (``"ann"@x`` is
    ann@x; a quoted one can hold spaces and a URL), whitespace or a backslash anywhere, and a
    domain with an empty label or a trailing dot (``x@othermail.example.`` is
    ``x@othermail.example``).
    """
    if not isinstance(raw, str):
        return None
    try:
        address = normalize_email(raw)
    except (TypeError, ValueError):
        return None
    local, _, domain = address.rpartition("@")
    if any(ch in '"\\@' or ch.isspace() for ch in local) or any(ch.isspace() for ch in domain):
        return None
    if "" in domain.split("."):
        return None
    return address if is_mailable(address) else None


MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``7d`` or ``4w``; at most about ten years."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise AccountError(f"{text!r} is not a duration such as 30m, 2h, 7d or 4w")
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        duration = MAX_DURATION + MAX_DURATION
    if duration > MAX_DURATION:
        raise AccountError(f"{text!r} is longer than the longest expiry, {MAX_DURATION.days} days")
    return duration


def random_local_part() -> str:
    return f"{secrets.choice(WORDS)}-{''.join(secrets.choice(_SUFFIX) for _ in range(4))}"


def ensure_user(session: Session, email: str) -> User:
    address = normalize_email(email)
    user = session.scalars(select(User).where(User.email == address)).first()
    if user is None:
        user = User(email=address)
        session.add(user)
        session.flush()
    return user


def ensure_destination(session: Session, user: User, email: str, verified_at: datetime | None) -> Destination:
    address = normalize_email(email)
    destination = session.scalars(
        select(Destination).where(Destination.user_id == user.id, Destination.email == address)
    ).first()
    if destination is None:
        destination = Destination(user_id=user.id, email=address, verified_at=verified_at)
        session.add(destination)
        session.flush()
    elif destination.verified_at is None and verified_at is not None:
        destination.verified_at = verified_at
    return destination


def verified_destinations(session: Session, user: User) -> list[Destination]:
    """Where an alias created without a choice forwards: every verified destination of ``user``."""
    return list(
        session.scalars(
            select(Destination)
            .where(Destination.user_id == user.id, Destination.verified_at.is_not(None))
            .order_by(Destination.id)
        )
    )


def set_alias_enabled(alias: Alias, enabled: bool) -> None:
    """Switch an alias on or off as its owner does (the web app, the API, the CLI); the caller commits.

    A switched-off alias's mail is dropped (``dropped-disabled``). The service's own reason for
    switching it off (a complaint) is cleared: the state is the owner's choice now."""
    alias.enabled = enabled
    alias.disabled_reason = None


def create_alias(
    session: Session,
    user: User,
    destinations: Sequence[Destination],
    domain: str,
    now: datetime,
    *,
    local_part: str | None = None,
    expires_in: timedelta | None = None,
    idle_days: int | None = None,
    max_messages: int | None = None,
    expired_action: str = "drop",
) -> Alias:
    """Create an alias and commit; a generated local part is retried on the rare collision.

    ``expired_action``: what mail gets once the alias has expired, ``drop`` or ``reject``
    (forwarder/flows/expired_reject.py)."""
    if expired_action not in ("drop", "reject"):
        raise AccountError(f"--expired-action must be drop or reject, not {expired_action!r}")
    if max_messages is not None and max_messages < 1:
        raise AccountError("--max-messages must be at least 1")
    if idle_days is not None and idle_days < 1:
        raise AccountError("--idle-days must be at least 1")
    attempts = 1 if local_part else 8
    for _ in range(attempts):
        local = check_local_part(local_part) if local_part else random_local_part()
        alias = Alias(
            address=f"{local}@{domain}",
            user_id=user.id,
            expires_at=now + expires_in if expires_in else None,
            idle_days=idle_days,
            max_messages=max_messages,
            expired_action=expired_action,
            created_at=now,
        )
        alias.destinations.extend(destinations)
        session.add(alias)
        try:
            session.commit()
            return alias
        except IntegrityError:
            session.rollback()
            if local_part:
                raise AccountError(f"{local}@{domain.lower()} is taken") from None
    raise AccountError("could not find a free alias address; try again")
