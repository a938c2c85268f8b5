"""The user's aliases: one-click and custom creation, and each alias's page. The list and its bulk
form are in web/alias_list.py, on this module's blueprint.

Every view is thin: read the form, call :mod:`web.services.aliases`, render. A ``ServiceError``
re-renders the page with its message and status; another user's alias is a 404 everywhere.
"""

from __future__ import annotations

import math
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from forwarder.accounts import AccountError, parse_duration
from models import Alias, Destination
from web.api.common import MAX_ID
from web.db import services, session
from web.security import login_required, signed_in_user
from web.services import activity
from web.services import aliases as service
from web.services import destinations as destination_service
from web.services import domains as domain_service
from web.services.errors import ServiceError

bp = Blueprint("aliases", __name__, url_prefix="/aliases")
#: The expiry choices offered; the service accepts anything from one hour to a year.
DURATIONS = (
    ("", "No time limit"),
    ("1h", "1 hour"),
    ("1d", "1 day"),
    ("7d", "1 week"),
    ("30d", "30 days"),
    ("365d", "1 year"),
)
EXPIRED_ACTIONS = (("drop", "Drop new mail silently"), ("reject", "Reject new mail (the sender gets a bounce)"))
#: What "reject" does, in the user's words; the operator's detail (550 5.1.1 on the one box, an SES
#: bounce on AWS only when SPF passed) is in docs/user-guide.md and forwarder/flows/expired_reject.py.
EXPIRED_REJECT_WORDS = (
    "Reject: the sender usually gets a bounce saying the address no longer takes mail. Mail that "
    "may come from a forged sender is dropped instead, so that no bounce goes to someone who did "
    "not write. Drop: new mail is accepted and dropped silently."
)


# --- words ---------------------------------------------------------------------------------------


def span(delta: timedelta) -> str:
    """``45 min``, ``3 h`` or ``12 days``: rounded, never below one minute."""
    seconds = max(0.0, delta.total_seconds())
    minutes = max(1, math.ceil(seconds / 60)) if seconds else 0
    if minutes < 60:
        return f"{minutes} min"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} h"
    days = round(seconds / 86400)
    return f"{days} day{'' if days == 1 else 's'}"


def left(status: service.Status) -> list[str]:
    """What is left before the alias expires, in words: ``3 h left``, ``2 messages left``."""
    if status.state == "deleted":
        return []
    words = []
    if status.time_left is not None:
        words.append(f"{span(status.time_left)} left")
    if status.messages_left is not None:
        words.append(f"{status.messages_left} message{'' if status.messages_left == 1 else 's'} left")
    if status.idle_left is not None:
        idle = span(status.idle_left)
        words.append(f"{idle.replace(' day', ' idle day')} left" if "day" in idle else f"{idle} idle left")
    return words


# --- input ---------------------------------------------------------------------------------------


def _number(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ServiceError("invalid_number", "Enter a whole number.") from None


def _duration() -> timedelta | None:
    raw = request.form.get("duration", "").strip()
    if not raw or raw == "none":
        return None
    try:
        return parse_duration(raw)
    except AccountError:
        raise ServiceError("invalid_expiry", "An alias can last from one hour to a year.") from None


def form_id(value: str) -> int:
    """An id from a form field; ValueError for one no row has (past :data:`MAX_ID` it would be an
    OverflowError on SQLite and out of range on PostgreSQL: a 500, as web/converters.py says)."""
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise ValueError(value)
    return number


def _destination_ids() -> list[int]:
    try:
        return [form_id(value) for value in request.form.getlist("destination")]
    except ValueError:
        raise ServiceError("no_destination", "Choose your own destinations.") from None


def sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


# --- lookups and pages ---------------------------------------------------------------------------


def _owned(alias_id: int) -> Alias:
    try:
        return service.owned(session(), signed_in_user(), alias_id)
    except ServiceError:
        abort(404)


def _verified() -> list[Destination]:
    return [d for d in destination_service.listed(session(), signed_in_user()) if d.is_verified]


def _new_page(status: int = 200, **context: object) -> tuple[str, int]:
    domains = [*current_app.config["SETTINGS"].domains, *domain_service.serving_names(session(), signed_in_user())]
    return render_template(
        "aliases/new.html",
        domains=domains,
        destinations=_verified(),
        durations=DURATIONS,
        expired_actions=EXPIRED_ACTIONS,
        expired_reject_words=EXPIRED_REJECT_WORDS,
        form=context.pop("form", None) or MultiDict(),
        **context,
    ), status


def _detail(alias: Alias, status: int = 200, **context: object) -> tuple[str, int]:
    db = session()
    state = service.status(alias)
    return render_template(
        "aliases/detail.html",
        alias=alias,
        status=state,
        left=left(state),
        destinations=destination_service.listed(db, signed_in_user()),
        linked={d.id for d in alias.destinations},
        recent=activity.recent(db, alias),
        totals=activity.totals(db, alias),
        durations=DURATIONS[1:],
        expired_actions=EXPIRED_ACTIONS,
        expired_reject_words=EXPIRED_REJECT_WORDS,
        **context,
    ), status


def _failed(alias: Alias, exc: ServiceError) -> tuple[str, int]:
    session().rollback()  # nothing half-applied shows on the page
    return _detail(alias, exc.status, error=sentence(exc.message))


def _done(alias: Alias, message: str):
    flash(message)
    return redirect(url_for("aliases.detail", alias_id=alias.id))


# --- creation ------------------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    """GET: the custom form. POST without ``custom``: one click, a generated address to every
    verified destination. POST with ``custom``: the form's local part, domain, destinations..."""
    if request.method == "GET":
        return _new_page()
    form, db = request.form, session()
    try:
        custom = bool(form.get("custom"))
        alias = service.create(
            services(),
            db,
            signed_in_user(),
            destination_ids=_destination_ids() if custom else None,  # one click: every verified destination
            domain=form.get("domain") or None,
            local_part=form.get("local_part", "").strip() or None,
            label=form.get("label", ""),
            note=form.get("note", ""),
            duration=_duration(),
            idle_days=_number("idle_days"),
            max_messages=_number("max_messages"),
            expired_action=form.get("expired_action", "drop"),
        )
    except ServiceError as exc:
        db.rollback()
        return _new_page(exc.status, error=sentence(exc.message), form=form)
    return _done(alias, f"Created {alias.address}.")


# --- one alias -----------------------------------------------------------------------------------


@bp.get("/<int:alias_id>")
@login_required
def detail(alias_id: int):
    return _detail(_owned(alias_id))


@bp.post("/<int:alias_id>/edit")
@login_required
def edit(alias_id: int):
    alias = _owned(alias_id)
    try:
        service.update(
            session(),
            signed_in_user(),
            alias,
            label=request.form.get("label", ""),
            note=request.form.get("note", ""),
            expired_action=request.form.get("expired_action", "drop"),
        )
    except ServiceError as exc:
        return _failed(alias, exc)
    return _done(alias, "Saved.")


@bp.post("/<int:alias_id>/destinations")
@login_required
def destinations(alias_id: int):
    alias = _owned(alias_id)
    try:
        service.update(session(), signed_in_user(), alias, destination_ids=_destination_ids())
    except ServiceError as exc:
        return _failed(alias, exc)
    return _done(alias, "Destinations saved.")


@bp.post("/<int:alias_id>/extend")
@login_required
def extend(alias_id: int):
    alias = _owned(alias_id)
    try:
        duration, idle_days, extra = _duration(), _number("idle_days"), _number("extra_messages")
        if extra is not None and alias.max_messages is None:
            raise ServiceError("invalid_expiry", "This alias has no message limit to raise.")
        if duration is None and idle_days is None and extra is None:
            raise ServiceError("invalid_expiry", "Choose a new duration, more messages or new idle days.")
        service.extend(session(), alias, duration=duration, idle_days=idle_days, extra_messages=extra)
    except ServiceError as exc:
        return _failed(alias, exc)
    return _done(alias, "Extended.")


@bp.post("/<int:alias_id>/permanent")
@login_required
def permanent(alias_id: int):
    alias = _owned(alias_id)
    service.make_permanent(session(), alias)
    return _done(alias, f"{alias.address} no longer expires.")


@bp.post("/<int:alias_id>/enable")
@login_required
def enable(alias_id: int):
    alias = _owned(alias_id)
    service.update(session(), signed_in_user(), alias, enabled=True)
    return _done(alias, f"{alias.address} forwards again.")


@bp.post("/<int:alias_id>/disable")
@login_required
def disable(alias_id: int):
    alias = _owned(alias_id)
    service.update(session(), signed_in_user(), alias, enabled=False)
    return _done(alias, f"{alias.address} is switched off: new mail is dropped.")


@bp.route("/<int:alias_id>/delete", methods=["GET", "POST"])
@login_required
def delete(alias_id: int):
    alias = _owned(alias_id)
    if request.method == "GET":
        return render_template("aliases/delete.html", alias=alias)
    address = alias.address
    service.delete(session(), alias)
    flash(f"{address} was deleted. Mail to it is dropped, and the address is never given out again.")
    return redirect(url_for("aliases.index"))
