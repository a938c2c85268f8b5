"""``/api/v1/destinations``: the caller's real mailboxes, as the pages offer them."""

from __future__ import annotations

from flask import Response, jsonify

from models import Destination
from web.api.blueprint import bp
from web.api.common import ApiError, object_id, user
from web.api.destination_schemas import DESTINATION, DESTINATION_INPUT, DESTINATION_LIST
from web.api.operations import operation, request_body
from web.db import services, session
from web.mailer import MailNotSent
from web.services import destinations as service

ID = "<int:destination_id>"


def _owned(destination_id: int) -> Destination:
    return service.owned(session(), user(), object_id(destination_id, "destination"))


def _email() -> str:
    email: str = request_body()["email"]  # required: never None
    return email


def _added_unsent(exc: MailNotSent, done: str = "added") -> ApiError:
    return ApiError(
        exc.status,
        exc.code,
        f"The destination was {done}, but its verification link could not be "
        "sent: the mail service is not available. POST .../resend later.",
    )


@bp.get("/destinations")
@operation("Your destinations.", 200, "All of them.", response=DESTINATION_LIST)
def destinations_list():
    return jsonify(DESTINATION_LIST.dump(service.listed(session(), user())))


@bp.post("/destinations")
@operation(
    "Add a destination and email it a verification link.",
    201,
    "Added, unverified.",
    response=DESTINATION,
    errors=(409, 503),
    body=DESTINATION_INPUT,
)
def destinations_create():
    try:
        destination = service.add(services(), session(), user(), _email())
    except MailNotSent as exc:
        raise _added_unsent(exc) from None
    return jsonify(DESTINATION.dump(destination)), 201


@bp.get(f"/destinations/{ID}")
@operation("One destination.", 200, "It.", response=DESTINATION)
def destinations_get(destination_id: int):
    return jsonify(DESTINATION.dump(_owned(destination_id)))


@bp.patch(f"/destinations/{ID}")
@operation(
    "Change its address; it is unverified until the new link is followed.",
    200,
    "Changed.",
    response=DESTINATION,
    errors=(409, 503),
    body=DESTINATION_INPUT,
)
def destinations_update(destination_id: int):
    destination = _owned(destination_id)
    try:
        changed = service.change(services(), session(), user(), destination, _email())
    except MailNotSent as exc:
        raise _added_unsent(exc, "changed") from None
    return jsonify(DESTINATION.dump(changed))


@bp.delete(f"/destinations/{ID}")
@operation("Remove it; nothing is forwarded there any more.", 204, "Done; no body.")
def destinations_delete(destination_id: int):
    service.delete(session(), _owned(destination_id))
    return Response(status=204)


@bp.post(f"/destinations/{ID}/resend")
@operation("Email a new verification link.", 202, "Sent.", response=DESTINATION, errors=(409, 503))
def destinations_resend(destination_id: int):
    destination = _owned(destination_id)
    if destination.is_verified:
        raise ApiError(409, "already_verified", f"{destination.email} is already verified.")
    service.send_verification(services(), user(), destination)
    return jsonify(DESTINATION.dump(destination)), 202


@bp.post(f"/destinations/{ID}/resume")
@operation("Forward to a paused destination again.", 200, "Resumed.", response=DESTINATION, errors=(409,))
def destinations_resume(destination_id: int):
    destination = _owned(destination_id)
    if not destination.is_paused:
        raise ApiError(409, "not_paused", f"{destination.email} is not paused.")
    return jsonify(DESTINATION.dump(service.resume(session(), destination)))
