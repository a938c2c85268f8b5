"""check_dkim reads an unsigned message's header only: dkimpy's parser splits and joins the whole
message into lines before anything can say there is no signature, which cost the one box's
listener more than the rest of its inbound authentication (issue 15.6). Signed mail is still
verified over the whole message, and a header dkimpy cannot read is still a permerror."""

from __future__ import annotations

import base64
import time

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forwarder.adapters.inbound_auth import checks
from forwarder.adapters.inbound_auth.checks import check_dkim, header_block
from forwarder.adapters.inbound_auth.resolver import Lookup

BODY = b"Lorem ipsum dolor sit amet.\r\n" * 400

#: Messages whose header dkimpy reads in some odd way: LF and CRLF mixed, a leading empty line,
#: no body, no empty line at all, a bare CR, a continuation line first, a line dkimpy refuses.
SHAPES = [
    b"From: a@example.net\r\nTo: b@example.org\r\n\r\n" + BODY,
    b"From: a@example.net\nTo: b@example.org\n\n" + BODY,
    b"From: a@example.net\r\nTo: b@example.org\n\r\n" + BODY,
    b"From: a@example.net\nTo: b@example.org\r\n\n" + BODY,
    b"\r\nFrom: a@example.net\r\n\r\n" + BODY,
    b"\nFrom: a@example.net\r\n\r\n" + BODY,
    b"From: a@example.net\r\nTo: b@example.org\r\n",
    b"From: a@example.net\r\nTo: b@example.org",
    b"From: a@example.net\r\r\nTo: b@example.org\r\n\r\n" + BODY,
    b"From: a@example.net\r\n\r\r\n\r\nSubject: in the body\r\n",
    b" folded: first\r\nFrom: a@example.net\r\n\r\n" + BODY,
    b"From a@example.net Mon Dec  7 09:00:00 2026\r\nFrom: a@example.net\r\n\r\n" + BODY,
    b"From: a@example.net\r\nnot a header line\r\n\r\n" + BODY,
    b"From: a@example.net\r\nSubject: DKIM-Signature in a subject\r\n\r\n" + BODY,
    b"From: a@example.net\r\n\r\nDKIM-Signature: v=1; in the body\r\n",
    b"",
]


def _parse(raw: bytes) -> object:
    try:
        return dkim.rfc822_parse(raw)[0]
    except Exception as exc:  # dkimpy's own error, or an IndexError for a continuation line first
        return ("error", exc.__class__, str(exc))


@pytest.mark.parametrize("raw", SHAPES)
def test_the_header_block_gives_dkimpy_the_same_header_fields(raw: bytes) -> None:
    assert _parse(header_block(raw)) == _parse(raw)
    assert raw.startswith(header_block(raw))


def _lookup() -> Lookup:
    return Lookup(None, time.monotonic() + 2.0)


def test_an_unsigned_message_s_body_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[int] = []
    real = dkim.DKIM

    class Spy(real):  # type: ignore[misc,valid-type]  # dkimpy is untyped
        def __init__(self, message: bytes, **kwargs: object) -> None:
            given.append(len(message))
            super().__init__(message, **kwargs)

    monkeypatch.setattr(checks.dkim, "DKIM", Spy)
    raw = SHAPES[0]
    results = check_dkim(raw, _lookup())
    assert [(r.method, r.result) for r in results] == [("dkim", "none")]
    assert given and max(given) < len(raw) - len(BODY) + 4


@pytest.mark.parametrize("raw", SHAPES)
def test_results_are_those_of_a_whole_message_parse(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = check_dkim(raw, _lookup())
    monkeypatch.setattr(checks, "header_block", lambda raw: raw)
    assert check_dkim(raw, _lookup()) == fast


def test_a_signed_message_is_verified_over_its_body() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = base64.b64encode(
        private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    raw = SHAPES[0]
    signature = dkim.sign(raw, b"sel", b"example.net", pem, include_headers=[b"from", b"to"])

    class Records(Lookup):
        def txt(self, name: str) -> list[bytes]:
            return [b"v=DKIM1; k=rsa; p=" + public] if name == "sel._domainkey.example.net" else []

    lookup = Records(None, time.monotonic() + 2.0)
    assert [r.result for r in check_dkim(signature + raw, lookup)] == ["pass"]
    tampered = signature + raw.replace(b"Lorem", b"Lorum", 1)
    assert [r.result for r in check_dkim(tampered, lookup)] == ["fail"]
