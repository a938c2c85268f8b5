"""The signed-in user's account: change the password, see and end sessions, download everything, delete the
account."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from forwarder.accounts import sessions
from models import utcnow
from web import ratelimit
from web.db import services, session
from web.notices import NoticeEvent, notify
from web.security import current_session, lifetimes, login_required, sign_out, signed_in_user
from web.services import account as service
from web.services import rules
from web.services.errors import ServiceError

bp = Blueprint("account", __name__, url_prefix="/account")


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    this = current_session()
    account_rules = rules.listed(services(), signed_in_user())
    return render_template(
        "account/index.html",
        rules=account_rules,
        delete_urls={rule.id: url_for("account.remove_rule", rule_id=rule.id) for rule in account_rules},
        confirm_phrase=service.CONFIRM_PHRASE,
        sessions=sessions.listed(session(), signed_in_user(), lifetimes()),
        this_session=this.id if this else None,
        **context,
    ), status


def _too_many() -> tuple[str, int] | None:
    """Password checks here count like sign-ins, per account, so a left-open session cannot guess."""
    wait = ratelimit.hit("signin", f"account:{signed_in_user().id}")
    if wait is None:
        return None
    return _page(429, error=f"Too many attempts. Try again in {max(1, wait // 60)} minute(s).")


@bp.get("/")
@login_required
def index():
    return _page()


@bp.post("/password")
@login_required
def password():
    limited = _too_many()
    if limited:
        return limited
    user = signed_in_user()
    this = current_session()
    try:
        service.change_password(
            session(),
            user,
            request.form.get("current", ""),
            request.form.get("password", ""),
            request.form.get("confirm", ""),
            keep_session=this.id if this else None,
        )
    except ServiceError as exc:
        return _page(exc.status, error=exc.message)
    notify(user, NoticeEvent.PASSWORD_CHANGED)
    flash("Your password was changed. Other sessions were signed out.")
    return redirect(url_for("account.index"))


@bp.post("/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int):
    try:
        row = sessions.owned(session(), signed_in_user(), session_id)
    except ServiceError:
        abort(404)
    this = current_session()
    if this is not None and row.id == this.id:
        sign_out()
        flash("Signed out.")
        return redirect(url_for("auth.signin"))
    sessions.end(session(), row)
    flash("That session was ended; it is signed out.")
    return redirect(url_for("account.index"))


@bp.post("/sessions/end-others")
@login_required
def end_other_sessions():
    this = current_session()
    ended = sessions.end_all(session(), signed_in_user(), keep=this.id if this else None)
    flash(f"{ended} other session{'s were' if ended != 1 else ' was'} ended; they are signed out.")
    return redirect(url_for("account.index"))


@bp.get("/export")
@login_required
def export():
    user = signed_in_user()
    body = json.dumps(service.export(services(), session(), user), indent=2, ensure_ascii=False)
    name = f"othermail-export-{utcnow():%Y%m%d}.json"
    return Response(
        body + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@bp.post("/delete")
@login_required
def delete():
    limited = _too_many()
    if limited:
        return limited
    user = signed_in_user()
    try:
        service.delete_account(
            services(), session(), user, request.form.get("password", ""), request.form.get("confirm", "")
        )
    except ServiceError as exc:
        return _page(exc.status, error=exc.message)
    sign_out()
    flash("Your account was deleted. Its aliases no longer forward anything.")
    return redirect(url_for("auth.signin"))


@bp.post("/mail")
@login_required
def mail_preferences():
    """How forwarded mail names its sender, what one-click unsubscribe does, who may write (issue 14)."""
    form = request.form
    try:
        service.set_mail_preferences(
            session(),
            signed_in_user(),
            display_format=form.get("display_format", ""),
            unsubscribe_action=form.get("unsubscribe_action", ""),
            sender_mode=form.get("sender_mode", ""),
        )
    except ServiceError as exc:
        session().rollback()
        return _page(exc.status, error=exc.message)
    flash("Saved.")
    return redirect(url_for("account.index"))


@bp.post("/rules")
@login_required
def add_rule():
    form = request.form
    try:
        rules.add(
            services(), signed_in_user(), None, form.get("action", ""), form.get("kind", ""), form.get("value", "")
        )
    except ServiceError as exc:
        return _page(exc.status, error=exc.message)
    flash("Rule added.")
    return redirect(url_for("account.index"))


@bp.post("/rules/<int:rule_id>/delete")
@login_required
def remove_rule(rule_id: int):
    if rule_id not in {rule.id for rule in rules.listed(services(), signed_in_user())}:
        abort(404)
    rules.remove(services(), signed_in_user(), rule_id)
    flash("Rule removed.")
    return redirect(url_for("account.index"))
