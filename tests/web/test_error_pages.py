"""Flask's own errors are othermail pages (web/errors.py): layout, title and status; the API keeps JSON."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.web.conftest import signup


def test_an_unknown_page_is_a_404_in_the_site_layout(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert '<html lang="en">' in page and "<title>Page not found · othermail</title>" in page
    assert '<main id="main"' in page and 'href="/static/style.css' in page


def test_a_wrong_method_keeps_its_status_and_allow_header(client: FlaskClient) -> None:
    response = client.delete("/signin")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert "<title>Not allowed here · othermail</title>" in response.get_data(as_text=True)


def test_signed_in_the_error_page_shows_the_menu(client: FlaskClient) -> None:
    signup(client)
    page = client.get("/aliases/999999").get_data(as_text=True)
    assert "Page not found" in page and "Sign out" in page


def test_the_api_still_answers_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.is_json
