"""The account's own email address: the link mailed at sign-up (GET asks, POST confirms) and the
button that sends it again. See :mod:`web.services.account_email`."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for

from web import devices
from web.db import services, session
from web.security import current_user, login_required, signed_in_user
from web.services import account_email as service
from web.services.errors import ServiceError

bp = Blueprint("email", __name__, url_prefix="/email")
TITLES = {"expired": "Link expired", "stale": "Link out of date", "not_found": "Link not valid"}


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str):
    """Works without a session (the mail is often opened on another device)."""
    db = session()
    confirming = False  # this POST is the one that confirms the address
    try:
        if request.method == "POST":
            user, confirming = service.confirm(services(), db, token)
        else:
            user = service.linked(services(), db, token)
    except ServiceError as exc:
        message = (
            exc.message
            if exc.code != "not_found"
            else ("That link is not valid. Copy the whole link from the email, or ask for a new one.")
        )
        return render_template(
            "email/verify.html", state="failed", title=TITLES.get(exc.code, "Link not valid"), message=message
        ), exc.status
    if service.is_verified(user):
        response = make_response(
            render_template(
                "email/verify.html", state="done", title="Email address confirmed", signed_in=current_user() is not None
            )
        )
        # the browser that confirmed the address is not an unseen device; the link (good for a week)
        # gives no device cookie again: each one would bring its own sign-in backoff (web/devices.py)
        if confirming:
            devices.remember(response, user.email)
        return response
    return render_template("email/verify.html", state="asking", title="Confirm your email address", token=token)


@bp.post("/resend")
@login_required
def resend():
    user = signed_in_user()
    if service.is_verified(user):
        flash("Your email address is already confirmed.")
    else:
        try:
            service.send_verification(services(), user)
        except ServiceError as exc:
            flash(exc.message)
        else:
            flash("We sent a new link to your email address. Open it to confirm the address.")
    return redirect(url_for("destinations.index"))
