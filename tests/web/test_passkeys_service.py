"""web/services/passkeys.py: WebAuthn ceremonies checked with real signatures from the software
authenticator in tests/support/authenticator.py."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from flask import Flask
from sqlalchemy.orm import Session

from models import User, WebAuthnCredential, utcnow
from tests.support.authenticator import Authenticator, b64url, unb64url
from tests.support.factories import make_user
from web.services import passkeys
from web.services.errors import ServiceError

RP = passkeys.RelyingParty(id="mail.example.org", name="othermail", origin="https://mail.example.org")
SECRET = "test-secret"


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    with app.app_context():
        from web.db import session

        yield session()


@pytest.fixture
def ann(db: Session) -> User:
    user = make_user(db, "ann@example.org")
    db.commit()
    return user


def register(db: Session, user: User, device: Authenticator, name: str = "Laptop", **kw: object) -> WebAuthnCredential:
    options, ceremony = passkeys.registration_options(db, RP, user, SECRET, name)
    answer = device.create(options, **kw)  # type: ignore[arg-type]
    return passkeys.finish_registration(db, RP, passkeys.consume(db, ceremony, "register", user), user, answer)


def sign_in(db: Session, device: Authenticator, purpose: str = "signin", user: User | None = None, **kw: object):
    options, ceremony = passkeys.authentication_options(db, RP, purpose, user)
    answer = device.get(options, **kw)  # type: ignore[arg-type]
    return passkeys.finish_authentication(db, RP, passkeys.consume(db, ceremony, purpose, user), answer, user)


def test_a_registered_passkey_signs_in_and_counts(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    row = register(db, ann, device, name="  Phone\x00 ")
    assert (row.user_id, row.name, row.sign_count, row.transports) == (ann.id, "Phone", 1, "internal")
    assert row.last_used_at is None
    used = sign_in(db, device)
    assert used.id == row.id
    assert used.sign_count == 2
    assert used.last_used_at is not None and (utcnow() - used.last_used_at).total_seconds() < 60
    assert sign_in(db, device, "second-factor", ann).sign_count == 3


def test_registration_options_exclude_known_passkeys_and_hide_the_account_id(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    row = register(db, ann, device)
    options = json.loads(passkeys.registration_options(db, RP, ann, SECRET, "x")[0])
    assert [item["id"] for item in options["excludeCredentials"]] == [row.credential_id]
    assert options["rp"] == {"id": RP.id, "name": "othermail"}
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    handle = passkeys.user_handle(SECRET, ann)
    assert len(handle) == 32 and str(ann.id).encode() not in handle
    with pytest.raises(ValueError, match="excluded"):  # the authenticator refuses a second one
        device.create(options)


@pytest.mark.parametrize(
    "change",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://mail.example.org"},
    ],
)
def test_a_registration_from_another_origin_is_refused(db: Session, ann: User, change: dict) -> None:
    with pytest.raises(ServiceError) as refused:
        register(db, ann, Authenticator(RP.origin), **change)
    assert refused.value.code == "passkey_refused"
    assert passkeys.listed(db, ann) == []


def test_a_registration_for_another_relying_party_is_refused(db: Session, ann: User) -> None:
    options, ceremony = passkeys.registration_options(db, RP, ann, SECRET, "x")
    answer = Authenticator(RP.origin).create(options.replace('"mail.example.org"', '"evil.example"'))
    with pytest.raises(ServiceError, match="could not be checked"):
        passkeys.finish_registration(db, RP, passkeys.consume(db, ceremony, "register", ann), ann, answer)


def test_an_answer_to_other_options_is_refused(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device)
    first, _ = passkeys.authentication_options(db, RP, "signin")
    _, ceremony = passkeys.authentication_options(db, RP, "signin")
    with pytest.raises(ServiceError) as refused:
        passkeys.finish_authentication(db, RP, passkeys.consume(db, ceremony, "signin"), device.get(first))
    assert refused.value.status == 403


def test_a_ceremony_is_answered_once_fresh_and_for_its_purpose(db: Session, ann: User) -> None:
    _, ceremony = passkeys.authentication_options(db, RP, "signin")
    passkeys.consume(db, ceremony, "signin")
    with pytest.raises(ServiceError, match="expired or was used"):
        passkeys.consume(db, ceremony, "signin")  # the same challenge again (an old cookie)
    _, fresh = passkeys.authentication_options(db, RP, "signin")
    for bad in (
        dataclasses.replace(fresh, issued=fresh.issued - passkeys.CEREMONY_SECONDS - 1),
        dataclasses.replace(fresh, purpose="register"),
        None,
    ):
        with pytest.raises(ServiceError, match="expired or was used"):
            passkeys.consume(db, bad, "signin")
    other = make_user(db, "bob@example.org")
    _, mine = passkeys.registration_options(db, RP, ann, SECRET, "x")
    with pytest.raises(ServiceError, match="expired or was used"):
        passkeys.consume(db, mine, "register", other)
    assert passkeys.consume(db, fresh, "signin") == fresh  # refusals above did not use it up


def test_a_ceremony_survives_the_session_cookie_round_trip() -> None:
    ceremony = passkeys.Ceremony("register", "abc", 10, 3, "Key")
    assert passkeys.Ceremony.from_dict(json.loads(json.dumps(ceremony.to_dict()))) == ceremony
    assert passkeys.Ceremony.from_dict({"purpose": "other", "challenge": "a", "issued": 1}) is None
    assert passkeys.Ceremony.from_dict({"purpose": "signin"}) is None
    assert passkeys.Ceremony.from_dict("x") is None


def test_a_counter_that_goes_back_is_refused_as_a_clone(
    db: Session, ann: User, caplog: pytest.LogCaptureFixture
) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device)
    sign_in(db, device)  # counter 2
    with caplog.at_level(logging.WARNING, "othermail.web"), pytest.raises(ServiceError):
        sign_in(db, device, sign_count=1)
    assert "cloned authenticator" in caplog.text
    with pytest.raises(ServiceError):
        sign_in(db, device, sign_count=2)  # not moving on is refused too
    assert passkeys.listed(db, ann)[0].sign_count == 2
    assert sign_in(db, device, sign_count=7).sign_count == 7


def test_a_passkey_that_never_counts_signs_in_every_time(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device, counter_step=0)  # synced passkeys report 0
    for _ in range(3):
        assert sign_in(db, device).sign_count == 0


def test_signing_in_without_a_password_needs_user_verification(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device)
    device.user_verified = False
    with pytest.raises(ServiceError):
        sign_in(db, device)
    assert sign_in(db, device, "second-factor", ann).user_id == ann.id  # presence is enough after a password


def test_a_second_factor_must_be_the_accounts_own_passkey(db: Session, ann: User) -> None:
    bob = make_user(db, "bob@example.org")
    db.commit()
    bobs = Authenticator(RP.origin)
    register(db, bob, bobs)
    register(db, ann, Authenticator(RP.origin))
    options, ceremony = passkeys.authentication_options(db, RP, "second-factor", ann)
    answer = bobs.get(options, credential=bobs.credentials[0])
    with pytest.raises(ServiceError):
        passkeys.finish_authentication(db, RP, passkeys.consume(db, ceremony, "second-factor", ann), answer, ann)
    with pytest.raises(ServiceError, match="no passkey"):
        passkeys.authentication_options(db, RP, "second-factor", make_user(db, "cy@example.org"))


def test_a_deleted_account_cannot_sign_in_with_its_passkey(db: Session, ann: User) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device)
    ann.deleted_at = utcnow()
    db.commit()
    with pytest.raises(ServiceError):
        sign_in(db, device)


def test_removing_takes_only_ones_own_passkey(db: Session, ann: User) -> None:
    row = register(db, ann, Authenticator(RP.origin), name="Key")
    bob = make_user(db, "bob@example.org")
    with pytest.raises(ServiceError) as missing:
        passkeys.remove(db, bob, row.id)
    assert missing.value.status == 404
    assert passkeys.has_passkeys(db, ann)
    assert passkeys.remove(db, ann, row.id) == "Key"
    assert not passkeys.has_passkeys(db, ann)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://mail.example.org", RP),
        ("https://Mail.Example.org:8443/app", dataclasses.replace(RP, origin="https://mail.example.org:8443")),
        ("http://localhost:5000", passkeys.RelyingParty("localhost", "othermail", "http://localhost:5000")),
        ("https://mail.example.org:443/", RP),
        ("http://localhost:80", passkeys.RelyingParty("localhost", "othermail", "http://localhost")),
        ("http://127.0.0.1:5000", None),
        ("https://[::1]", None),
        ("", None),
    ],
)
def test_the_relying_party_is_the_public_address_host(base: str, expected: passkeys.RelyingParty | None) -> None:
    assert passkeys.relying_party(base) == expected


def _without_algorithm(answer: dict) -> dict:
    """The answer with its public key's algorithm left out (py_webauthn fails on it with a KeyError)."""
    attestation = cbor2.loads(unb64url(answer["response"]["attestationObject"]))
    auth_data = attestation["authData"]
    length = int.from_bytes(auth_data[53:55], "big")
    key = cbor2.loads(auth_data[55 + length :])
    del key[3]
    attestation["authData"] = auth_data[: 55 + length] + cbor2.dumps(key)
    answer["response"]["attestationObject"] = b64url(cbor2.dumps(attestation))
    return answer


@pytest.mark.parametrize(
    "spoil",
    [
        _without_algorithm,
        lambda a: {**a, "response": {**a["response"], "attestationObject": b64url(b"\xff\x00")}},
        lambda a: {**a, "response": {**a["response"], "clientDataJSON": b64url(b"[1]")}},
        lambda a: {**a, "rawId": "***"},
        lambda a: {**a, "type": "password"},
        lambda a: None,
    ],
)
def test_a_malformed_registration_is_a_refusal_not_an_error(db: Session, ann: User, spoil: Any) -> None:
    options, ceremony = passkeys.registration_options(db, RP, ann, SECRET, "x")
    answer = spoil(Authenticator(RP.origin).create(options))
    with pytest.raises(ServiceError, match="could not be checked"):
        passkeys.finish_registration(db, RP, ceremony, ann, answer)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda a: {**a, "response": {**a["response"], "authenticatorData": b64url(b"\x00" * 10)}},
        lambda a: {**a, "response": {**a["response"], "signature": b64url(b"\x30\x02\x01")}},
        lambda a: {**a, "response": {**a["response"], "clientDataJSON": "%%%"}},
        lambda a: {**a, "response": "x"},
        lambda a: None,
    ],
)
def test_a_malformed_assertion_is_a_refusal_not_an_error(db: Session, ann: User, spoil: Any) -> None:
    device = Authenticator(RP.origin)
    register(db, ann, device)
    options, ceremony = passkeys.authentication_options(db, RP, "signin")
    with pytest.raises(ServiceError) as refused:
        passkeys.finish_authentication(db, RP, ceremony, spoil(device.get(options)))
    assert refused.value.status == 403
