"""The operator's page: users, aliases, the latest outcomes, totals per outcome and the destinations'
bounce and complaint rates. Admins only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, render_template

from web import paging
from web.db import session
from web.security import current_user, login_required
from web.services import admin as service
from web.services.aliases import status

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return login_required(wrapped)


def _number(name: str) -> int:
    return paging.requested(name)


def _pages(total: int) -> int:
    return max(1, -(-total // service.PER_PAGE))


@bp.get("/")
@admin_required
def index():
    db = session()
    user_page, alias_page = _number("users"), _number("aliases")
    users, user_total = service.users(db, user_page)
    aliases, alias_total = service.aliases(db, alias_page)
    return render_template(
        "admin/index.html",
        users=users,
        user_total=user_total,
        user_page=user_page,
        user_pages=_pages(user_total),
        aliases=aliases,
        alias_total=alias_total,
        alias_page=alias_page,
        alias_pages=_pages(alias_total),
        states={row.alias.id: status(row.alias).state for row in aliases},
        recent=service.recent(db),
        totals=service.totals(db),
        rates=service.feedback_rates(db),
    )
