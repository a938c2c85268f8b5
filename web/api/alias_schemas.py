"""The API's alias schemas: the bodies that create and change one, the alias with its state, a page
of them, and an alias's activity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

import web.api.common as common
from models import SENDER_MODES, Alias, limits
from web.api.schemas import (
    COUNT,
    ID,
    OPTIONAL_COUNT,
    Body,
    Bool,
    Enum,
    Field,
    Ids,
    Inline,
    Int,
    ListOf,
    Resource,
    Str,
    Time,
    by_name,
)
from web.services import activity
from web.services import aliases as alias_service

LABEL_MAX = limits.LABEL_MAX_LENGTH
NOTE_MAX = limits.NOTE_MAX_LENGTH
LOCAL_PART_MAX = limits.LOCAL_PART_MAX_LENGTH
DOMAIN_MAX = limits.DOMAIN_MAX_LENGTH
MAX_HOURS = int(alias_service.MAX_DURATION.total_seconds() // 3600)
MIN_HOURS = int(alias_service.MIN_DURATION.total_seconds() // 3600)

LABEL = Str(LABEL_MAX, nullable=True)
DISPLAY_NAME = Str(limits.DISPLAY_NAME_MAX_LENGTH)
SENDER_MODE = Enum(SENDER_MODES)
SENDER_MODE_TEXT = (
    "Who may write: any sender not blocked, or allow-only the allow-listed and known, unblocked contacts."
)
NOTE = Str(NOTE_MAX, nullable=True)
EXPIRED_ACTION = Enum(tuple(alias_service.EXPIRED_ACTIONS))
EXPIRED_ACTION_TEXT = (
    "What an expired alias does with new mail. drop: accepted and dropped silently. "
    "reject: the sender gets a bounce; on a one box the SMTP listener refuses the "
    "mail with 550 5.1.1 at RCPT, on AWS an SES bounce is sent only when the "
    "sender's SPF passed (SPF vouches for the envelope sender the bounce goes to), "
    "and the mail is dropped otherwise (no bounce to a possibly forged sender)."
)
# A request's integers are nullable: null is read as absent (common.integer).
HOURS = Int(MIN_HOURS, MAX_HOURS, nullable=True, code="invalid_expiry")
IDLE = Int(1, alias_service.MAX_IDLE_DAYS, nullable=True, code="invalid_expiry")
MESSAGES = Int(1, alias_service.MAX_MESSAGES, nullable=True, code="invalid_expiry")
HOURS_TEXT = "Expire this many hours from now (1 hour to a year)."
IDLE_TEXT = "Expire after this many days without mail."

# --- requests -------------------------------------------------------------------------------------

# In the order the views checked them before this module existed: the first fault is the one reported.
ALIAS_CREATE = Body(
    "AliasCreate",
    (
        Field("destination_ids", Ids(), "Verified destinations of the caller; omit for all of them."),
        Field(
            "domain",
            Str(DOMAIN_MAX, nullable=True),
            "One of the service's alias domains, or a verified domain of the caller's (/domains); omit for the "
            "service's first.",
        ),
        Field("local_part", Str(LOCAL_PART_MAX, nullable=True), "Omit (or null) for a generated one."),
        Field("label", LABEL),
        Field("note", NOTE),
        Field("expires_in_hours", HOURS, HOURS_TEXT),
        Field("idle_days", IDLE, IDLE_TEXT),
        Field("max_messages", MESSAGES, "Expire after this many messages."),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
    ),
    "Every field is optional: {} creates a generated address on the service's first domain, forwarding to "
    "every verified destination of the caller (400 no_destination without one).",
)
ALIAS_UPDATE = Body(
    "AliasUpdate",
    (
        Field("label", LABEL),
        Field("note", NOTE),
        Field("enabled", Bool()),
        Field("destination_ids", Ids()),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
        Field("expires_in_hours", HOURS, "Extend: expire this many hours from now."),
        Field("idle_days", IDLE, "Extend: a new idle limit, counted from now."),
        Field("extra_messages", MESSAGES, "Extend: allow this many more messages."),
        Field("permanent", Bool(), "true removes every expiry; not with the extend fields."),
        Field("display_name", DISPLAY_NAME, 'The alias\'s name on mail it sends (replies); "" for none.'),
        Field("sender_mode", SENDER_MODE, SENDER_MODE_TEXT),
    ),
    "Only the fields present change. null clears label or note. Checked as a whole: a rejected request "
    "changes nothing.",
)

# --- responses ------------------------------------------------------------------------------------


class AliasNow(NamedTuple):
    """An alias with its state at the moment it is shown."""

    alias: Alias
    state: alias_service.Status

    @classmethod
    def of(cls, alias: Alias, now: datetime) -> AliasNow:
        return cls(alias, alias_service.status(alias, now))


def _alias(name: str) -> Callable[[AliasNow], Any]:
    return lambda shown: getattr(shown.alias, name)


def _seconds(name: str) -> Callable[[AliasNow], int | None]:
    return lambda shown: common.seconds(getattr(shown.state, name))


ALIAS = Resource(
    "Alias",
    by_name(
        Field("id", ID),
        Field("address", Str()),
        Field("enabled", Bool()),
        Field("status", Enum(("active", "off", "expired")), get=lambda shown: shown.state.state),
        Field("status_reason", Str(), "Why it is off or expired; empty when active.", get=lambda s: s.state.reason),
        Field("label", LABEL),
        Field("note", NOTE),
        Field("destination_ids", ListOf(ID), get=lambda shown: sorted(d.id for d in shown.alias.destinations)),
        Field("expired_action", EXPIRED_ACTION, EXPIRED_ACTION_TEXT),
        Field("expires_at", Time(nullable=True)),
        Field("idle_days", Int(nullable=True)),
        Field("max_messages", Int(nullable=True)),
        Field("time_left_seconds", OPTIONAL_COUNT, "Until expires_at; null without one.", get=_seconds("time_left")),
        Field(
            "idle_left_seconds", OPTIONAL_COUNT, "Until idle expiry; null without idle_days.", get=_seconds("idle_left")
        ),
        Field(
            "messages_left",
            OPTIONAL_COUNT,
            "Before max_messages is reached; null without one.",
            get=lambda shown: shown.state.messages_left,
        ),
        Field("message_count", COUNT),
        Field("forwarded_count", COUNT),
        Field("blocked_count", COUNT),
        Field("created_at", Time()),
        Field("last_used_at", Time(nullable=True)),
        Field("display_name", DISPLAY_NAME, "The alias's name on mail it sends (replies)."),
        Field("sender_mode", SENDER_MODE, SENDER_MODE_TEXT),
        get=_alias,
    ),
)
ALIAS_PAGE = Resource(
    "AliasPage",
    by_name(
        Field("items", ListOf(ALIAS)),
        Field("page", Int(1)),
        Field("per_page", Int(1, common.MAX_PER_PAGE)),
        Field("total", COUNT),
        get=itemgetter,
    ),
)

DELIVERY = Resource(
    "Delivery",
    by_name(
        Field("id", Int()),
        Field("outcome", Str()),
        Field("blocked", Bool(), get=lambda delivery: delivery.outcome in activity.BLOCKED),
        Field("reason", Str()),
        Field("mail_from", Str(nullable=True)),
        Field("subject", Str(nullable=True)),
        Field("destination_id", Int(nullable=True)),
        Field("received_at", Time(nullable=True)),
        Field("created_at", Time()),
    ),
)
ACTIVITY = Resource(
    "Activity",
    by_name(
        Field("items", ListOf(DELIVERY)),
        Field(
            "totals",
            Inline(Resource("Totals", by_name(Field("forwarded", COUNT), Field("blocked", COUNT), get=itemgetter))),
        ),
        get=itemgetter,
    ),
)
