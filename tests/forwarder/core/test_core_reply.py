"""forwarder.core.reply: a user's reply leaves from the alias and never names their real mailbox.

The samples imitate the header and quoting styles of Gmail, Outlook, Apple Mail and Thunderbird
(written for these tests, not captured mail). ``test_core_reply_property.py`` generates many more.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
from datetime import UTC, datetime
from email.message import EmailMessage

from forwarder.core import Outcome, prepare, validate_bytes
from forwarder.core.message import split_message
from forwarder.core.reply import ReplyResult, reply

ME = "me@real.example"
ALIAS = "shop-7hq2@othermail.example"
JANE_REVERSE = "k3j5m7p9q2r4t6v8@othermail.example"
BOB_REVERSE = "a2b3c4d5e6f7g8h9@othermail.example"
CONTACTS = {JANE_REVERSE: ("jane@example.com", "Jane Doe"), BOB_REVERSE: ("bob@example.org", "Bob")}
SEEN_TO_ORIGINAL = {
    "<0100018f4a@email.amazonses.com>": "<jane-1@mail.example.com>",
    "<0100018f4b@email.amazonses.com>": "<jane-2@mail.example.com>",
}
NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
NEW_ID = "<reply-1@othermail.example>"


def run(raw: bytes, **overrides: object) -> ReplyResult:
    arguments: dict[str, object] = {
        "alias_address": ALIAS,
        "alias_display_name": "Shop",
        "destination_addresses": [ME],
        "reverse_to_real": CONTACTS,
        "original_id": SEEN_TO_ORIGINAL.get,
        "message_id": NEW_ID,
        "now": NOW,
    }
    arguments.update(overrides)
    return reply(prepare(raw), **arguments)  # type: ignore[arg-type]  # a test's keyword bag


def parsed(result: ReplyResult) -> EmailMessage:
    message = email.message_from_bytes(result.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def texts(result: ReplyResult) -> list[str]:
    return [part.get_content() for part in parsed(result).walk() if part.get_content_maintype() == "text"]


def header_names(result: ReplyResult) -> list[str]:
    return [f.name for f in split_message(result.raw).fields]


def assert_clean(result: ReplyResult) -> None:
    assert result.outcome is Outcome.REPLIED, result.reason
    assert result.sends
    assert ME.encode() not in result.raw.lower()
    for text in texts(result):
        assert ME not in text.lower()
    assert validate_bytes(result.raw) == []


GMAIL = (
    b"Received: by mail-ed1-f41.google.com with SMTP id 4fb4\r\n"
    b"        for <k3j5m7p9q2r4t6v8@othermail.example>; Mon, 06 May 2024 03:01:02 -0700 (PDT)\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=real.example; s=20230601;\r\n"
    b"        h=to:subject:message-id:date:from:in-reply-to:references:mime-version; bh=abc=; b=def=\r\n"
    b"X-Google-DKIM-Signature: v=1; a=rsa-sha256; d=1e100.net; b=xyz=\r\n"
    b"X-Gm-Message-State: AOJu0YwCkq\r\n"
    b"X-Google-Smtp-Source: AGHT+IFq\r\n"
    b"X-Received: by 2002:a05:6402:1 with SMTP id 1; Mon, 06 May 2024 03:01:01 -0700 (PDT)\r\n"
    b"MIME-Version: 1.0\r\n"
    b"References: <0100018f4a@email.amazonses.com> <CAunknown@mail.gmail.com>\r\n"
    b"In-Reply-To: <0100018f4a@email.amazonses.com>\r\n"
    b"From: Me Real <me@real.example>\r\n"
    b"Date: Mon, 6 May 2024 12:01:00 +0200\r\n"
    b"Message-ID: <CAFx9abc=def@mail.gmail.com>\r\n"
    b"Subject: Re: Lunch?\r\n"
    b'To: "Jane Doe (jane at example.com)" <k3j5m7p9q2r4t6v8@othermail.example>\r\n'
    b'Content-Type: multipart/alternative; boundary="0000000000001a2b3c0617c4d5e6"\r\n'
    b"\r\n"
    b"--0000000000001a2b3c0617c4d5e6\r\n"
    b'Content-Type: text/plain; charset="UTF-8"\r\n'
    b"\r\n"
    b"Sounds good, see you at noon.\r\n"
    b"\r\n"
    b"On Mon, May 6, 2024 at 11:00 AM Me Real <me@real.example> wrote:\r\n"
    b"\r\n"
    b"> Shall we?\r\n"
    b">\r\n"
    b"\r\n"
    b"--0000000000001a2b3c0617c4d5e6\r\n"
    b'Content-Type: text/html; charset="UTF-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b'<div dir=3D"ltr">Sounds good, see you at noon.</div><br><div class=3D"gmail_quote">=\r\n'
    b'<div dir=3D"ltr" class=3D"gmail_attr">On Mon, May 6, 2024 at 11:00 AM Me Real &lt;<a hr=\r\n'
    b'ef=3D"mailto:me@real.example">me@real.example</a>&gt; wrote:<br></div><blockquote class=\r\n'
    b'=3D"gmail_quote" style=3D"margin:0px 0px 0px 0.8ex">Shall we?</blockquote></div>\r\n'
    b"\r\n"
    b"--0000000000001a2b3c0617c4d5e6--\r\n"
)


def test_gmail_reply_leaves_from_the_alias_with_mapped_threading() -> None:
    result = run(GMAIL)
    assert_clean(result)
    message = parsed(result)
    assert message["From"] == f"Shop <{ALIAS}>"
    assert message["To"] == "Jane Doe <jane@example.com>"
    assert message["Message-ID"] == NEW_ID
    assert message["In-Reply-To"] == "<jane-1@mail.example.com>"
    assert message["References"] == "<jane-1@mail.example.com>"  # the unmapped Gmail id is dropped
    assert b"\r\nDate: Mon, 6 May 2024 12:01:00 +0200\r\n" in result.raw  # kept as written
    assert message["Subject"] == "Re: Lunch?"
    assert result.envelope_recipients == ("jane@example.com",)
    assert result.bypassed == ()
    plain, html = texts(result)
    assert f"Me Real <{ALIAS}> wrote:" in plain
    assert f'href="mailto:{ALIAS}">{ALIAS}</a>' in html
    assert "gmail_quote" in html


def test_only_allowlisted_fields_leave() -> None:
    names = header_names(run(GMAIL))
    assert sorted(names) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Content-Type",
            "Message-ID",
            "In-Reply-To",
            "References",
            "MIME-Version",
        ]
    )


def test_parts_without_the_address_keep_their_bytes() -> None:
    raw = GMAIL.replace(b"<me@real.example> wrote:\r\n\r\n> Shall", b"wrote:\r\n\r\n> Shall")
    result = run(raw)
    plain_in = raw[raw.index(b"Sounds good") : raw.index(b"--0000000000001a2b3c0617c4d5e6\r\nContent-Type: text/html")]
    out = result.raw
    assert plain_in in out
    assert b"me@real" not in out.lower()


OUTLOOK_HTML = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>'
    '<div dir="ltr">Grüße, passt!</div><hr style="display:inline-block;width:98%" tabindex="-1">'
    '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt">'
    "<b>From:</b> Me Real &lt;ME@Real.Example&gt;<br>"
    "<b>Sent:</b> Monday, May 6, 2024 11:00 AM<br>"
    "<b>To:</b> Jane Doe (jane at example.com) &lt;k3j5m7p9q2r4t6v8@othermail.example&gt;<br>"
    '<b>Cc:</b> <a href="mailto:me%40real.example">me&#64;real.example</a><br>'
    "<b>Subject:</b> Lunch?</font><div>&nbsp;</div></div></body></html>"
)
OUTLOOK = (
    b"Received: from AM9PR01MB1234.eurprd01.prod.outlook.com (2603:10a6::1) by\r\n"
    b" AM0PR01MB5678.eurprd01.prod.outlook.com with HTTPS; Mon, 6 May 2024 10:01:02 +0000\r\n"
    b"ARC-Seal: i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none; b=abc\r\n"
    b"From: Me Real <ME@real.example>\r\n"
    b"To: Jane Doe (jane at example.com) <K3J5M7P9Q2R4T6V8@othermail.example>\r\n"
    b"Subject: RE: Lunch?\r\n"
    b"Thread-Topic: Lunch?\r\n"
    b"Thread-Index: AQHann4vK2o1pL3mTUu2Xn9cQ1w==\r\n"
    b"Date: Mon, 6 May 2024 10:01:02 +0000\r\n"
    b"Message-ID: <AM9PR01MB1234ABCD@AM9PR01MB1234.eurprd01.prod.outlook.com>\r\n"
    b"References: <0100018f4b@email.amazonses.com>\r\n"
    b"In-Reply-To: <0100018f4b@email.amazonses.com>\r\n"
    b"Accept-Language: de-DE, en-US\r\n"
    b"Content-Language: de-DE\r\n"
    b"X-MS-Has-Attach:\r\n"
    b"X-MS-TNEF-Correlator:\r\n"
    b"X-MS-Exchange-Organization-SCL: -1\r\n"
    b"X-Originating-IP: [203.0.113.7]\r\n"
    b'Content-Type: multipart/alternative; boundary="_000_AM9PR01MB1234_"\r\n'
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    b"--_000_AM9PR01MB1234_\r\n"
    b'Content-Type: text/plain; charset="Windows-1252"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=FC=DFe, passt!\r\n"
    b"________________________________\r\n"
    b"From: Me Real <ME@Real.Example>\r\n"
    b"Sent: Monday, May 6, 2024 11:00 AM\r\n"
    b"Subject: Lunch?\r\n"
    b"\r\n"
    b"--_000_AM9PR01MB1234_\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + b"\r\n".join(
        base64.b64encode(OUTLOOK_HTML.encode())[i : i + 76] for i in range(0, len(OUTLOOK_HTML.encode()) * 2, 76)
    ).rstrip(b"\r\n")
    + b"\r\n\r\n--_000_AM9PR01MB1234_--\r\n"
)


def test_outlook_reply_base64_html_and_windows_1252() -> None:
    result = run(OUTLOOK)
    assert_clean(result)
    names = header_names(result)
    for gone in ("Thread-Index", "Thread-Topic", "X-MS-Has-Attach", "X-Originating-IP", "ARC-Seal", "Received"):
        assert gone not in names
    assert "Accept-Language" not in names
    message = parsed(result)
    assert message["Content-Language"] == "de-DE"
    assert message["In-Reply-To"] == "<jane-2@mail.example.com>"
    assert result.envelope_recipients == ("jane@example.com",)  # the upper-case reverse address is found
    plain_part, html_part = [p for p in message.walk() if p.get_content_maintype() == "text"]
    assert plain_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain_part.get_content_charset() == "windows-1252"
    assert plain_part.get_content().startswith("Grüße, passt!")
    assert f"From: Me Real <{ALIAS}>" in plain_part.get_content()
    assert html_part["Content-Transfer-Encoding"] == "base64"
    html = html_part.get_content()
    assert f"<b>From:</b> Me Real &lt;{ALIAS}&gt;" in html
    assert f'<a href="mailto:{ALIAS}">{ALIAS}</a>' in html
    assert "Grüße" in html


APPLE_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2)
APPLE = (
    b"Return-Path: <me@real.example>\r\n"
    b"Received: from smtpclient.apple ([203.0.113.9]) by smtp.real.example\r\n"
    b"From: Me Real <me@real.example>\r\n"
    b"Content-Type: multipart/mixed;\r\n"
    b'\tboundary="Apple-Mail=_5C0F2A7E-1D1B-4E0A-9C3E-7A1F2B3C4D5E"\r\n'
    b"Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.500.171.1.1\\))\r\n"
    b"Subject: Re: Lunch?\r\n"
    b"Date: Mon, 6 May 2024 12:05:00 +0200\r\n"
    b"In-Reply-To: <0100018f4a@email.amazonses.com>\r\n"
    b"Cc: Bob <a2b3c4d5e6f7g8h9@othermail.example>\r\n"
    b"To: Jane Doe (jane at example.com) <k3j5m7p9q2r4t6v8@othermail.example>\r\n"
    b"References: <0100018f4a@email.amazonses.com>\r\n"
    b"Message-Id: <5A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9@real.example>\r\n"
    b"X-Mailer: Apple Mail (2.3774.500.171.1.1)\r\n"
    b"X-Apple-Base-Url: x-msg://12/\r\n"
    b"X-Apple-Mail-Remote-Attachments: YES\r\n"
    b"X-Universally-Unique-Identifier: 0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\r\n"
    b"\r\n"
    b"\r\n"
    b"--Apple-Mail=_5C0F2A7E-1D1B-4E0A-9C3E-7A1F2B3C4D5E\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Type: text/plain;\r\n"
    b"\tcharset=utf-8\r\n"
    b"\r\n"
    b"Sure =E2=80=93 the menu is attached.\r\n"
    b"\r\n"
    b"> On 6 May 2024, at 11:00, Me Real <me@re=\r\n"
    b"al.example> wrote:\r\n"
    b">=20\r\n"
    b"> Shall we?\r\n"
    b"\r\n"
    b"--Apple-Mail=_5C0F2A7E-1D1B-4E0A-9C3E-7A1F2B3C4D5E\r\n"
    b"Content-Disposition: inline;\r\n"
    b"\tfilename=menu.png\r\n"
    b"Content-Type: image/png;\r\n"
    b"\tx-unix-mode=0644;\r\n"
    b"\tname=menu.png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + APPLE_PNG + b"\r\n"
    b"--Apple-Mail=_5C0F2A7E-1D1B-4E0A-9C3E-7A1F2B3C4D5E--\r\n"
)


def test_apple_mail_reply_quoted_printable_split_address_and_attachment_untouched() -> None:
    result = run(APPLE)
    assert_clean(result)
    names = header_names(result)
    assert not [n for n in names if n.lower().startswith(("x-", "return-path", "received"))]
    message = parsed(result)
    assert message["Cc"] == "Bob <bob@example.org>"
    assert message["MIME-Version"] == "1.0"
    assert result.envelope_recipients == ("jane@example.com", "bob@example.org")
    plain = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert f"> On 6 May 2024, at 11:00, Me Real <{ALIAS}> wrote:" in plain.get_content()
    assert "Sure – the menu is attached." in plain.get_content()
    image_part = (
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + APPLE_PNG
        + b"\r\n--Apple-Mail=_5C0F2A7E-1D1B-4E0A-9C3E-7A1F2B3C4D5E--"
    )
    assert image_part in result.raw  # the attachment's bytes, byte for byte


THUNDERBIRD = (
    b"Message-ID: <3f1c2b8a-9d7e-4c6b-a5f4-0e1d2c3b4a59@real.example>\n"
    b"Date: Mon, 6 May 2024 12:10:00 +0200\n"
    b"MIME-Version: 1.0\n"
    b"User-Agent: Mozilla Thunderbird\n"
    b"Subject: Re: Lunch?\n"
    b"Content-Language: en-US\n"
    b"To: Jane Doe (jane at example.com) <k3j5m7p9q2r4t6v8@othermail.example>\n"
    b"References: <0100018f4a@email.amazonses.com>\n"
    b"From: Me Real <me@real.example>\n"
    b"In-Reply-To: <0100018f4a@email.amazonses.com>\n"
    b"Content-Type: text/plain; charset=UTF-8; format=flowed\n"
    b"Content-Transfer-Encoding: 7bit\n"
    b"\n"
    b"Yes, noon works for me. Could you send the address to \n"
    b"me@real.example as well?\n"
    b"\n"
    b"On 06/05/2024 11:00, Jane Doe (jane at example.com) wrote:\n"
    b"> Shall we?\n"
    b"\n"
    b"-- \n"
    b"Me Real <ME@REAL.EXAMPLE>\n"
)


def test_thunderbird_format_flowed_stays_7bit_and_flowed() -> None:
    result = run(THUNDERBIRD)
    assert_clean(result)
    assert "User-Agent" not in header_names(result)
    head, _, body = result.raw.partition(b"\n\n")
    assert b"Content-Type: text/plain; charset=UTF-8; format=flowed\n" in head + b"\n"
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert body == THUNDERBIRD.partition(b"\n\n")[2].replace(b"me@real.example", ALIAS.encode()).replace(
        b"ME@REAL.EXAMPLE", ALIAS.encode()
    )
    assert b"to \n" in body  # the flowed soft break (trailing space) is kept


def test_reply_all_maps_every_reverse_address_and_reports_the_rest() -> None:
    raw = (
        b"From: me@real.example\r\n"
        b"To: Jane <k3j5m7p9q2r4t6v8@othermail.example>, carol@elsewhere.example\r\n"
        b"Cc: A2B3C4D5E6F7G8H9@othermail.example, shop-7hq2@othermail.example, Me <me@real.example>,\r\n"
        b" Jane again <k3j5m7p9q2r4t6v8@othermail.example>, Dave <DAVE@elsewhere.example>\r\n"
        b"Subject: all\r\n\r\nhi\r\n"
    )
    result = run(raw)
    assert result.outcome is Outcome.REPLIED
    assert result.envelope_recipients == ("jane@example.com", "bob@example.org")
    assert result.bypassed == ("carol@elsewhere.example", "dave@elsewhere.example")
    message = parsed(result)
    assert message["To"] == "Jane Doe <jane@example.com>"  # the contact's name, not the client's
    assert message["Cc"] == "Bob <bob@example.org>"


def test_no_reverse_address_sends_nothing() -> None:
    raw = b"From: me@real.example\r\nTo: carol@elsewhere.example\r\nCc: shop-7hq2@othermail.example\r\n\r\nhi\r\n"
    result = run(raw)
    assert result.outcome is Outcome.DROPPED_NO_DESTINATION
    assert not result.sends
    assert result.raw == b""
    assert result.envelope_recipients == ()
    assert result.bypassed == ("carol@elsewhere.example",)


def test_empty_display_name_gives_a_bare_from_and_date_is_added() -> None:
    raw = b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n\r\nhi\r\n"
    result = run(raw, alias_display_name="")
    head = result.raw.split(b"\r\n\r\n")[0]
    assert head.startswith(b"From: " + ALIAS.encode() + b"\r\n")
    assert b"\r\nDate: Mon, 06 May 2024 12:00:00 +0000" in head
    assert b"Date:" not in run(raw, now=None).raw
    assert validate_bytes(result.raw) == []


def test_subject_naming_the_address_is_scrubbed() -> None:
    raw = (
        b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"Subject: =?utf-8?q?Antwort_an_ME=40real.example_=E2=9C=93?=\r\n\r\nhi\r\n"
    )
    result = run(raw)
    assert_clean(result)
    assert parsed(result)["Subject"] == f"Antwort an {ALIAS} ✓"


def test_escaped_forms_in_html_and_plain_text() -> None:
    html = (
        "<p>&lt;ME@Real.Example&gt; <a href='mailto:me%40real%2Eexample?subject=x'>x</a> "
        "me&#64;real&#x2e;example me&commat;real&period;example</p>"
    )
    raw = (
        b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    )
    result = run(raw)
    assert_clean(result)
    body = result.raw.partition(b"\r\n\r\n")[2].decode()
    assert body == (f"<p>&lt;{ALIAS}&gt; <a href='mailto:{ALIAS}?subject=x'>x</a> {ALIAS} {ALIAS}</p>")


def test_7bit_part_that_outgrows_its_line_limit_becomes_quoted_printable() -> None:
    line = b"x" * 980 + b" " + ME.encode()
    raw = (
        b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + line + b"\r\n"
    )
    result = run(raw)
    assert_clean(result)
    message = parsed(result)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert quopri.decodestring(result.raw.partition(b"\r\n\r\n")[2]) == b"x" * 980 + b" " + ALIAS.encode() + b"\r\n"


def test_unmapped_threading_ids_are_dropped_and_fields_omitted() -> None:
    raw = (
        b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"In-Reply-To: <unknown@x.example>\r\nReferences: <unknown@x.example>\r\n\r\nhi\r\n"
    )
    names = header_names(run(raw))
    assert "In-Reply-To" not in names and "References" not in names
    assert "Message-ID" in names


def test_bare_ids_from_the_lookup_get_angle_brackets() -> None:
    raw = (
        b"From: me@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"In-Reply-To: <0100018f4a@email.amazonses.com>\r\n\r\nhi\r\n"
    )
    result = run(raw, original_id=lambda _seen: "jane-1@mail.example.com", message_id="r-2@othermail.example")
    message = parsed(result)
    assert message["In-Reply-To"] == "<jane-1@mail.example.com>"
    assert message["Message-ID"] == "<r-2@othermail.example>"


def test_subject_naming_the_address_only_in_its_raw_bytes_is_rewritten() -> None:
    # "_" in a Q-encoded word is a space: the text reads "me x@real.example", the bytes do not
    raw = (
        b"From: me_x@real.example\r\nTo: k3j5m7p9q2r4t6v8@othermail.example\r\n"
        b"Subject: =?utf-8?q?Re:_me_x@real.example?=\r\n\r\nhi\r\n"
    )
    result = run(raw, destination_addresses=["me_x@real.example"])
    assert b"me_x@real.example" not in result.raw.lower()
    assert parsed(result)["Subject"] == "Re: me x@real.example"
