"""``/u/<token>``: one-click unsubscribe (RFC 8058) from the links in forwarded mail (issue 14).

Mail clients POST ``List-Unsubscribe=One-Click`` here without cookies or a CSRF token, so the view
is exempt from CSRF and the signed token is its only authority; a GET shows a confirm button (a
person who opened the link), never acts. Counted per client like the other public pages.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from web import csrf, ratelimit
from web.db import services, session
from web.services import unsubscribe as service
from web.services.errors import ServiceError

bp = Blueprint("unsubscribe", __name__)
WORDS = {
    "disable-alias": "The alias is switched off: it forwards nothing more until you switch it on again.",
    "block-contact": "This sender is blocked on the alias: its mail is dropped.",
    "pass-through": "Nothing was changed here: use the sender's own unsubscribe link.",
}
#: What the button will do, on the confirm page.
PLANS = {
    "disable-alias": "This switches the alias off: it forwards nothing more until you switch it on again.",
    "block-contact": "This blocks the sender on the alias: its mail is dropped.",
    "pass-through": "This changes nothing here: use the sender's own unsubscribe link.",
}


def _limited() -> tuple[str, int, dict[str, str]] | None:
    wait = ratelimit.hit("unsubscribe", ratelimit.client_key(request.remote_addr))
    if wait is None:
        return None
    page = render_template("error.html", title="Too many requests", message="Try again later.")
    return page, 429, {"Retry-After": str(wait)}


def _target(token: str) -> service.Target:
    try:
        return service.target(services(), session(), token)
    except ServiceError:
        abort(404)


@bp.get("/u/<token>")
def confirm(token: str):
    limited = _limited()
    if limited:
        return limited
    found = _target(token)
    return render_template("unsubscribe.html", alias=found.alias, words=PLANS[found.action], done=False)


@bp.post("/u/<token>")
@csrf.protect.exempt
def one_click(token: str):
    limited = _limited()
    if limited:
        return limited
    _target(token)
    if request.form.get("List-Unsubscribe") != "One-Click":
        abort(400)
    found = service.unsubscribe(services(), session(), token)
    return render_template("unsubscribe.html", alias=found.alias, words=WORDS[found.action], done=True)
