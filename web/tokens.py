"""Personal API tokens: list them, create one (its secret is shown this once), revoke one."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from forwarder.accounts import tokens as service
from models import ApiToken, utcnow
from web import two_factor
from web.db import session
from web.notices import NoticeEvent, notify
from web.security import login_required, signed_in_user
from web.services.errors import ServiceError

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")

#: What the form offers: days until the token expires ("" for never).
EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "one year"), ("", "never")]


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(
        "tokens/index.html",
        tokens=service.listed(session(), signed_in_user()),
        now=utcnow(),
        expiry_choices=EXPIRY_CHOICES,
        **context,
    ), status


@bp.get("")
@login_required
def index():
    return _page()


@bp.post("")
@login_required
def create():
    """The password again first (counted with the account page's checks): a session taken over
    must not be enough to mint a lasting token."""
    name = request.form.get("name", "")
    refused = two_factor.password_refused(signed_in_user())
    if refused:
        return _page(refused.status, error=refused.message, name=name)
    scope = request.form.get("scope", "read")
    raw_expiry = request.form.get("expires_in", "").strip()
    try:
        expires_in = int(raw_expiry) if raw_expiry else None
    except ValueError:
        return _page(400, error="Choose when the token expires.", name=name)
    try:
        token, secret = service.create(session(), signed_in_user(), name, scope, expires_in)
    except ServiceError as exc:
        return _page(exc.status, error=exc.message, name=name)
    expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "does not expire"
    notify(signed_in_user(), NoticeEvent.API_TOKEN_CREATED, detail=f"Scope: {token.scope}; it {expiry}.")
    return _page(201, created=token, secret=secret)


@bp.post("/<int:token_id>/revoke")
@login_required
def revoke(token_id: int):
    try:
        token: ApiToken = service.owned(session(), signed_in_user(), token_id)
    except ServiceError:
        abort(404)
    service.revoke(session(), token)
    flash(f"Token “{token.name}” ({token.prefix}…) was revoked; it no longer works.")
    return redirect(url_for("tokens.index"))
