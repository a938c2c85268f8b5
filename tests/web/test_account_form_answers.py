"""The pages that answer the account page's two-factor and passkey forms are POST-only; a GET of
their address (Back, reload, a typed or bookmarked address) goes to the account page's section
where the form starts, never to a 405 error page."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.web.conftest import signup

ANSWERS = {
    "/account/two-factor/setup": "#two-factor",
    "/account/two-factor/enable": "#two-factor",
    "/account/two-factor/disable": "#two-factor",
    "/account/two-factor/recovery-codes": "#two-factor",
    "/account/passkeys/new": "#passkeys",
    "/account/passkeys": "#passkeys",
}


@pytest.mark.parametrize("path", sorted(ANSWERS))
def test_a_get_of_a_form_answer_goes_to_the_account_page(client: FlaskClient, path: str) -> None:
    signup(client)
    response = client.get(path)
    assert response.status_code == 302, response.get_data(as_text=True)[:200]
    assert response.headers["Location"] == "/account/" + ANSWERS[path]
    assert client.get(response.headers["Location"]).status_code == 200


@pytest.mark.parametrize("path", sorted(ANSWERS))
def test_signed_out_it_asks_to_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
