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
from web.services import rules
from web.services.errors import ServiceError

bp = Blueprint("contacts", __name__, url_prefix="/aliases")


def _owned(alias_id: int) -> Alias:
    try:
        return alias_service.owned(session(), signed_in_user(), alias_id)
    except ServiceError:
        abort(404)


def _page(alias: Alias, status: int = 200, **context: object) -> tuple[str, int]:
    alias_rules = rules.listed(services(), signed_in_user(), alias)
    delete_urls = {rule.id: url_for("contacts.remove_rule", alias_id=alias.id, rule_id=rule.id) for rule in alias_rules}
    return render_template(
        "contacts/index.html",
        alias=alias,
        contacts=service.listed(services(), alias),
        rules=alias_rules,
        delete_urls=delete_urls,
        **context,
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


# --- the alias's two-way settings and sender rules ------------------------------------------------


@bp.post("/<int:alias_id>/two-way")
@login_required
def two_way(alias_id: int):
    """The alias's name on replies and who may write to it (a form on the alias page)."""
    alias = _owned(alias_id)
    try:
        alias_service.set_two_way(
            session(),
            alias,
            display_name=request.form.get("display_name", ""),
            sender_mode=request.form.get("sender_mode", "any"),
        )
    except ServiceError as exc:
        session().rollback()
        flash(exc.message)
        return redirect(url_for("aliases.detail", alias_id=alias.id))
    flash("Saved.")
    return redirect(url_for("aliases.detail", alias_id=alias.id))


@bp.post("/<int:alias_id>/rules")
@login_required
def add_rule(alias_id: int):
    alias = _owned(alias_id)
    form = request.form
    try:
        rules.add(
            services(), signed_in_user(), alias, form.get("action", ""), form.get("kind", ""), form.get("value", "")
        )
    except ServiceError as exc:
        return _page(alias, exc.status, error=exc.message)
    return _back(alias, "Rule added.")


@bp.post("/<int:alias_id>/rules/<int:rule_id>/delete")
@login_required
def remove_rule(alias_id: int, rule_id: int):
    alias = _owned(alias_id)
    if rule_id not in {rule.id for rule in rules.listed(services(), signed_in_user(), alias)}:
        abort(404)
    rules.remove(services(), signed_in_user(), rule_id)
    return _back(alias, "Rule removed.")
