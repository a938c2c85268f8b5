"""Two-factor sign-in in the web app: set it up on the account page, and the second sign-in step.

The rules are in forwarder/accounts/two_factor.py (the operator CLI shares them). Here:

- the account page's section: set up TOTP (the password again, then a QR code drawn as inline SVG
  by segno, the ``otpauth://`` URI as text beside it, and a code to confirm), turn it off, make new
  recovery codes (each asks for the password); turning it on ends every other session;
- the second step of signing in. After a right password for a user who has a second factor,
  :func:`begin` keeps a *pending* state in the session cookie instead of signing in: a token
  signed with the app's key (its own salt), valid :data:`PENDING_MAX_AGE` seconds, naming the user
  and a fingerprint of their password hash and second factors. :func:`pending_user` checks all of
  it against the database on each request, so a password change or a 2FA reset voids it.
  ``/signin/verify`` then takes a TOTP code or a recovery code; each guess is counted like a
  password guess: per client and address, per client, and by a per-account backoff of its own
  (:data:`SECOND_STEP`), which a right password does not reset.

Passkeys (web/passkeys.py) finish the same step with :func:`pending_user` and :func:`complete`.

A password reset by mail for such an account passes the same step first (``purpose="reset"``):
:func:`complete` then signs nobody in but marks the reset link as passed (:data:`RESET_PASSED_KEY`),
and only then does web/auth.py take the new password.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import segno
from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask import session as flask_session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from werkzeug.wrappers import Response

from forwarder.accounts import sessions
from forwarder.accounts import two_factor as rules
from forwarder.errors import SettingsError
from models import User
from web import devices, ratelimit
from web.db import runtime, session
from web.notices import NoticeEvent, notify
from web.security import current_session, login_required, sign_in, signed_in_user
from web.services import account as account_service
from web.services.errors import ServiceError

bp = Blueprint("two_factor", __name__)

PENDING_KEY = "signin_pending"
PENDING_MAX_AGE = 5 * 60
#: The reset token whose second step was passed in this browser (web/auth.py's reset form).
RESET_PASSED_KEY = "reset_second_factor"
SETUP_KEY = "totp_setup"
SETUP_MAX_AGE = 15 * 60
#: The per-account backoff of second-step guesses is kept under this prefix of the address, apart
#: from the password's (which a right password resets).
SECOND_STEP = "second-step:"


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _fingerprint(user: User) -> str:
    """Changes when the password or the TOTP secret does: a pending sign-in made before dies."""
    key = ("othermail-signin-pending:" + current_app.config["SECRET_KEY"]).encode()
    material = f"{user.id}:{user.password_hash or ''}:{user.totp_secret or ''}".encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:32]


def _sealer() -> Any:
    try:
        return runtime().sealer
    except SettingsError as exc:
        raise ServiceError("no_keys", f"Two-factor sign-in cannot be set up here: {exc}", 503) from None


def _client() -> str:
    return ratelimit.client_key(request.remote_addr)


# ------------------------------------------------------------------------------ the second step


def begin(user: User, target: str | None, *, reset_token: str | None = None) -> Response:
    """After a right password (or with a password reset link, ``reset_token``): the pending state,
    and on to ``/signin/verify`` (nobody signed in)."""
    data = {"uid": user.id, "fp": _fingerprint(user), "reset": reset_token}
    flask_session[PENDING_KEY] = _serializer("othermail-signin-pending").dumps(data)
    flask_session["signin_next"] = target or ""
    return redirect(url_for("two_factor.verify"))


def _pending_data() -> dict[str, Any] | None:
    token = flask_session.get(PENDING_KEY)
    if not isinstance(token, str):
        return None
    try:
        data = _serializer("othermail-signin-pending").loads(token, max_age=PENDING_MAX_AGE)
    except BadSignature:  # SignatureExpired too
        return None
    return data if isinstance(data, dict) else None


def _pending_reset() -> str | None:
    """The reset token the pending step is for; None for a sign-in."""
    data = _pending_data()
    reset = data.get("reset") if data else None
    return reset if isinstance(reset, str) else None


def pending_user() -> User | None:
    """The user whose password was right moments ago and who still needs the second step, or None
    (no pending state, older than :data:`PENDING_MAX_AGE`, or the account changed since)."""
    data = _pending_data()
    if data is None:
        return None
    user = session().get(User, data.get("uid"))
    if user is None or user.deleted_at is not None or not rules.required(session(), user):
        return None
    if not hmac.compare_digest(str(data.get("fp")), _fingerprint(user)):
        return None
    return user


def complete(user: User, *, as_json: bool = False) -> Response:
    """The second step succeeded: sign in, as a password sign-in without 2FA does; or, for a
    password reset, no sign-in but back to the reset form, which now takes the new password."""
    from web.auth import _safe_next

    device = devices.device_for(user.email)
    ratelimit.signin_succeeded(SECOND_STEP + user.email, device)
    reset = _pending_reset()
    if reset is not None:
        flask_session.pop(PENDING_KEY, None)
        flask_session[RESET_PASSED_KEY] = reset
        form = url_for("auth.reset_form")
        return jsonify(redirect=form) if as_json else redirect(form)
    target = _safe_next(flask_session.get("signin_next"))
    sign_in(user)  # clears the cookie's session: the pending state goes with it
    if device is None:  # a browser this account has not seen
        notify(user, NoticeEvent.NEW_SIGNIN)
    response = jsonify(redirect=target) if as_json else redirect(target)
    devices.remember(response, user.email)  # type: ignore[arg-type]  # flask's redirect makes a flask Response
    return response


def _expired() -> Response:
    flask_session.pop(PENDING_KEY, None)
    flash("Your sign-in took too long. Sign in again.")
    return redirect(url_for("auth.signin"))


def _verify_page(user: User, status: int = 200, error: str | None = None) -> tuple[str, int]:
    methods = {"totp": rules.totp_enabled(user), "passkey": rules.has_passkeys(session(), user), "recovery": True}
    purpose = "reset" if _pending_reset() is not None else "signin"
    return render_template("auth/verify.html", methods=methods, purpose=purpose, error=error), status


def _slow_down(wait: int) -> tuple[str, int]:
    when = f"{max(1, wait // 60)} minute(s)" if wait >= 60 else f"{wait} second(s)"
    return render_template("error.html", title="Slow down", message=f"Too many wrong codes. Try again in {when}."), 429


def _limited(user: User) -> tuple[str, int] | None:
    """Each guess counts as a password guess does: per client and address, per client, and a
    per-account backoff (a browser with a device cookie for the account waits on its own)."""
    client = _client()
    for name, who in (("signin", f"{client}:{user.email}"), ("signin-ip", client)):
        wait = ratelimit.hit(name, who)
        if wait is not None:
            return _slow_down(wait)
    wait = ratelimit.claim_signin(SECOND_STEP + user.email, devices.device_for(user.email))
    return _slow_down(wait) if wait is not None else None


@bp.route("/signin/verify", methods=["GET", "POST"])
def verify():
    user = pending_user()
    if user is None:
        return _expired()
    if request.method == "GET":
        return _verify_page(user)
    limited = _limited(user)
    if limited:
        return limited
    method = request.form.get("method", "totp")
    code = request.form.get("code", "")
    if method == "recovery":
        if rules.use_recovery_code(session(), user, code):
            done = "Recovery code accepted" if _pending_reset() is not None else "Signed in with a recovery code"
            response = complete(user)
            notify(user, NoticeEvent.RECOVERY_CODE_USED)
            left = rules.recovery_codes_left(session(), user)
            flash(f"{done}; it cannot be used again. {left} left.")
            return response
        return _verify_page(user, 401, "That recovery code is not right, or was used already.")
    if rules.verify_totp(session(), user, runtime().sealer, code):
        return complete(user)
    return _verify_page(user, 401, "That code is not right. Wait for a new code and try it.")


# ------------------------------------------------------------------------------ the account page


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"two_factor_status": _status}  # a callable: only the account page looks it up


def _status() -> dict[str, Any]:
    user = signed_in_user()
    return {
        "totp": rules.totp_enabled(user),
        "required": rules.required(session(), user),
        "codes_left": rules.recovery_codes_left(session(), user),
    }


def _account_page(status: int, error: str) -> Any:
    from web import account  # the account page renders its sections, this one included

    return account._page(status, error=error)


def password_refused(user: User) -> ServiceError | None:
    """The form's ``password`` again, counted with the account page's other checks per account;
    why it is refused, or None. (The tokens page asks with it too.)"""
    if ratelimit.hit("signin", f"account:{user.id}") is not None:
        return ServiceError("rate_limited", "Too many attempts. Try again later.", 429)
    try:
        account_service.check_password(user, request.form.get("password", ""))
    except ServiceError as exc:
        return exc
    return None


def _check_password(user: User) -> tuple[str, int] | None:
    """The password again; the account page to show if it is refused."""
    refused = password_refused(user)
    return _account_page(refused.status, refused.message) if refused else None


def qr_svg(uri: str) -> Markup:
    """The QR code of ``uri`` as inline SVG (no request, no data: URL; the CSP holds as it is)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=4, dark="#000", light="#fff", svgclass="qr")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))


def _setup_page(user: User, secret: str, status: int = 200, error: str | None = None) -> tuple[str, int]:
    uri = rules.provisioning_uri(secret, user.email)
    page = render_template("account/two_factor_setup.html", qr=qr_svg(uri), uri=uri, key=grouped(secret), error=error)
    return page, status


def grouped(secret: str) -> str:
    """The key in groups of four, as a person types it from a phone's screen (the apps skip spaces;
    the URI keeps it whole)."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _setup_ticket(user: User) -> str:
    this = current_session()
    return _serializer("othermail-totp-setup").dumps({"uid": user.id, "sid": this.id if this else None})


def _setup_allowed(user: User) -> bool:
    """The secret shown only to the session that gave the password, for :data:`SETUP_MAX_AGE`."""
    this = current_session()
    try:
        data = _serializer("othermail-totp-setup").loads(flask_session.get(SETUP_KEY, ""), max_age=SETUP_MAX_AGE)
    except BadSignature:
        return False
    return data == {"uid": user.id, "sid": this.id if this else None}


@bp.get("/account/two-factor/setup")
@bp.get("/account/two-factor/enable")
@bp.get("/account/two-factor/disable")
@bp.get("/account/two-factor/recovery-codes")
@login_required
def back_to_account():
    """These pages are the answers to the account page's forms: a reload, Back or a typed address
    (a GET) goes to the account page's section, where each form starts, rather than to a 405."""
    return redirect(url_for("account.index", _anchor="two-factor"))


@bp.post("/account/two-factor/setup")
@login_required
def setup():
    user = signed_in_user()
    refused = _check_password(user)
    if refused:
        return refused
    try:
        secret = rules.start_enrolment(session(), user, _sealer())
    except ServiceError as exc:
        return _account_page(exc.status, exc.message)
    flask_session[SETUP_KEY] = _setup_ticket(user)
    return _setup_page(user, secret)


@bp.post("/account/two-factor/enable")
@login_required
def enable():
    """The code that proves the app holds the secret: two-factor sign-in is on, the recovery codes
    are shown (once), and every other session ends."""
    user = signed_in_user()
    secret = rules.enrolling_secret(user, _sealer()) if _setup_allowed(user) else None
    if secret is None:
        flask_session.pop(SETUP_KEY, None)
        return _account_page(409, "Start setting up two-factor sign-in again.")
    if ratelimit.hit("signin", f"account:{user.id}") is not None:
        return _setup_page(user, secret, 429, "Too many attempts. Try again later.")
    try:
        codes = rules.confirm_enrolment(session(), user, _sealer(), request.form.get("code", ""))
    except ServiceError as exc:
        return _setup_page(user, secret, exc.status, exc.message)
    flask_session.pop(SETUP_KEY, None)
    this = current_session()
    sessions.end_all(session(), user, keep=this.id if this else None)
    notify(user, NoticeEvent.TWO_FACTOR_ENABLED)
    return render_template(
        "account/two_factor_codes.html",
        codes=codes,
        message="Two-factor sign-in is on. Other sessions were signed out.",
    )


@bp.post("/account/two-factor/disable")
@login_required
def disable():
    user = signed_in_user()
    refused = _check_password(user)
    if refused:
        return refused
    rules.disable_totp(session(), user)
    notify(user, NoticeEvent.TWO_FACTOR_DISABLED)
    flash("The authenticator app no longer signs you in.")
    return redirect(url_for("account.index"))


@bp.post("/account/two-factor/recovery-codes")
@login_required
def recovery_codes():
    user = signed_in_user()
    refused = _check_password(user)
    if refused:
        return refused
    if not rules.required(session(), user):
        return _account_page(409, "Turn two-factor sign-in on first.")
    codes = rules.new_recovery_codes(session(), user)
    notify(user, NoticeEvent.RECOVERY_CODES_REGENERATED)
    return render_template(
        "account/two_factor_codes.html", codes=codes, message="New recovery codes; the old ones no longer work."
    )
