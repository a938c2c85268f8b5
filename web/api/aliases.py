"""``/api/v1/aliases``: list, search, create, inspect, change, extend and delete aliases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, jsonify

from models import Alias, utcnow
from web.api.alias_schemas import ACTIVITY, ALIAS, ALIAS_CREATE, ALIAS_PAGE, ALIAS_UPDATE, AliasNow
from web.api.blueprint import bp
from web.api.common import MAX_PAGE, MAX_PER_PAGE, invalid, object_id, user
from web.api.operations import QueryInt, QueryText, operation, query, request_body
from web.db import services, session
from web.services import activity
from web.services import aliases as service

ID = "<int:alias_id>"
SEARCH_MAX = 100
ACTIVITY_MAX = 200

PAGING = (
    QueryInt("page", 1, 1, MAX_PAGE, "Page number, from 1."),
    QueryInt("per_page", 50, 1, MAX_PER_PAGE, "Aliases per page."),
    QueryText(
        "q", SEARCH_MAX, "Only aliases whose address, label, note or a destination's address contains this (any case)."
    ),
)
LIMIT = (QueryInt("limit", 50, 1, ACTIVITY_MAX, "How many deliveries, newest first."),)


def _owned(alias_id: int) -> Alias:
    return service.owned(session(), user(), object_id(alias_id, "alias"))


def _hours(data: dict[str, Any]) -> timedelta | None:
    hours = data["expires_in_hours"]
    return timedelta(hours=hours) if hours is not None else None


def _shown(alias: Alias) -> dict[str, Any]:
    return ALIAS.dump(AliasNow.of(alias, utcnow()))


@bp.get("/aliases")
@operation("Your aliases, newest first, a page at a time.", 200, "A page.", response=ALIAS_PAGE, query=PAGING)
def aliases_list():
    args = query()
    rows, total = service.listed(session(), user(), args["q"], args["page"], args["per_page"])
    now = utcnow()
    shown = [AliasNow.of(alias, now) for alias in rows]
    return jsonify(
        ALIAS_PAGE.dump({"items": shown, "page": args["page"], "per_page": args["per_page"], "total": total})
    )


@bp.post("/aliases")
@operation(
    "Create an alias (generated or custom address).", 201, "Created.", response=ALIAS, errors=(409,), body=ALIAS_CREATE
)
def aliases_create():
    data = request_body()
    alias = service.create(
        services(),
        session(),
        user(),
        destination_ids=data["destination_ids"],  # absent: every verified destination
        domain=data["domain"] or None,
        local_part=data["local_part"] or None,
        label=data["label"] or "",
        note=data["note"] or "",
        duration=_hours(data),
        idle_days=data["idle_days"],
        max_messages=data["max_messages"],
        expired_action=data["expired_action"] or "drop",
    )
    return jsonify(_shown(alias)), 201


@bp.get(f"/aliases/{ID}")
@operation("One alias.", 200, "It.", response=ALIAS)
def aliases_get(alias_id: int):
    return jsonify(_shown(_owned(alias_id)))


@bp.patch(f"/aliases/{ID}")
@operation("Change, switch on or off, extend, or make permanent.", 200, "Changed.", response=ALIAS, body=ALIAS_UPDATE)
def aliases_update(alias_id: int):
    alias = _owned(alias_id)
    # Every field is checked before anything changes, so a bad request changes nothing.
    data = request_body()
    duration, idle_days, extra = _hours(data), data["idle_days"], data["extra_messages"]
    extending = duration is not None or idle_days is not None or extra is not None
    if data["permanent"] and extending:
        raise invalid("permanent cannot be combined with expires_in_hours, idle_days or extra_messages.")
    service.check_extension(duration, idle_days, extra)
    if data["display_name"] is not None and not data["display_name"].isprintable():
        raise invalid("display_name may hold no control characters.")
    service.update(
        session(),
        user(),
        alias,
        label=data["label"],
        note=data["note"],
        enabled=data["enabled"],
        destination_ids=data["destination_ids"],
        expired_action=data["expired_action"],
    )
    if extending:
        service.extend(session(), alias, duration=duration, idle_days=idle_days, extra_messages=extra)
    if data["permanent"]:
        service.make_permanent(session(), alias)
    if data["display_name"] is not None or data["sender_mode"] is not None:
        service.set_two_way(
            session(),
            alias,
            display_name=alias.display_name if data["display_name"] is None else data["display_name"],
            sender_mode=data["sender_mode"] or alias.sender_mode,
        )
    return jsonify(_shown(alias))


@bp.delete(f"/aliases/{ID}")
@operation("Delete it; its address is never issued again.", 204, "Done; no body.")
def aliases_delete(alias_id: int):
    service.delete(session(), _owned(alias_id))
    return Response(status=204)


@bp.get(f"/aliases/{ID}/activity")
@operation("What the alias received, newest first, and totals.", 200, "Its deliveries.", response=ACTIVITY, query=LIMIT)
def aliases_activity(alias_id: int):
    alias = _owned(alias_id)
    limit = query()["limit"]
    db = session()
    return jsonify(ACTIVITY.dump({"items": activity.recent(db, alias, limit), "totals": activity.totals(db, alias)}))
