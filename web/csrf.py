"""CSRF protection on every state change (Flask-WTF's CSRFProtect); the API uses tokens instead."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

protect = CSRFProtect()


def init_app(app: Flask) -> None:
    protect.init_app(app)
