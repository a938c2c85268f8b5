"""Sign up, sign in, sign out, and password reset by email."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import User, normalize_email, utcnow
from web import mailer, ratelimit
from web.db import session
from web.services import account_email
from web.links import external_url
from web.security import current_user, hash_password, password_problem, sign_in, sign_out, verify_password

bp = Blueprint("auth", __name__)
RESET_MAX_AGE = 60 * 60


def clean_email(raw: str) -> str | None:
    """A normalized address safe to put in a header, or None."""
    try:
        address = normalize_email(raw)
    except (ValueError, TypeError):
        return None
    return address if mailer.is_mailable(address) else None


def _client() -> str:
    return ratelimit.client_key(request.remote_addr)  # an IPv6 client by its /64


def _too_many(name: str, who: str) -> tuple[str, int] | None:
    wait = ratelimit.hit(name, who)
    if wait is None:
        return None
    minutes = max(1, wait // 60)
    return render_template("error.html", title="Slow down",
                           message=f"Too many attempts. Try again in {minutes} minute(s)."), 429


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
def home():  # type: ignore[no-untyped-def]
    if current_user() is None:
        return render_template("auth/welcome.html")
    if "dashboard.index" in current_app.view_functions:
        return redirect(url_for("dashboard.index"))
    return render_template("auth/welcome.html")


@bp.route("/signup", methods=["GET", "POST"])
def signup():  # type: ignore[no-untyped-def]
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
    db = session()
    user = User(email=address, password_hash=hash_password(password), password_changed_at=utcnow())
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return render_template("auth/signup.html", error="An account with that address exists. Sign in instead.",
                               email=address), 409
    sign_in(user)
    flash(account_email.welcome(user))  # mails the link that confirms the address (issue 12.5)
    return redirect(url_for("auth.home"))


@bp.route("/signin", methods=["GET", "POST"])
def signin():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return render_template("auth/signin.html", next=request.args.get("next", ""))
    address = clean_email(request.form.get("email", "")) or ""
    limited = _too_many("signin", f"{_client()}:{address}")
    if limited:
        return limited
    user = session().scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
    if user is None or not verify_password(user, request.form.get("password", "")):
        return render_template("auth/signin.html", error="Wrong email or password.", email=address,
                               next=request.form.get("next", "")), 401
    session().commit()  # a rehashed password
    sign_in(user)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/signout")
def signout():  # type: ignore[no-untyped-def]
    sign_out()
    flash("Signed out.")
    return redirect(url_for("auth.signin"))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="othermail-password-reset")


def _fingerprint(user: User) -> str:
    return (user.password_hash or "")[-16:]


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return render_template("auth/reset_request.html")
    address = clean_email(request.form.get("email", ""))
    limited = _too_many("reset", _client())
    if limited:
        return limited
    if address:
        user = session().scalars(select(User).where(User.email == address, User.deleted_at.is_(None))).first()
        if user is not None:
            token = _serializer().dumps({"uid": user.id, "fp": _fingerprint(user)})
            link = external_url("auth.reset", token=token)
            mailer.send_mail(user.email, "Reset your othermail password",
                             f"Someone asked to reset the password of {user.email}.\n\n"
                             f"To choose a new one, open this link within an hour:\n{link}\n\n"
                             "If it was not you, ignore this message.\n")
    flash("If an account uses that address, a reset link is on its way.")
    return redirect(url_for("auth.signin"))


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):  # type: ignore[no-untyped-def]
    try:
        data = _serializer().loads(token, max_age=RESET_MAX_AGE)
    except SignatureExpired:
        return render_template("error.html", title="Link expired", message="That link has expired."), 410
    except BadSignature:
        abort(404)
    user = session().get(User, data.get("uid"))
    if user is None or user.deleted_at is not None or data.get("fp") != _fingerprint(user):
        return render_template("error.html", title="Link used", message="That link was already used."), 410
    if request.method == "GET":
        return render_template("auth/reset.html", token=token)
    password = request.form.get("password", "")
    problem = password_problem(password, request.form.get("confirm", ""))
    if problem:
        return render_template("auth/reset.html", token=token, error=problem), 400
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    session().commit()
    sign_in(user)
    flash("Your password was changed.")
    return redirect(url_for("auth.home"))
