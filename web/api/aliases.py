"""``/api/v1/aliases``: list, search, create, inspect, change, extend and delete aliases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, jsonify, request

from models import Alias, utcnow
from web.api.blueprint import bp
from web.api.common import (
    MAX_PAGE,
    MAX_PER_PAGE,
    alias_json,
    body,
    boolean,
    choice,
    delivery_json,
    id_list,
    integer,
    invalid,
    object_id,
    query_int,
    string,
    user,
)
from web.db import services, session
from web.services import activity
from web.services import aliases as service

ID = "<int:alias_id>"
LABEL_MAX = 100
NOTE_MAX = 2000
LOCAL_PART_MAX = 64
DOMAIN_MAX = 253
SEARCH_MAX = 100
MAX_HOURS = int(service.MAX_DURATION.total_seconds() // 3600)
MIN_HOURS = int(service.MIN_DURATION.total_seconds() // 3600)
ACTIVITY_MAX = 200
CREATE_FIELDS = {
    "local_part",
    "domain",
    "destination_ids",
    "label",
    "note",
    "expires_in_hours",
    "idle_days",
    "max_messages",
    "expired_action",
}
UPDATE_FIELDS = {
    "label",
    "note",
    "enabled",
    "destination_ids",
    "expired_action",
    "expires_in_hours",
    "idle_days",
    "extra_messages",
    "permanent",
}


def _owned(alias_id: int) -> Alias:
    return service.owned(session(), user(), object_id(alias_id, "alias"))


def _hours(data: dict[str, Any]) -> timedelta | None:
    hours = integer(data, "expires_in_hours", MIN_HOURS, MAX_HOURS, "invalid_expiry")
    return timedelta(hours=hours) if hours is not None else None


def _idle(data: dict[str, Any]) -> int | None:
    return integer(data, "idle_days", 1, service.MAX_IDLE_DAYS, "invalid_expiry")


@bp.get("/aliases")
def aliases_list():
    page = query_int("page", 1, 1, MAX_PAGE)
    per_page = query_int("per_page", 50, 1, MAX_PER_PAGE)
    search = request.args.get("q", "")
    if len(search) > SEARCH_MAX or "\x00" in search:
        raise invalid(f"q may have at most {SEARCH_MAX} characters and no NUL.")
    rows, total = service.listed(session(), user(), search, page, per_page)
    now = utcnow()
    return jsonify({"items": [alias_json(a, now) for a in rows], "page": page, "per_page": per_page, "total": total})


@bp.post("/aliases")
def aliases_create():
    data = body(CREATE_FIELDS)
    alias = service.create(
        services(),
        session(),
        user(),
        destination_ids=id_list(data, "destination_ids"),  # absent: every verified destination
        domain=string(data, "domain", DOMAIN_MAX, nullable=True) or None,
        local_part=string(data, "local_part", LOCAL_PART_MAX, nullable=True) or None,
        label=string(data, "label", LABEL_MAX, nullable=True) or "",
        note=string(data, "note", NOTE_MAX, nullable=True) or "",
        duration=_hours(data),
        idle_days=_idle(data),
        max_messages=integer(data, "max_messages", 1, service.MAX_MESSAGES, "invalid_expiry"),
        expired_action=choice(data, "expired_action", service.EXPIRED_ACTIONS) or "drop",
    )
    return jsonify(alias_json(alias, utcnow())), 201


@bp.get(f"/aliases/{ID}")
def aliases_get(alias_id: int):
    return jsonify(alias_json(_owned(alias_id), utcnow()))


@bp.patch(f"/aliases/{ID}")
def aliases_update(alias_id: int):
    alias = _owned(alias_id)
    data = body(UPDATE_FIELDS)
    # Every field is checked before anything changes, so a bad request changes nothing.
    label = string(data, "label", LABEL_MAX, nullable=True)
    note = string(data, "note", NOTE_MAX, nullable=True)
    enabled = boolean(data, "enabled")
    destination_ids = id_list(data, "destination_ids")
    expired_action = choice(data, "expired_action", service.EXPIRED_ACTIONS)
    duration, idle_days = _hours(data), _idle(data)
    extra = integer(data, "extra_messages", 1, service.MAX_MESSAGES, "invalid_expiry")
    permanent = boolean(data, "permanent")
    extending = duration is not None or idle_days is not None or extra is not None
    if permanent and extending:
        raise invalid("permanent cannot be combined with expires_in_hours, idle_days or extra_messages.")
    service.check_extension(duration, idle_days, extra)
    service.update(
        session(),
        user(),
        alias,
        label=label,
        note=note,
        enabled=enabled,
        destination_ids=destination_ids,
        expired_action=expired_action,
    )
    if extending:
        service.extend(session(), alias, duration=duration, idle_days=idle_days, extra_messages=extra)
    if permanent:
        service.make_permanent(session(), alias)
    return jsonify(alias_json(alias, utcnow()))


@bp.delete(f"/aliases/{ID}")
def aliases_delete(alias_id: int):
    service.delete(session(), _owned(alias_id))
    return Response(status=204)


@bp.get(f"/aliases/{ID}/activity")
def aliases_activity(alias_id: int):
    alias = _owned(alias_id)
    limit = query_int("limit", 50, 1, ACTIVITY_MAX)
    db = session()
    return jsonify(
        {"items": [delivery_json(d) for d in activity.recent(db, alias, limit)], "totals": activity.totals(db, alias)}
    )
