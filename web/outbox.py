"""The local outbox as a mail catcher: what ``MaildirSender`` delivered, for admins only.

In one-box mode (``OTHERMAIL_SENDER=outbox``) forwarded mail and the service's own mails land in a
Maildir; these pages list it newest first, show a message (headers, text, attachments; HTML only as
escaped source), download it as stored, and empty the folder.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, url_for

from web import paging
from web.admin import admin_required
from web.services import outbox as service

bp = Blueprint("outbox", __name__, url_prefix="/admin/outbox")


def _settings():
    return current_app.config["SETTINGS"]


def _maildir_or_404(key: str):
    try:
        maildir = service.open_outbox(_settings().outbox)
    except service.NoOutbox:
        abort(404)
    if not service.valid_key(maildir, key):
        abort(404)
    return maildir


@bp.get("/")
@admin_required
def index():
    settings = _settings()
    number = paging.requested("page")
    try:
        maildir = service.open_outbox(settings.outbox)
    except service.NoOutbox:
        return render_template(
            "outbox/index.html", missing=True, rows=[], total=0, page=1, pages=1, sender=settings.sender
        )
    rows, total = service.page(maildir, number)
    pages = max(1, -(-total // service.PER_PAGE))
    if number > pages:
        rows, number = service.page(maildir, pages)[0], pages
    return render_template(
        "outbox/index.html", missing=False, rows=rows, total=total, page=number, pages=pages, sender=settings.sender
    )


@bp.get("/<key>")
@admin_required
def message(key: str):
    maildir = _maildir_or_404(key)
    try:
        shown = service.detail(maildir, key)
    except (KeyError, OSError):
        abort(404)  # removed meanwhile
    return render_template("outbox/message.html", message=shown, linked=service.linked)


@bp.get("/<key>/raw")
@admin_required
def raw(key: str):
    maildir = _maildir_or_404(key)
    try:
        data = service.raw(maildir, key)
    except (KeyError, OSError):
        abort(404)
    return Response(
        data, mimetype="message/rfc822", headers={"Content-Disposition": f'attachment; filename="{key}.eml"'}
    )


@bp.post("/delete")
@admin_required
def delete_all():
    try:
        maildir = service.open_outbox(_settings().outbox)
    except service.NoOutbox:
        removed = 0
    else:
        removed = service.delete_all(maildir)
    flash(f"Deleted {removed} message{'' if removed == 1 else 's'} from the outbox.")
    return redirect(url_for("outbox.index"))
