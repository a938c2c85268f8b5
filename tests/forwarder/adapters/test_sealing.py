"""Sealer: AES-GCM sealing of contacts' addresses and keyed lookup digests (issue 14)."""

from __future__ import annotations

import base64

import pytest

from forwarder.adapters.sealing import Sealer, new_key_entry, parse_keys
from forwarder.errors import OthermailError, SealError

OLD = ("k1", bytes(range(32)))
NEW = ("k2", bytes(range(32, 64)))


def test_a_sealed_text_opens_to_itself_and_does_not_show_it() -> None:
    sealer = Sealer([OLD])
    sealed = sealer.seal("Ann.Example@Mail.example")
    assert sealed.startswith("k1:")
    assert "ann" not in sealed.lower() and "mail.example" not in sealed.lower()
    assert sealer.open(sealed) == "Ann.Example@Mail.example"
    assert sealer.seal("x") != sealer.seal("x")  # a fresh nonce each time


def test_a_wrong_key_unknown_key_or_tampered_text_is_a_seal_error() -> None:
    sealed = Sealer([OLD]).seal("ann@example.org")
    with pytest.raises(SealError):
        Sealer([("k1", bytes(32))]).open(sealed)  # same id, other key
    with pytest.raises(SealError):
        Sealer([NEW]).open(sealed)  # unknown id
    key_id, body = sealed.split(":", 1)
    flipped = base64.urlsafe_b64encode(
        bytes([base64.urlsafe_b64decode(body)[0] ^ 1]) + base64.urlsafe_b64decode(body)[1:]
    )
    with pytest.raises(SealError):
        Sealer([OLD]).open(f"{key_id}:{flipped.decode()}")
    with pytest.raises(SealError):
        Sealer([OLD]).open("k2:" + body)  # the key id is bound to the text (AAD)
    for junk in ("", "no-colon", "k1:!!!", "k1:"):
        with pytest.raises(SealError):
            Sealer([OLD]).open(junk)
    assert issubclass(SealError, OthermailError)


def test_during_a_rotation_old_texts_open_and_new_ones_are_sealed_with_the_current_key() -> None:
    old_sealed = Sealer([OLD]).seal("ann@example.org")
    rotating = Sealer([NEW, OLD])
    assert rotating.open(old_sealed) == "ann@example.org"
    assert rotating.seal("bob@example.org").startswith("k2:")
    assert rotating.current_id == "k2"
    with pytest.raises(SealError):
        Sealer([NEW]).open(old_sealed)  # once the old key is gone


def test_digests_are_stable_normalized_and_keyed() -> None:
    sealer = Sealer([OLD])
    digest = sealer.digest("ann@example.org")
    assert digest == Sealer([OLD]).digest("  ANN@Example.org ")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest != sealer.digest("bob@example.org")
    assert digest != Sealer([NEW]).digest("ann@example.org")  # keyed
    import hashlib

    assert digest != hashlib.sha256(b"ann@example.org").hexdigest()
    rotating = Sealer([NEW, OLD])
    assert rotating.digests("ann@example.org") == [Sealer([NEW]).digest("ann@example.org"), digest]
    assert rotating.digest("ann@example.org") == Sealer([NEW]).digest("ann@example.org")


def test_keys_must_be_32_bytes_with_distinct_plain_ids() -> None:
    with pytest.raises(SealError):
        Sealer([])
    with pytest.raises(SealError):
        Sealer([("k1", bytes(16))])
    with pytest.raises(SealError):
        Sealer([("a:b", bytes(32))])
    with pytest.raises(SealError):
        Sealer([OLD, ("k1", bytes(32))])


def test_a_new_key_entry_parses_back() -> None:
    entry = new_key_entry()
    ((key_id, key),) = parse_keys(entry)
    assert entry.startswith(key_id + ":") and len(key) == 32
    assert new_key_entry() != entry
    assert parse_keys(f"{entry}, k1:{base64.urlsafe_b64encode(OLD[1]).decode()}")[1] == OLD


def test_a_digest_is_the_hmac_sha256_of_the_normalized_text_under_the_key_s_lookup_key() -> None:
    """What rows were stored under: the precomputed HMACs must give the very same digests."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def expected(key: bytes, text: str) -> str:
        lookup = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"othermail lookup").derive(key)
        return hmac.new(lookup, text.strip().lower().encode(), hashlib.sha256).hexdigest()

    sealer = Sealer([NEW, OLD])
    for text in (" Ann@Example.org ", "<Order-1@Shop.example>", ""):
        assert sealer.digests(text) == [expected(NEW[1], text), expected(OLD[1], text)]
        assert sealer.digest(text) == expected(NEW[1], text)
    assert sealer.digest("a@x.example") == sealer.digest("a@x.example")  # no state left over between calls
