"""Flask's own errors (an unknown page, a wrong method, a missing right) as othermail pages: the
same layout, navigation, language and title as every other page, the status kept."""

from __future__ import annotations

from flask import Response, render_template
from werkzeug.exceptions import HTTPException

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too large",
    429: "Slow down",
    500: "Something went wrong",
}


def error_page(exc: HTTPException) -> Response | HTTPException:
    """``exc`` as error.html with its status and headers (a 405's Allow); a redirect or an error
    raised while rendering stays Werkzeug's own answer."""
    status = exc.code or 500
    if status < 400:
        return exc
    try:
        body = render_template("error.html", title=TITLES.get(status, exc.name), message=exc.description)
    except Exception:  # noqa: BLE001 (a broken database or template must not hide the first error)
        return exc
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    return Response(body, status=status, headers=headers, mimetype="text/html")
