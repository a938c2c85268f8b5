"""The API's destination schemas: the body that adds or changes one, and the responses."""

from __future__ import annotations

from operator import attrgetter

from web.api.schemas import EMAIL_MAX, ID, Body, Bool, Field, ListOf, Resource, Str, Time, by_name

DESTINATION_INPUT = Body("DestinationInput", (Field("email", Str(EMAIL_MAX, format="email"), required=True),))

DESTINATION = Resource(
    "Destination",
    by_name(
        Field("id", ID),
        Field("email", Str()),
        Field("verified", Bool(), get=attrgetter("is_verified")),
        Field("verified_at", Time(nullable=True)),
        Field("created_at", Time()),
        Field(
            "paused",
            Bool(),
            "Mail to it bounced: nothing is forwarded there until it is resumed.",
            get=attrgetter("is_paused"),
        ),
        Field("paused_at", Time(nullable=True)),
        Field("pause_reason", Str(), "Why it was paused; empty when not.", get=lambda d: d.pause_reason or ""),
    ),
)
DESTINATION_LIST = Resource("DestinationList", (Field("items", ListOf(DESTINATION), get=lambda rows: rows),))
