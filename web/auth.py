"""Sign up, sign in, sign out, and password reset by email."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import unicodedata
from urllib.parse import unquote, urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask import session as flask_session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from forwarder.accounts import two_factor as two_factor_rules
from models import User, utcnow
from web import devices, mailer, ratelimit, two_factor
from web.db import services, session
from web.notices import NoticeEvent, notify
from web.security import current_user, hash_password, password_problem, sign_in, sign_out, verify_password
from web.services import account as account_service
from web.services import account_email
from web.services.errors import ServiceError

bp = Blueprint("auth", __name__)
logger = logging.getLogger("othermail.web")
RESET_MAX_AGE = 60 * 60


def clean_email(raw: str) -> str | None:
    """A normalized address safe to put in a header, or None (:func:`web.mailer.accepted_address`)."""
    return mailer.accepted_address(raw)


def _client() -> str:
    return ratelimit.client_key(request.remote_addr)  # an IPv6 client by its /64


def _too_many(name: str, who: str) -> tuple[str, int] | None:
    wait = ratelimit.hit(name, who)
    if wait is None:
        return None
    minutes = max(1, wait // 60)
    return render_template(
        "error.html", title="Slow down", message=f"Too many attempts. Try again in {minutes} minute(s)."
    ), 429


def is_local_path(target: str) -> bool:
    r"""Whether ``target`` can only lead to a page of this site.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so ``/\t/evil``
    and ``/\evil`` both become ``//evil``, another host; so a target with any whitespace, control
    character or backslash is refused, in its raw and its percent-decoded form, as is anything with
    a scheme or a host, or not starting with exactly one slash.
    """
    for form in (target, unquote(target)):
        if "\\" in form or any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in form):
            return False
        if not form.startswith("/") or form.startswith("//"):
            return False
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return False
    return True


def _safe_next(target: str | None) -> str:
    if target and len(target) <= 2000 and is_local_path(target):
        return target
    return url_for("auth.home")


@bp.get("/")
def home():
    if current_user() is None:
        return render_template("auth/welcome.html")
    if "dashboard.index" in current_app.view_functions:
        return redirect(url_for("dashboard.index"))
    return render_template("auth/welcome.html")


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """One answer whether the address is new or taken (a taken one must not be learnt here): both
    hash the password, mail the address and send the visitor to sign in. A new account gets the
    link that confirms its address, the owner of a taken one a note that someone tried."""
    if request.method == "GET":
        return render_template("auth/signup.html")
    limited = _too_many("signup", _client())
    if limited:
        return limited
    address = clean_email(request.form.get("email", ""))
    password = request.form.get("password", "")
    problem = None if address else "Enter a valid email address."
    problem = problem or password_problem(password, request.form.get("confirm", ""))
    if problem:
        return render_template("auth/signup.html", error=problem, email=request.form.get("email", "")), 400
    assert address is not None
    db = session()
    user = User(email=address, password_hash=hash_password(password), password_changed_at=utcnow())
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        not_sent = _tell_the_owner(address)
    else:
        not_sent = _send_the_link(user)
    # a mail that failed fails alike on both paths (configuration, the mail service, the recipient's cap)
    flash(
        not_sent or f"We sent a message to {address}. Follow it to confirm the address, and sign in with your password."
    )
    return redirect(url_for("auth.signin"))


def _send_the_link(user: User) -> str | None:
    """Mail a new account the link that confirms its address (issue 12.5); why not, if it failed."""
    try:
        account_email.send_verification(services(), user)
    except ServiceError as exc:
        return exc.message
    return None


#: The note to the owner of an address someone tried to sign up with: the service's own words only.
TAKEN_SUBJECT = "Someone tried to sign up for othermail with your address"
TAKEN_BODY = (
    "Someone tried to create an othermail account with this email address, which already has one.\n\n"
    "If it was you, sign in:\n{signin}\n\nor choose a new password if you forgot it:\n{reset}\n\n"
    "If it was not you, ignore this message: nothing has changed.\n"
)


def _tell_the_owner(address: str) -> str | None:
    """Mail the owner of a taken address that someone tried it; why not, if it failed."""
    try:
        mailer.send_mail(
            address,
            TAKEN_SUBJECT,
            TAKEN_BODY.format(signin=mailer.link("auth.signin"), reset=mailer.link("auth.reset_request")),
        )
    except ServiceError as exc:  # the mailer logged the cause
        return exc.message
    return None


def _slow_down(wait: int) -> tuple[str, int]:
    when = f"{max(1, wait // 60)} minute(s)" if wait >= 60 else f"{wait} second(s)"
    return render_template(
        "error.html", title="Slow down", message=f"Too many failed sign-ins for this address. Try again in {when}."
    ), 429


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """Limited per client and address, per client over all addresses (``signin-ip``), and per
    address from anywhere with a growing wait (:func:`web.ratelimit.claim_signin`); a browser
    holding a device cookie for the address waits only on its own failures (:mod:`web.devices`)."""
    if request.method == "GET":
        return render_template("auth/signin.html", next=request.args.get("next", ""))
    address = clean_email(request.form.get("email", "")) or ""
    client = _client()
    limited = _too_many("signin", f"{client}:{address}") or _too_many("signin-ip", client)
    if limited:
        return limited
    device = devices.device_for(address) if address else None  # a browser that signed in here before
    wait = ratelimit.claim_signin(address, device) if address else None
    if wait is not None:
        return _slow_down(wait)
    user = session().scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
    if not verify_password(user, request.form.get("password", "")):  # a dummy hash when there is no user
        return render_template(
            "auth/signin.html", error="Wrong email or password.", email=address, next=request.form.get("next", "")
        ), 401
    assert user is not None
    ratelimit.signin_succeeded(address, device)
    session().commit()  # a rehashed password
    if two_factor_rules.required(session(), user):  # not signed in yet: the second step first
        return two_factor.begin(user, request.form.get("next"))
    sign_in(user)
    if device is None:  # no device cookie for this account: a browser it has not seen
        notify(user, NoticeEvent.NEW_SIGNIN)
    response = redirect(_safe_next(request.form.get("next")))
    devices.remember(response, address)
    return response


@bp.post("/signout")
def signout():
    sign_out()
    flash("Signed out.")
    return redirect(url_for("auth.signin"))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="othermail-password-reset")


def _fingerprint(user: User) -> str:
    """An HMAC of the password hash, keyed with the app's secret: a reset link dies when the
    password changes (every new hash has a new salt), and the token shows nothing of the hash."""
    key = ("othermail-password-reset-fingerprint:" + current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, (user.password_hash or "").encode(), hashlib.sha256).hexdigest()[:32]


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    """One answer, at one speed, for every address: the request only hands the address to the mail
    worker (:func:`web.mailer.send_later`), which looks it up and mails a link if it has an account.
    Whether that mail went (no account, the reset cap, the mail service down) shows nowhere here."""
    if request.method == "GET":
        return render_template("auth/reset_request.html")
    address = clean_email(request.form.get("email", ""))
    limited = _too_many("reset", _client())
    if limited:
        return limited
    if address:
        mailer.send_later(functools.partial(_mail_reset_link, address))
    flash("If an account uses that address, a reset link is on its way.")
    return redirect(url_for("auth.signin"))


RESET_SUBJECT = "Reset your othermail password"
RESET_BODY = (
    "Someone asked to reset the password of your othermail account.\n\n"
    "To choose a new one, open this link within an hour:\n{link}\n\n"
    "If it was not you, ignore this message.\n"
)


def _mail_reset_link(address: str) -> None:
    """The mail worker's half of a reset request: mail the account at ``address``, if there is one,
    its link; at most ``reset-mail`` a day, so a flood leaves room in the recipient's general cap."""
    if ratelimit.hit("reset-mail", mailer.recipient_key(address)) is not None:  # counted for every address alike
        logger.warning(
            "password reset mail to a mailbox at %s not sent: its daily reset cap is reached",
            address.rpartition("@")[2],
        )
        return
    user = session().scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
    if user is None:
        return
    token = _serializer().dumps({"uid": user.id, "fp": _fingerprint(user)})
    try:
        mailer.send_mail(user.email, RESET_SUBJECT, RESET_BODY.format(link=mailer.link("auth.reset", token=token)))
    except ServiceError:  # logged by the mailer; the visitor was answered already, the same either way
        return


def _reset_user(token: str) -> User | tuple[str, int]:
    """The user a reset token is for, or the page that says why it cannot be used."""
    try:
        data = _serializer().loads(token, max_age=RESET_MAX_AGE)
    except SignatureExpired:
        return render_template("error.html", title="Link expired", message="That link has expired."), 410
    except BadSignature:
        abort(404)
    user = session().get(User, data.get("uid")) if isinstance(data, dict) else None
    if user is None or user.deleted_at is not None or not hmac.compare_digest(str(data.get("fp")), _fingerprint(user)):
        return render_template("error.html", title="Link used", message="That link was already used."), 410
    return user


@bp.get("/reset/<token>")
def reset(token: str):
    """The mailed link: keep its token in the session and go on to a URL without it at once, so the
    token is in no later request line, Referer or browser history entry (nor in nginx's log, which
    skips /reset/: deploy/ec2/nginx/othermail.conf)."""
    found = _reset_user(token)
    if not isinstance(found, User):
        return found
    flask_session["reset_token"] = token
    return redirect(url_for("auth.reset_form"))


@bp.route("/new-password", methods=["GET", "POST"])
def reset_form():
    """An account with two-factor sign-in passes its second step first (web/two_factor.py, the
    reset link's token in the pending state): a mailbox alone changes nothing, so it cannot end the
    owner's sessions or revoke their tokens."""
    token = flask_session.get("reset_token")
    if token is None:
        flash("Open the link in your password reset mail first, or ask for one here.")
        return redirect(url_for("auth.reset_request"))
    found = _reset_user(token)
    if not isinstance(found, User):
        flask_session.pop("reset_token", None)
        flask_session.pop(two_factor.RESET_PASSED_KEY, None)
        return found
    user = found
    if two_factor_rules.required(session(), user) and flask_session.get(two_factor.RESET_PASSED_KEY) != token:
        return two_factor.begin(user, None, reset_token=token)
    if request.method == "GET":
        return render_template("auth/reset.html")
    revoke = request.form.get("revoke_tokens") == "1"
    try:
        revoked = account_service.reset_password(
            session(), user, request.form.get("password", ""), request.form.get("confirm", ""), revoke_tokens=revoke
        )
    except ServiceError as exc:
        return render_template("auth/reset.html", error=exc.message), exc.status
    notify(user, NoticeEvent.PASSWORD_RESET)
    sign_in(user)  # a new session; every other one ended, and sign_in drops the token and the step passed
    flash(
        "Your password was changed. Every other session was signed out"
        + (f" and {revoked} API token(s) revoked." if revoked else ".")
    )
    return redirect(url_for("auth.home"))
