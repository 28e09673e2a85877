"""An Arm CCA platform fake behind configfs-tsm's ``arm_cca_guest`` provider.

Each inblob gets a fresh CCA token: a realm token over that challenge signed by a fresh RAK
(P-384), and a platform token signed by the fake's CPAK whose nonce is SHA-256 of the RAK,
as the RMM and the platform's attestation service produce them. The kernel side (entries,
``generation``) is the configfs fake of ``test_configfs``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_arm import sign1
from test_configfs import FakeTsmKernel

from chronoseal.attest._arm import cca_token

INSTANCE_ID = b"\x01" + b"\x42" * 32
RIM = b"\x33" * 32


class FakeCcaPlatform:
    def __init__(self, *, lifecycle: int = 0x3000) -> None:
        self.cpak = ec.generate_private_key(ec.SECP384R1())
        self.lifecycle = lifecycle

    @property
    def cpak_pem(self) -> bytes:
        return self.cpak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, challenge: bytes) -> bytes:
        rak = ec.generate_private_key(ec.SECP384R1())
        rak_point = rak.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        realm = {
            10: challenge,
            44235: bytes(64),
            44236: "sha-256",
            44237: rak_point,
            44238: RIM,
            44239: [bytes(32)] * 4,
            44240: "sha-256",
        }
        platform = {
            265: "http://arm.com/CCA-SSD/1.0.0",
            10: hashlib.sha256(rak_point).digest(),
            256: INSTANCE_ID,
            2395: self.lifecycle,
            2396: b"\x07" * 32,
            2399: [{1: "RMM", 2: b"\x05" * 32, 4: "1.0", 5: b"\x06" * 32}],
            2400: "https://veraison.example",
            2401: b"\x00",
            2402: "sha-256",
        }
        return cca_token(sign1(platform, self.cpak, -35), sign1(realm, rak, -35))


class FakeCcaKernel(FakeTsmKernel):
    """configfs-tsm whose outblob is a fresh token over whatever inblob was written."""

    def __init__(self, root: Path, platform: FakeCcaPlatform) -> None:
        super().__init__(root, "arm_cca_guest", b"")
        self.platform = platform

    def write(self, path: Path, data: bytes) -> None:
        if path.name == "inblob" and len(data) == 64:
            self.evidence = self.platform.token(data)
        super().write(path, data)
