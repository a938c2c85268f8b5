"""The user's own domains: the list and the add form, each domain's records, "verify now", the
catch-all switch and deletion. Another user's domain is a 404 everywhere, like any other row."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from forwarder.adapters.sql import user_domains as core
from models import UserDomain
from web.db import services, session
from web.security import login_required, signed_in_user
from web.services import domains as service
from web.services.errors import ServiceError

bp = Blueprint("domains", __name__, url_prefix="/domains")

#: What each status means, for the pages.
MEANINGS = {
    "pending": "Not verified yet: publish the records below, then verify. No mail is accepted until then.",
    "verified": "Verified: mail to its aliases is forwarded, and you can create aliases on it.",
    "failing": "The last check failed. Mail is still forwarded during the grace period; fix the records below "
    "before it ends, or the domain is suspended.",
    "suspended": "Suspended: its records failed the checks for longer than the grace period. Mail to its aliases "
    "is dropped and no alias can be created until a check passes again.",
}


def _owned(domain_id: int) -> UserDomain:
    try:
        return service.owned(session(), signed_in_user(), domain_id)
    except ServiceError:
        abort(404)


def _index(status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(
        "domains/index.html", domains=service.listed(session(), signed_in_user()), meanings=MEANINGS, **context
    ), status


def _detail(domain: UserDomain, status: int = 200, **context: object) -> tuple[str, int]:
    db = session()
    grace = services().domain_grace
    return render_template(
        "domains/detail.html",
        domain=domain,
        meaning=MEANINGS[domain.status],
        records=service.records(services(), domain),
        ses=services().uses_ses,
        region=current_app.config["SETTINGS"].aws_region,
        alias_count=service.alias_count(db, domain),
        looping=service.destinations_on(db, domain),
        serving=domain.status in core.SERVING,
        grace_hours=round(grace.total_seconds() / 3600),
        suspends_at=domain.failing_since + grace if domain.failing_since else None,
        catch_all_label=core.CATCH_ALL_LABEL,
        **context,
    ), status


@bp.get("/")
@login_required
def index():
    return _index()


@bp.post("/")
@login_required
def add():
    name = request.form.get("name", "")
    try:
        domain = service.add(services(), session(), signed_in_user(), name)
    except ServiceError as exc:
        session().rollback()
        return _index(exc.status, error=exc.message, name=name)
    flash(f"Added {domain.name}. Publish the records below, then verify it.")
    return redirect(url_for("domains.detail", domain_id=domain.id))


@bp.get("/<int:domain_id>")
@login_required
def detail(domain_id: int):
    return _detail(_owned(domain_id))


@bp.post("/<int:domain_id>/verify")
@login_required
def verify(domain_id: int):
    domain = _owned(domain_id)
    before = domain.status
    try:
        check = service.verify(services(), session(), domain)
    except ServiceError as exc:
        session().rollback()
        return _detail(domain, exc.status, error=exc.message)
    if check.result is core.CheckResult.UNKNOWN:
        message = "The check could not be completed (see below); nothing changed. Try again in a few minutes."
    elif domain.status == "verified":
        message = f"{domain.name} is verified." if before != "verified" else "Every required record is in place."
    else:
        message = "Some records are not in place yet (see below)."
    return _detail(domain, check=check, result_message=message)


@bp.post("/<int:domain_id>/catch-all")
@login_required
def catch_all(domain_id: int):
    domain = _owned(domain_id)
    enabled = request.form.get("catch_all") == "on"
    try:
        service.set_catch_all(session(), domain, enabled)
    except ServiceError as exc:
        session().rollback()
        return _detail(domain, exc.status, error=exc.message)
    flash(f"Catch-all {'on' if enabled else 'off'} for {domain.name}.")
    return redirect(url_for("domains.detail", domain_id=domain.id))


@bp.post("/<int:domain_id>/delete")
@login_required
def delete(domain_id: int):
    domain = _owned(domain_id)
    name = domain.name
    retired = service.delete(services(), session(), domain)
    flash(
        f"{name} was removed"
        + (f", with its {retired} alias{'' if retired == 1 else 'es'}" if retired else "")
        + ". No mail for it is accepted any more."
    )
    return redirect(url_for("domains.index"))
