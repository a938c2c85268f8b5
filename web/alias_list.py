"""The alias list (search, state filter, sort, pages) and its bulk form: disable, enable or delete
the chosen aliases. The views register on :data:`web.aliases.bp` (the app factory imports this
module before it registers the blueprint), so their endpoints stay ``aliases.index`` and
``aliases.bulk``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from flask import abort, flash, redirect, render_template, request, url_for

from forwarder.accounts.alias_states import STATES
from web import paging
from web.aliases import bp, form_id, left, sentence
from web.db import session
from web.security import login_required, signed_in_user
from web.services import alias_bulk
from web.services import aliases as service
from web.services.errors import ServiceError

#: The list's page sizes; the first is the default.
PAGE_SIZES = (25, 50)
SEARCH_MAX = 100
#: The state filter's choices (forwarder/accounts/alias_states.py defines each).
STATE_NAMES = (
    ("", "All"),
    ("active", "Active"),
    ("expiring", "Expiring"),
    ("expired", "Expired"),
    ("disabled", "Disabled"),
)
SORT_NAMES = (("created", "Created"), ("address", "Address"), ("used", "Last mail"), ("messages", "Messages"))
BULK_DONE = {"disable": "disabled", "enable": "enabled", "delete": "deleted"}


def _page(raw: str) -> int:
    """A page number as web/paging.py reads one: 1 unless a whole number; clamped to the last page."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()):
        return 1
    digits = raw.lstrip("0") or "0"
    return paging.MAX_PAGE if len(digits) > len(str(paging.MAX_PAGE)) else paging.clamp(int(digits))


@dataclass(frozen=True)
class ListQuery:
    """What the list shows, read from the query string (or the bulk form's copy of it). A value
    that is not one of the choices falls back to its default: a bad link shows a list, never a 500."""

    q: str = ""
    state: str = ""
    sort: str = "created"
    order: str = "desc"
    per_page: int = PAGE_SIZES[0]
    page: int = 1

    @classmethod
    def read(cls, args: Mapping[str, str]) -> ListQuery:
        state = args.get("state", "")
        sort = args.get("sort", "")
        sort = sort if sort in service.SORTS else "created"
        order = args.get("order", "")
        size = args.get("per_page", "")
        return cls(
            q=args.get("q", "").strip()[:SEARCH_MAX],
            state=state if state in STATES else "",
            sort=sort,
            order=order if order in ("asc", "desc") else service.SORTS[sort],
            per_page=int(size) if size in {str(n) for n in PAGE_SIZES} else PAGE_SIZES[0],
            page=_page(args.get("page", "")),
        )

    def args(self, **changes: object) -> dict[str, object]:
        """The query string for ``url_for``, without the values that are the defaults."""
        values = {**asdict(self), **changes}
        defaults = {**asdict(ListQuery()), "order": service.SORTS[str(values["sort"])]}
        return {key: value for key, value in values.items() if value != defaults[key]}

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.state)


@bp.get("/")
@login_required
def index():
    query = ListQuery.read(request.args)
    aliases, total = service.listed(
        session(),
        signed_in_user(),
        query.q,
        query.page,
        query.per_page,
        state=query.state,
        sort=query.sort,
        descending=query.order == "desc",
    )
    rows = [(alias, service.status(alias)) for alias in aliases]
    return render_template(
        "aliases/index.html",
        rows=rows,
        left=left,
        query=query,
        total=total,
        pages=max(1, math.ceil(total / query.per_page)),
        selected=request.args.get("select") == "page",
        state_names=STATE_NAMES,
        sort_names=SORT_NAMES,
        page_sizes=PAGE_SIZES,
    )


@bp.post("/bulk")
@login_required
def bulk():
    """Disable, enable or delete the chosen aliases: the first POST shows what will change, the
    second (``confirm=yes``, from that page) does it. Any id not the user's own is a 404."""
    form, db, user = request.form, session(), signed_in_user()
    query = ListQuery.read(form)
    back = url_for("aliases.index", **query.args())
    action = form.get("action", "")
    if action not in alias_bulk.BULK_ACTIONS:
        flash("Choose disable, enable or delete.")
        return redirect(back)
    try:
        ids = [form_id(value) for value in form.getlist("alias")]
    except ValueError:
        abort(404)
    try:
        chosen = alias_bulk.owned_many(db, user, ids)
    except ServiceError as exc:  # a ValueError too: caught on its own
        if exc.status == 404:
            abort(404)
        flash(sentence(exc.message))
        return redirect(back)
    if form.get("confirm") != "yes":
        changing = alias_bulk.bulk_changes(action, chosen)
        return render_template(
            "aliases/bulk.html", action=action, chosen=chosen, changing=changing, query=query, back=back
        )
    changed = alias_bulk.bulk(db, user, action, ids)
    flash(f"{aliases_word(len(changed))} {BULK_DONE[action]}.")
    return redirect(back)


def aliases_word(count: int) -> str:
    return f"{count} alias{'' if count == 1 else 'es'}"
