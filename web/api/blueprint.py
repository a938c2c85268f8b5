"""The API's blueprint, in a module of its own so that the view modules can register on it
without importing the package that imports them."""

from __future__ import annotations

from flask import Blueprint

from web import csrf

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)
csrf.protect.exempt(bp)
