"""An alias's contacts (issue 14): the people it corresponds with, each behind a reverse address.

The page lists them (last seen, forwarded, replied, blocked), creates one to write first, blocks,
unblocks and deletes; the work is :mod:`web.services.contacts`'s.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from models import Alias
from web.db import services, session
from web.security import login_required, signed_in_user
from web.services import aliases as alias_service
from web.services import contacts as service
from web.services.errors import ServiceError

bp = Blueprint("contacts", __name__, url_prefix="/aliases")


def _owned(alias_id: int) -> Alias:
    try:
        return alias_service.owned(session(), signed_in_user(), alias_id)
    except ServiceError:
        abort(404)


def _page(alias: Alias, status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(
        "contacts/index.html", alias=alias, contacts=service.listed(services(), alias), **context
    ), status


def _back(alias: Alias, message: str):
    flash(message)
    return redirect(url_for("contacts.index", alias_id=alias.id))


@bp.get("/<int:alias_id>/contacts")
@login_required
def index(alias_id: int):
    return _page(_owned(alias_id))


@bp.post("/<int:alias_id>/contacts")
@login_required
def create(alias_id: int):
    alias = _owned(alias_id)
    try:
        contact = service.create(
            services(),
            session(),
            signed_in_user(),
            alias,
            request.form.get("address", ""),
            request.form.get("name", ""),
        )
    except ServiceError as exc:
        return _page(alias, exc.status, error=exc.message, address=request.form.get("address", ""))
    return _back(alias, f"Write to {contact.reverse} to reach {contact.address} from {alias.address}.")


def _change(alias_id: int, contact_id: int, blocked: bool | None):
    alias = _owned(alias_id)
    try:
        if blocked is None:
            service.delete(services(), alias, contact_id)
        else:
            service.set_blocked(services(), alias, contact_id, blocked)
    except ServiceError:
        abort(404)
    words = {None: "Contact deleted.", True: "Contact blocked: its mail is dropped.", False: "Contact unblocked."}
    return _back(alias, words[blocked])


@bp.post("/<int:alias_id>/contacts/<int:contact_id>/block")
@login_required
def block(alias_id: int, contact_id: int):
    return _change(alias_id, contact_id, True)


@bp.post("/<int:alias_id>/contacts/<int:contact_id>/unblock")
@login_required
def unblock(alias_id: int, contact_id: int):
    return _change(alias_id, contact_id, False)


@bp.post("/<int:alias_id>/contacts/<int:contact_id>/delete")
@login_required
def delete(alias_id: int, contact_id: int):
    return _change(alias_id, contact_id, None)
