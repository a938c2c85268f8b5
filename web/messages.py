"""A received message's page (what happened, its headers, the original to download) and the
quarantine, where messages dropped as spam, for DMARC or over a limit can be released."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for

from models import Delivery
from web.db import runtime, session
from web.security import login_required, signed_in_user
from web.services import messages as service
from web.services.errors import ServiceError

bp = Blueprint("messages", __name__, url_prefix="/messages")


def _owned(delivery_id: int) -> Delivery:
    try:
        return service.owned(session(), signed_in_user(), delivery_id)
    except ServiceError:
        abort(404)


def _detail(row: Delivery, status: int = 200, **context: object) -> tuple[str, int]:
    shown: list[tuple[str, str]] = []
    problem = None
    keep_days = runtime().settings.keep_days
    if service.is_kept(row, keep_days):
        try:
            shown = service.headers(service.raw(runtime(), row))
        except ServiceError as exc:
            problem = exc.message
    return render_template(
        "messages/detail.html",
        row=row,
        headers=shown,
        problem=problem,
        kept=service.is_kept(row, keep_days) and problem is None,
        kept_until=service.kept_until(row, keep_days),
        virus=row.outcome == "dropped-virus",
        releasable=service.releasable(row, keep_days) and problem is None,
        keep_days=keep_days,
        **context,
    ), status


@bp.get("/quarantine")
@login_required
def quarantine():
    keep_days = runtime().settings.keep_days
    rows = service.quarantine(session(), signed_in_user(), keep_days)
    return render_template("messages/quarantine.html", rows=rows, keep_days=keep_days)


@bp.get("/<int:delivery_id>")
@login_required
def detail(delivery_id: int):
    return _detail(_owned(delivery_id))


@bp.get("/<int:delivery_id>/raw")
@login_required
def raw(delivery_id: int):
    row = _owned(delivery_id)
    try:
        data = service.download(runtime(), row)
    except ServiceError as exc:
        return _detail(row, exc.status, error=exc.message)
    return Response(
        data, mimetype="message/rfc822", headers={"Content-Disposition": f'attachment; filename="message-{row.id}.eml"'}
    )


@bp.post("/<int:delivery_id>/release")
@login_required
def release(delivery_id: int):
    db = session()
    row = _owned(delivery_id)
    try:
        released = service.release(runtime(), db, row)
    except ServiceError as exc:
        return _detail(row, exc.status, error=exc.message)
    if released.forwarded:
        flash(f"Released: forwarded to {released.forwarded} destination(s).")
    else:
        why = "; ".join(sorted({r.reason for r in released.other})) or "no verified destination"
        flash(f"Released, but not forwarded: {why}.")
    return redirect(url_for("messages.detail", delivery_id=row.id))
