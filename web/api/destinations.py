"""``/api/v1/destinations``: the caller's real mailboxes, as the pages offer them."""

from __future__ import annotations

from flask import Response, jsonify

from models import Destination
from web.api.blueprint import bp
from web.api.common import ApiError, body, destination_json, object_id, string, user
from web.db import services, session
from web.mailer import MailNotSent
from web.services import destinations as service

EMAIL_MAX = 254
ID = "<int:destination_id>"


def _owned(destination_id: int) -> Destination:
    return service.owned(session(), user(), object_id(destination_id, "destination"))


def _email(data: dict) -> str:
    email = string(data, "email", EMAIL_MAX)
    if email is None:
        raise ApiError(400, "invalid_request", "email is required.")
    return email


def _added_unsent(exc: MailNotSent, done: str = "added") -> ApiError:
    return ApiError(
        exc.status,
        exc.code,
        f"The destination was {done}, but its verification link could not be "
        "sent: the mail service is not available. POST .../resend later.",
    )


@bp.get("/destinations")
def destinations_list():
    return jsonify({"items": [destination_json(d) for d in service.listed(session(), user())]})


@bp.post("/destinations")
def destinations_create():
    try:
        destination = service.add(services(), session(), user(), _email(body({"email"})))
    except MailNotSent as exc:
        raise _added_unsent(exc) from None
    return jsonify(destination_json(destination)), 201


@bp.get(f"/destinations/{ID}")
def destinations_get(destination_id: int):
    return jsonify(destination_json(_owned(destination_id)))


@bp.patch(f"/destinations/{ID}")
def destinations_update(destination_id: int):
    destination = _owned(destination_id)
    try:
        changed = service.change(services(), session(), user(), destination, _email(body({"email"})))
    except MailNotSent as exc:
        raise _added_unsent(exc, "changed") from None
    return jsonify(destination_json(changed))


@bp.delete(f"/destinations/{ID}")
def destinations_delete(destination_id: int):
    service.delete(session(), _owned(destination_id))
    return Response(status=204)


@bp.post(f"/destinations/{ID}/resend")
def destinations_resend(destination_id: int):
    destination = _owned(destination_id)
    if destination.is_verified:
        raise ApiError(409, "already_verified", f"{destination.email} is already verified.")
    service.send_verification(services(), user(), destination)
    return jsonify(destination_json(destination)), 202


@bp.post(f"/destinations/{ID}/resume")
def destinations_resume(destination_id: int):
    destination = _owned(destination_id)
    if not destination.is_paused:
        raise ApiError(409, "not_paused", f"{destination.email} is not paused.")
    return jsonify(destination_json(service.resume(session(), destination)))
