"""Passkeys in the web app: add and remove them on the account page, sign in with one.

The ceremonies themselves are in web/services/passkeys.py. A ceremony's server half is kept in the
signed session cookie under ``passkey`` and taken out by the answer (one answer per challenge,
checked in the database too). The browser half is web/static/passkeys.js: the forms here carry
their URLs and options in data attributes, the answers come back as JSON with the CSRF token in
the ``X-CSRFToken`` header, and each JSON answer says where to go next or what went wrong.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask import session as flask_session

from forwarder.accounts import sessions
from forwarder.accounts import two_factor as two_factor_rules
from forwarder.errors import SettingsError
from models import User
from models.two_factor import PASSKEY_NAME_MAX_LENGTH
from web import devices, links, ratelimit
from web.db import session
from web.notices import NoticeEvent, notify
from web.security import current_session, login_required, sign_in, signed_in_user
from web.services import account as account_service
from web.services import passkeys as service
from web.services.errors import ServiceError

bp = Blueprint("passkeys", __name__)
CEREMONY_KEY = "passkey"
#: The first second factor was just added as a passkey: its recovery codes are yet to be shown.
CODES_DUE_KEY = "passkey_codes_due"


def relying_party() -> service.RelyingParty | None:
    """The site passkeys belong to (the configured public address), or None where they cannot work."""
    try:
        return service.relying_party(links.public_base())
    except SettingsError:
        return None


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    # callables, so only the pages that show passkeys look them up
    return {
        "passkeys_available": lambda: relying_party() is not None,
        "account_passkeys": _account_passkeys,
        "passkey_name_max": PASSKEY_NAME_MAX_LENGTH,
    }


def _account_passkeys() -> list[Any]:
    return service.listed(session(), signed_in_user())


def _json_error(message: str, status: int, retry_after: int | None = None):
    response = jsonify(error=message)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _limited(name: str, who: str):
    wait = ratelimit.hit(name, who)
    if wait is None:
        return None
    return _json_error(f"Too many attempts. Try again in {max(1, wait // 60)} minute(s).", 429, wait)


def _client() -> str:
    return ratelimit.client_key(request.remote_addr)


def _keep(ceremony: service.Ceremony) -> None:
    flask_session[CEREMONY_KEY] = ceremony.to_dict()


def _take() -> service.Ceremony | None:
    return service.Ceremony.from_dict(flask_session.pop(CEREMONY_KEY, None))


def _answer() -> object:
    body = request.get_json(silent=True)
    return body.get("credential") if isinstance(body, dict) else None


def _account_page(status: int, error: str):
    from web import account  # the account page renders its own sections, this one included

    return account._page(status, error=error)


# ------------------------------------------------------------------------------ the account page


@bp.get("/account/passkeys/new")
@bp.get("/account/passkeys")
@login_required
def back_to_account():
    """The answers to the account page's forms: a GET (reload, Back, a typed address) goes to the
    account page's section, where the form starts, rather than to a 405."""
    return redirect(url_for("account.index", _anchor="passkeys"))


@bp.post("/account/passkeys/new")
@login_required
def new():
    """The password again and a name; then the page whose button asks the authenticator."""
    user = signed_in_user()
    if ratelimit.hit("signin", f"account:{user.id}") is not None:  # counted with the account page's checks
        return _account_page(429, "Too many attempts. Try again later.")
    rp = relying_party()
    if rp is None:
        return _account_page(400, "Passkeys need the site to be reached at a domain name.")
    try:
        account_service.check_password(user, request.form.get("password", ""))
        options, ceremony = service.registration_options(
            session(), rp, user, current_app.config["SECRET_KEY"], request.form.get("name", "")
        )
    except ServiceError as exc:
        return _account_page(exc.status, exc.message)
    _keep(ceremony)
    return render_template("account/passkeys_new.html", options=options, name=ceremony.name)


@bp.post("/account/passkeys")
@login_required
def finish():
    """The authenticator's new credential (JSON); adding a passkey turns two-factor sign-in on, so
    every other session ends."""
    user = signed_in_user()
    rp = relying_party()
    if rp is None:
        return _json_error("Passkeys need the site to be reached at a domain name.", 400)
    db = session()
    first = not two_factor_rules.required(db, user)  # no app, no passkey: no recovery codes either
    try:
        ceremony = service.consume(db, _take(), "register", user)
        row = service.finish_registration(db, rp, ceremony, user, _answer())
    except ServiceError as exc:
        return _json_error(exc.message, exc.status)
    this = current_session()
    sessions.end_all(db, user, keep=this.id if this else None)
    notify(user, NoticeEvent.PASSKEY_ADDED)
    if first:
        flask_session[CODES_DUE_KEY] = {"uid": user.id, "name": row.name}
        return jsonify(redirect=url_for("passkeys.first_recovery_codes"))
    hint = "" if two_factor_rules.recovery_codes_left(db, user) else " Make recovery codes too, in case you lose it."
    flash(f"Passkey “{row.name}” added. Other sessions were signed out.{hint}")
    return jsonify(redirect=url_for("account.index"))


@bp.get("/account/passkeys/recovery-codes")
@login_required
def first_recovery_codes():
    """Where the first second factor's page goes (it was a passkey): the recovery codes, made here
    and shown once, as turning the app on shows them. Only once, only to the session that added it,
    and only while the account has no recovery code (a second visit goes to the account page)."""
    user = signed_in_user()
    due = flask_session.pop(CODES_DUE_KEY, None)
    db = session()
    if (
        not isinstance(due, dict)
        or due.get("uid") != user.id
        or not two_factor_rules.required(db, user)
        or two_factor_rules.has_recovery_codes(db, user)
    ):
        return redirect(url_for("account.index"))
    codes = two_factor_rules.new_recovery_codes(db, user)
    return render_template(
        "account/two_factor_codes.html",
        codes=codes,
        message=f"Passkey “{due.get('name', '')}” added: two-factor sign-in is on. Other sessions were signed out.",
    )


@bp.get("/account/passkeys/<int:passkey_id>/delete")
@login_required
def confirm_remove(passkey_id: int):
    user = signed_in_user()
    try:
        passkey = service.owned(session(), user, passkey_id)
    except ServiceError:
        abort(404)
    last = len(service.listed(session(), user)) == 1
    return render_template("account/passkeys_remove.html", passkey=passkey, last=last)


@bp.post("/account/passkeys/<int:passkey_id>/delete")
@login_required
def remove(passkey_id: int):
    user = signed_in_user()
    if ratelimit.hit("signin", f"account:{user.id}") is not None:
        return _account_page(429, "Too many attempts. Try again later.")
    try:
        service.owned(session(), user, passkey_id)
        account_service.check_password(user, request.form.get("password", ""))
        name = service.remove(session(), user, passkey_id)
    except ServiceError as exc:
        return _account_page(exc.status, exc.message)
    notify(user, NoticeEvent.PASSKEY_REMOVED)
    flash(f"Passkey “{name}” removed.")
    return redirect(url_for("account.index"))


# ------------------------------------------------------------------------------ signing in


@bp.post("/signin/passkey/options")
def signin_options():
    """Options to sign in with any passkey on this device, without a password."""
    limited = _limited("signin-ip", _client())
    if limited:
        return limited
    rp = relying_party()
    if rp is None:
        return _json_error("Passkeys need the site to be reached at a domain name.", 400)
    options, ceremony = service.authentication_options(session(), rp, "signin")
    _keep(ceremony)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/signin/passkey")
def signin():
    """The authenticator's answer: signed in, with the same limits as a password sign-in."""
    client = _client()
    limited = _limited("signin-ip", client)
    if limited:
        return limited
    rp = relying_party()
    if rp is None:
        return _json_error("Passkeys need the site to be reached at a domain name.", 400)
    db = session()
    try:
        ceremony = service.consume(db, _take(), "signin")
        row = service.finish_authentication(db, rp, ceremony, _answer())
    except ServiceError as exc:
        return _json_error(exc.message, exc.status)
    user = row.user
    limited = _limited("signin", f"{client}:{user.email}")
    if limited:
        return limited
    return _signed_in(user)


def _signed_in(user: User):
    from web.auth import _safe_next

    device = devices.device_for(user.email)
    sign_in(user)
    if device is None:  # as a password sign-in: a browser this account has not seen
        notify(user, NoticeEvent.NEW_SIGNIN)
    body = request.get_json(silent=True)
    target = body.get("next") if isinstance(body, dict) and isinstance(body.get("next"), str) else None
    response = jsonify(redirect=_safe_next(target))
    devices.remember(response, user.email)
    return response


# ------------------------------------------------------------------------------ the second sign-in step


def _pending() -> User | None:
    from web import two_factor

    return two_factor.pending_user()


@bp.post("/signin/verify/passkey/options")
def second_factor_options():
    """Options for the account whose password was right a moment ago: one of its own passkeys."""
    limited = _limited("signin-ip", _client())
    if limited:
        return limited
    user = _pending()
    rp = relying_party()
    if user is None:
        return _json_error("Your sign-in took too long. Sign in again.", 400)
    if rp is None:
        return _json_error("Passkeys need the site to be reached at a domain name.", 400)
    try:
        options, ceremony = service.authentication_options(session(), rp, "second-factor", user)
    except ServiceError as exc:
        return _json_error(exc.message, exc.status)
    _keep(ceremony)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/signin/verify/passkey")
def second_factor():
    """The passkey's answer finishes the sign-in; counted as a code guess on /signin/verify is."""
    from web import two_factor

    user = _pending()
    rp = relying_party()
    if user is None:
        return _json_error("Your sign-in took too long. Sign in again.", 400)
    if rp is None:
        return _json_error("Passkeys need the site to be reached at a domain name.", 400)
    client = _client()
    limited = _limited("signin", f"{client}:{user.email}") or _limited("signin-ip", client)
    if limited:
        return limited
    wait = ratelimit.claim_signin(two_factor.SECOND_STEP + user.email, devices.device_for(user.email))
    if wait is not None:
        return _json_error(f"Too many attempts. Try again in {max(1, wait // 60)} minute(s).", 429, wait)
    db = session()
    try:
        ceremony = service.consume(db, _take(), "second-factor", user)
        service.finish_authentication(db, rp, ceremony, _answer(), user)
    except ServiceError as exc:
        return _json_error(exc.message, exc.status)
    return two_factor.complete(user, as_json=True)
