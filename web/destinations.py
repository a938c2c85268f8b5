"""The user's real mailboxes: add one, resend its link, change, resume or delete it, and the link itself.

Mail is only ever forwarded to a verified destination; changing an address makes it unverified
until the new mailbox follows the link sent to it. The verification link works without a session,
since it is often opened on another device; opening it shows a button, and only pressing it (a POST)
verifies, so a mail scanner that fetches the link confirms nothing.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from models import Destination
from web.db import services, session
from web.mailer import MailNotSent
from web.security import login_required, signed_in_user
from web.services import destinations as service
from web.services.errors import ServiceError

bp = Blueprint("destinations", __name__, url_prefix="/destinations")


def _owned(destination_id: int) -> Destination:
    try:
        return service.owned(session(), signed_in_user(), destination_id)
    except ServiceError:
        abort(404)


#: What adding (or changing to) the account's own confirmed address says: no link is sent for it.
_VERIFIED = "{email} is verified (it is your account's confirmed address): forwarding there can start now."


def _index(status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(
        "destinations/index.html", destinations=service.listed(session(), signed_in_user()), **context
    ), status


def _detail(destination: Destination, status: int = 200, **context: object) -> tuple[str, int]:
    aliases = [a for a in destination.aliases if a.deleted_at is None]
    return render_template(
        "destinations/detail.html",
        destination=destination,
        aliases=aliases,
        only=[a for a in aliases if len(a.destinations) == 1],
        **context,
    ), status


@bp.get("/")
@login_required
def index():
    return _index()


@bp.post("/")
@login_required
def add():
    address = request.form.get("email", "")
    try:
        destination = service.add(services(), session(), signed_in_user(), address)
    except MailNotSent as exc:  # added; only its link is missing
        flash(f"Added, but {exc.message[0].lower()}{exc.message[1:]} Use “Resend link” then.")
        return redirect(url_for("destinations.index"))
    except ServiceError as exc:
        return _index(exc.status, error=exc.message, email=address)
    if destination.is_verified:  # the account's own confirmed address: no link was sent
        flash(_VERIFIED.format(email=destination.email))
    else:
        flash(f"We sent a link to {destination.email}. Open it to start forwarding there.")
    return redirect(url_for("destinations.index"))


@bp.get("/<int:destination_id>")
@login_required
def detail(destination_id: int):
    return _detail(_owned(destination_id))


@bp.post("/<int:destination_id>/resend")
@login_required
def resend(destination_id: int):
    destination = _owned(destination_id)
    if destination.is_verified:
        flash(f"{destination.email} is already verified.")
        return redirect(url_for("destinations.index"))
    try:
        service.send_verification(services(), signed_in_user(), destination)
    except ServiceError as exc:
        return _index(exc.status, error=exc.message)
    flash(f"A new link is on its way to {destination.email}.")
    return redirect(url_for("destinations.index"))


@bp.post("/<int:destination_id>/change")
@login_required
def change(destination_id: int):
    destination = _owned(destination_id)
    address, before = request.form.get("email", ""), destination.email
    try:
        changed = service.change(services(), session(), signed_in_user(), destination, address)
    except MailNotSent as exc:  # changed; only its link is missing
        flash(f"Changed, but {exc.message[0].lower()}{exc.message[1:]} Use “Resend link” then.")
        return redirect(url_for("destinations.index"))
    except ServiceError as exc:
        session().refresh(destination)
        return _detail(destination, exc.status, error=exc.message, email=address)
    if changed.email == before:
        flash("That is already the address.")
    elif changed.is_verified:
        flash(_VERIFIED.format(email=changed.email))
    else:
        flash(f"Changed to {changed.email}. Nothing is forwarded there until the link we sent is opened.")
    return redirect(url_for("destinations.index"))


@bp.post("/<int:destination_id>/resume")
@login_required
def resume(destination_id: int):
    destination = _owned(destination_id)
    if not destination.is_paused:
        flash(f"{destination.email} is not paused.")
        return redirect(url_for("destinations.index"))
    service.resume(session(), destination)
    flash(f"Forwarding to {destination.email} resumed. If it bounces again, it is paused again.")
    return redirect(url_for("destinations.index"))


@bp.post("/<int:destination_id>/delete")
@login_required
def delete(destination_id: int):
    destination = _owned(destination_id)
    address = destination.email
    service.delete(session(), destination)
    flash(f"{address} was removed; no mail goes there any more.")
    return redirect(url_for("destinations.index"))


def _link_failed(exc: ServiceError) -> tuple[str, int]:
    titles = {"expired": "Link expired", "stale": "Link out of date", "not_found": "Link not valid"}
    message = (
        exc.message
        if exc.code != "not_found"
        else ("That link is not valid. Copy the whole link from the email, or ask for a new one.")
    )
    return render_template(
        "destinations/verify.html", ok=False, title=titles.get(exc.code, "Link not valid"), message=message
    ), exc.status


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str):
    """GET only asks: mail scanners fetch every link in a message, and must not confirm an address
    on its owner's behalf. The page's button POSTs (with the form's CSRF token), which verifies."""
    db = session()
    try:
        destination = (
            service.verify(services(), db, token) if request.method == "POST" else service.linked(services(), db, token)
        )
    except ServiceError as exc:
        return _link_failed(exc)
    if destination.is_verified:
        return render_template("destinations/verify.html", ok=True, title="Address verified", destination=destination)
    return render_template(
        "destinations/verify.html",
        ok=False,
        confirming=True,
        title="Confirm this address",
        destination=destination,
        token=token,
    )
