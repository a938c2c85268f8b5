"""The outbox pages: the local Maildir as a mail catcher, for admins only."""

from __future__ import annotations

import os
import re
import shutil
import time
from email.message import EmailMessage
from pathlib import Path

import itsdangerous.timed
import pytest
from flask import Flask
from flask.testing import FlaskClient

from forwarder.adapters.senders import MaildirSender
from tests.web.conftest import csrf, signup
from tests.web.test_admin_page import make_admin
from tests.web.test_isolation_and_headers import assert_security_headers, inline_code, page_text

BASE = "/admin/outbox/"
START = 1_700_000_000


def outbox_path(app: Flask) -> Path:
    return Path(app.config["SETTINGS"].outbox)


def deliver(app: Flask, raw: bytes, recipient: str, age: int = 0) -> str:
    """``raw`` written by the outbox sender; its file's mtime set ``age`` seconds after START."""
    key = MaildirSender(outbox_path(app)).send(raw, sender="bounce@othermail.example", recipient=recipient)
    os.utime(stored(app, key), (START + age, START + age))
    return key


def stored(app: Flask, key: str) -> Path:
    [path] = [p for sub in ("new", "cur") for p in (outbox_path(app) / sub).iterdir() if p.name.split(":")[0] == key]
    return path


def admin(app: Flask, client: FlaskClient) -> FlaskClient:
    assert signup(client, "ann@example.org").status_code == 302
    make_admin(app, "ann@example.org")
    return client


PLAIN = (
    b"From: Store <orders@store.example>\r\nTo: shop@othermail.example\r\nSubject: Parcel 1\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <p1@store.example>\r\n\r\nOn its way.\r\n"
)
ENCODED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@store.example>\r\nTo: shop@othermail.example\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n\r\nHallo.\r\n"
)
MALFORMED = (
    b"From: \xff\xfe garbage \x80 <x@y>\nSubject: broken \xe9\xe8 header\nthis line is no header\n"
    b"X-Stray \x00 bytes\nbody text without a blank line"
)
HTML = (
    b"From: evil@attacker.example\r\nSubject: <b>bold</b> subject\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p><script>alert(1)</script>\r\n"
)


def with_attachment() -> bytes:
    message = EmailMessage()
    message["From"] = "Billing <billing@store.example>"
    message["To"] = "shop@othermail.example"
    message["Subject"] = "Your invoice"
    message.set_content("The invoice is attached.\n")
    message.add_attachment(b"%PDF-1.4 " + b"x" * 991, maintype="application", subtype="pdf", filename="invoice.pdf")
    return bytes(message)


@pytest.fixture
def keys(app: Flask) -> dict[str, str]:
    return {
        "plain": deliver(app, PLAIN, "home@real.example", age=10),
        "encoded": deliver(app, ENCODED, "jörg@real.example", age=20),
        "malformed": deliver(app, MALFORMED, "broken@real.example", age=30),
        "html": deliver(app, HTML, "html@real.example", age=40),
        "attachment": deliver(app, with_attachment(), "billing@real.example", age=50),
    }


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    assert_security_headers(response, path)
    html = response.get_data(as_text=True)
    assert not inline_code(html), path
    return html


def test_the_admin_page_links_to_the_outbox(app: Flask, client: FlaskClient) -> None:
    html = page(admin(app, client), "/admin/")
    assert f'<a href="{BASE}">Outbox (mail catcher)</a>' in html


def test_the_list_is_newest_first_with_decoded_subjects_and_recipients(
    app: Flask, client: FlaskClient, keys: dict[str, str]
) -> None:
    html = page(admin(app, client), BASE)
    order = re.findall(r'<tr data-key="([^"]+)">', html)
    assert order == [keys[k] for k in ("attachment", "html", "malformed", "encoded", "plain")]
    assert "Grüße aus Köln" in html and "=?utf-8?" not in html
    assert "Jörg &lt;jorg@store.example&gt;" in html
    assert "jörg@real.example" in html and "home@real.example" in html and "billing@real.example" in html
    assert "Parcel 1" in html and "Your invoice" in html
    assert "&lt;b&gt;bold&lt;/b&gt; subject" in html and "<b>bold</b>" not in html
    assert "broken" in html  # the malformed message is listed too
    assert "2023-11-14 22:13:30" in html  # its file's time (UTC)
    for key in keys.values():
        assert f'href="{BASE}{key}"' in html
    assert "5 messages" in html


def test_a_message_shows_its_headers_and_text(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    admin(app, client)
    html = page(client, BASE + keys["plain"])
    assert "Delivered-To: home@real.example\r\nFrom: Store &lt;orders@store.example&gt;\r\nTo: shop@othermail" in html
    assert "Message-ID: &lt;p1@store.example&gt;" in html
    assert "On its way." in html and "Parcel 1" in html
    assert f'href="{BASE}{keys["plain"]}/raw"' in html and "Download .eml" in html

    html = page(client, BASE + keys["encoded"])
    assert "Grüße aus Köln" in html and "Hallo." in html
    assert "Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=" in html  # the stored header, as it is


def test_html_is_shown_as_escaped_source_never_as_markup(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    html = page(admin(app, client), BASE + keys["html"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;p&gt;Hi&lt;/p&gt;" in html
    assert "<script" not in html and "<p>Hi" not in html and "<b>bold" not in html
    assert "shown as source" in html


def test_attachments_are_listed(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    html = page(admin(app, client), BASE + keys["attachment"])
    assert "The invoice is attached." in html
    attachment = r"<td[^>]*>invoice.pdf</td><td[^>]*><code>application/pdf</code></td><td[^>]*>1.0 kB</td>"
    assert re.search(attachment, html), html
    assert 'Attachments <span class="muted">(1)</span>' in html


def test_a_malformed_message_is_shown_not_a_500(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    html = page(admin(app, client), BASE + keys["malformed"])
    assert "broken" in html and "header" in html
    assert "body text without a blank line" in html
    assert "\x00" not in html


def test_the_download_is_the_stored_file_byte_for_byte(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    admin(app, client)
    for key in keys.values():
        response = client.get(f"{BASE}{key}/raw")
        assert response.status_code == 200
        assert response.mimetype == "message/rfc822"
        assert response.headers["Content-Disposition"] == f'attachment; filename="{key}.eml"'
        assert response.get_data() == stored(app, key).read_bytes()
        assert_security_headers(response, key)
    assert client.get(f"{BASE}{keys['malformed']}/raw").get_data().startswith(b"Delivered-To: broken@real.example\n")


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "..",
        ".",
        "%2e%2e%2fnew",
        "new",
        "cur",
        "tmp",
        "1700000000.M1P1Q1.nowhere",
        "..%252f..%252fetc%252fpasswd",
        "a%00b",
        "a b",
        "key;rm",
        "~root",
        "..%5C..%5Cetc",
        "new%2F{key}",
        "{key}%2F..",
        "{key}:2,S",
        ".{key}",
    ],
)
def test_bad_keys_are_404(app: Flask, client: FlaskClient, keys: dict[str, str], path: str) -> None:
    admin(app, client)
    path = path.replace("{key}", keys["plain"])
    for suffix in ("", "/raw"):
        response = client.get(BASE + path + suffix)
        assert response.status_code == 404, (path + suffix, response.status_code)
        assert b"root:" not in response.get_data()


def test_non_admins_get_what_the_admin_page_gives_them(
    app: Flask, client: FlaskClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert signup(client, "bob@example.org").status_code == 302
    expected = client.get("/admin/")
    assert expected.status_code == 403
    # Each page is signed a second later than the one before, as when the clock ticks between two
    # requests: only the token's timestamp may differ, never what the page says.
    now = int(time.time())
    clock = iter(range(now, now + 100))
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: next(clock))
    for path in (BASE, BASE + keys["plain"], f"{BASE}{keys['plain']}/raw", BASE + "no-such-key"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert page_text(response) == page_text(expected), path
    token = csrf(client, "/account/")
    assert client.post(BASE + "delete", data={"csrf_token": token}).status_code == 403
    assert len(list((outbox_path(app) / "new").iterdir())) == len(keys)


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    for path in (BASE, BASE + keys["plain"], f"{BASE}{keys['plain']}/raw"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/signin"), path
    token = csrf(client, "/signin")
    response = client.post(BASE + "delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].startswith("/signin")
    assert len(list((outbox_path(app) / "new").iterdir())) == len(keys)


def test_delete_all_needs_csrf_and_empties_the_outbox(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    admin(app, client)
    assert client.post(BASE + "delete").status_code == 400
    assert client.post(BASE + "delete", data={"csrf_token": "forged"}).status_code == 400
    assert len(list((outbox_path(app) / "new").iterdir())) == len(keys)
    token = csrf(client, BASE)
    response = client.post(BASE + "delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(BASE)
    assert [p for sub in ("new", "cur") for p in (outbox_path(app) / sub).iterdir()] == []
    html = page(client, BASE)
    assert "Deleted 5 messages from the outbox." in html
    assert "The outbox is empty: nothing delivered yet." in html
    assert client.get(f"{BASE}{keys['plain']}/raw").status_code == 404


def test_an_absent_outbox_says_so_plainly(app: Flask, client: FlaskClient) -> None:
    admin(app, client)
    assert not outbox_path(app).exists()
    html = page(client, BASE)
    assert "The outbox is empty: nothing delivered yet." in html
    assert not outbox_path(app).exists()  # reading never creates it
    assert client.get(BASE + "1700000000.M1P1Q1.host").status_code == 404
    token = csrf(client, BASE + "?page=1")
    assert client.post(BASE + "delete", data={"csrf_token": token}).status_code == 302
    assert not outbox_path(app).exists()


def test_a_sender_other_than_the_outbox_is_named(app: Flask, client: FlaskClient) -> None:
    from dataclasses import replace

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], sender="smtp")
    html = page(admin(app, client), BASE)
    assert "the sender is <code>smtp</code>" in html


def test_a_broken_outbox_folder_is_no_500(app: Flask, client: FlaskClient, keys: dict[str, str]) -> None:
    admin(app, client)
    shutil.rmtree(outbox_path(app) / "cur")
    html = page(client, BASE)
    assert "The outbox is empty: nothing delivered yet." in html


def test_sixty_messages_are_paginated(app: Flask, client: FlaskClient) -> None:
    admin(app, client)
    keys = [
        deliver(app, f"From: a@b.example\r\nSubject: Message {n:02d}\r\n\r\nx\r\n".encode(), "home@real.example", age=n)
        for n in range(60)
    ]
    first = page(client, BASE)
    assert "Message 59" in first and "Message 10" in first and "Message 09" not in first
    assert "page 1 of 2" in first and f'href="{BASE}?page=2"' in first
    assert len(re.findall(r"<tr data-key=", first)) == 50
    second = page(client, BASE + "?page=2")
    assert re.findall(r'<tr data-key="([^"]+)">', second) == keys[9::-1]
    assert "page 2 of 2" in second and "Message 10" not in second
    assert "page 2 of 2" in page(client, BASE + "?page=99")  # past the end: the last page
    assert "page 1 of 2" in page(client, BASE + "?page=nope")


def test_a_huge_page_number_is_the_last_page_not_a_500(app: Flask, client: FlaskClient) -> None:
    """Issue 12.10: any page number, however large, shows a page."""
    admin(app, client)
    deliver(app, PLAIN, "home@real.example")
    for number in ("9223372036854775807", "9" * 40, "-" + "9" * 20):
        assert "Parcel 1" in page(client, f"{BASE}?page={number}")


def test_links_in_a_message_are_clickable_http_only_and_escaped(app: Flask, client: FlaskClient) -> None:
    """Issue 12.24: the verification link in Admin -> Outbox could not be clicked."""
    admin(app, client)
    body = (
        "Open https://othermail.test/destinations/verify/abc.def-ghi_jkl?x=1&y=2.\n"
        "Not these: javascript:alert(1) data:text/html,hi ftp://files.example/x\n"
        "Nor this one's payload: http://evil.example/\"><script>alert(2)</script>\n"
    )
    raw = f"From: noreply@othermail.example\r\nSubject: Links\r\n\r\n{body}".encode()
    html = page(client, BASE + deliver(app, raw, "me@real.example"))
    anchors = re.findall(r"<a [^>]*>", html.split('<pre class="outbox-body">', 1)[1].split("</pre>", 1)[0])
    assert anchors == [
        '<a href="https://othermail.test/destinations/verify/abc.def-ghi_jkl?x=1&amp;y=2" rel="noopener noreferrer">',
        '<a href="http://evil.example/" rel="noopener noreferrer">',
    ]
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "<script>" not in html
    assert "javascript:alert(1)" in html and "ftp://files.example/x" in html  # shown, not linked
