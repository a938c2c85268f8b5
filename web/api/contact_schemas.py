"""The API's contact and sender-rule schemas: the bodies that create and change them, and the responses."""

from __future__ import annotations

from operator import attrgetter

from models import RULE_ACTIONS, RULE_KINDS
from web.api.schemas import COUNT, EMAIL_MAX, ID, Body, Bool, Enum, Field, Int, ListOf, Resource, Str, Time, by_name
from web.services import contacts as contact_service

CONTACT_CREATE = Body(
    "ContactCreate",
    (
        Field("address", Str(EMAIL_MAX, format="email"), "Any outside address (not an alias, not yours).", True),
        Field("name", Str(contact_service.NAME_MAX_LENGTH, nullable=True), "Their name, for your eyes."),
    ),
    "Returns the alias's contact for the address, made when new: mail from your mailbox to its reverse_address "
    "leaves from the alias.",
)
CONTACT_UPDATE = Body("ContactUpdate", (Field("blocked", Bool(), "true: drop its mail to the alias.", True),))
RULE_CREATE = Body(
    "RuleCreate",
    (
        Field("action", Enum(RULE_ACTIONS), required=True),
        Field("kind", Enum(RULE_KINDS), "empty-sender takes no value.", True),
        Field("value", Str(EMAIL_MAX, nullable=True), "An address, or a domain (its subdomains match too)."),
    ),
)

CONTACT = Resource(
    "Contact",
    by_name(
        Field("id", ID, get=attrgetter("contact_id")),
        Field("address", Str(), "Their real address."),
        Field("name", Str()),
        Field("reverse_address", Str(), "Write to this from your mailbox to reach them.", get=attrgetter("reverse")),
        Field("origin", Enum(("forward", "user")), "forward: they wrote first; user: you created it."),
        Field("blocked", Bool()),
        Field("forwarded_count", COUNT),
        Field("replied_count", COUNT),
        Field("blocked_count", COUNT),
        Field("last_seen_at", Time(nullable=True)),
        Field("created_at", Time()),
    ),
)
CONTACT_LIST = Resource("ContactList", (Field("items", ListOf(CONTACT), get=lambda rows: rows),))
RULE = Resource(
    "Rule",
    by_name(
        Field("id", ID),
        Field("alias_id", Int(nullable=True), "null: every alias of the account."),
        Field("action", Enum(RULE_ACTIONS)),
        Field("kind", Enum(RULE_KINDS)),
        Field("value", Str()),
    ),
)
RULE_LIST = Resource("RuleList", (Field("items", ListOf(RULE), get=lambda rows: rows),))
