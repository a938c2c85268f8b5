"""A small software WebAuthn authenticator (ES256, "none" attestation) for tests.

It answers the JSON options a relying party sends (as ``navigator.credentials.create`` and
``.get`` would, in the browser's JSON form) with responses signed by real P-256 keys, so the
server's checks run on genuine signatures. Each credential keeps its own signature counter;
``counter_step=0`` makes one that never counts, as synced passkeys do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0
    counter_step: int = 1

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


@dataclass
class Authenticator:
    origin: str
    user_verified: bool = True
    credentials: list[Credential] = field(default_factory=list)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(data).encode()

    def _flags(self) -> int:
        return UP | (UV if self.user_verified else 0)

    def create(
        self, options: str | dict[str, Any], *, origin: str | None = None, counter_step: int = 1
    ) -> dict[str, Any]:
        """The browser's JSON of a new credential for ``options`` (PublicKeyCredentialCreationOptions)."""
        opts = json.loads(options) if isinstance(options, str) else options
        excluded = {item["id"] for item in opts.get("excludeCredentials", [])}
        credential = Credential(
            id=secrets.token_bytes(32),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=opts["rp"]["id"],
            user_handle=unb64url(opts["user"]["id"]),
            counter_step=counter_step,
        )
        if any(b64url(known.id) in excluded for known in self.credentials if known.rp_id == credential.rp_id):
            raise ValueError("InvalidStateError: this authenticator holds an excluded credential")
        credential.sign_count = counter_step
        self.credentials.append(credential)
        attested = AAGUID + struct.pack(">H", len(credential.id)) + credential.id + credential.cose_key()
        auth_data = (
            hashlib.sha256(credential.rp_id.encode()).digest()
            + bytes([self._flags() | AT])
            + struct.pack(">I", credential.sign_count)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        credential: Credential | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """The browser's JSON of an assertion for ``options`` (PublicKeyCredentialRequestOptions),
        by ``credential`` or the first one the options allow. ``sign_count`` overrides the counter."""
        opts = json.loads(options) if isinstance(options, str) else options
        allowed = {item["id"] for item in opts.get("allowCredentials", [])}
        if credential is None:
            usable = [
                c for c in self.credentials if c.rp_id == opts["rpId"] and (not allowed or b64url(c.id) in allowed)
            ]
            if not usable:
                raise ValueError("NotAllowedError: no credential for these options")
            credential = usable[0]
        credential.sign_count += credential.counter_step
        count = credential.sign_count if sign_count is None else sign_count
        auth_data = (
            hashlib.sha256(credential.rp_id.encode()).digest() + bytes([self._flags()]) + struct.pack(">I", count)
        )
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        signature = credential.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
