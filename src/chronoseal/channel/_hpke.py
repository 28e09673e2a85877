"""HPKE (RFC 9180, base mode) key encapsulation for per-stream data keys.

Suites: DHKEM(X25519, HKDF-SHA256) with HKDF-SHA256 and AES-256-GCM (default), or the
ML-KEM-768 + X25519 hybrid KEM (draft-ietf-hpke-pq, cryptography's ``MLKEM768_X25519``) for
post-quantum confidentiality of recorded traffic. The recipient's public key is bound into
its attestation evidence (see ``_ratls``), so a sealed key can only be opened inside the
attested TEE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from chronoseal.errors import ChannelError

_X25519_LEN = 32
_MLKEM768_PUBLIC_LEN = 1184


class HpkeKem(StrEnum):
    """Which KEM seals stream keys; both use HKDF-SHA256 and AES-256-GCM."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    @property
    def wire_id(self) -> int:
        """One-byte code in stream headers."""
        return 1 if self is HpkeKem.X25519 else 2

    @classmethod
    def from_wire_id(cls, code: int) -> HpkeKem:
        for kem in cls:
            if kem.wire_id == code:
                return kem
        raise ChannelError(f"unknown HPKE KEM code {code}", id="channel.hpke.unknown_kem")

    def _suite(self) -> hpke.Suite:
        kem = hpke.KEM.X25519 if self is HpkeKem.X25519 else hpke.KEM.MLKEM768_X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True, slots=True)
class HpkePublicKey:
    """A recipient's HPKE public key as it travels: KEM name and raw bytes.

    Hybrid keys are ML-KEM-768 public bytes (1184) followed by X25519 public bytes (32).
    """

    kem: HpkeKem
    raw: bytes

    def __post_init__(self) -> None:
        expected = _X25519_LEN
        if self.kem is HpkeKem.MLKEM768_X25519:
            expected += _MLKEM768_PUBLIC_LEN
        if len(self.raw) != expected:
            raise ChannelError(
                f"{self.kem} public key must be {expected} bytes, got {len(self.raw)}",
                id="channel.hpke.bad_public_key",
            )

    def seal(self, plaintext: bytes, *, info: bytes) -> bytes:
        """Single-shot HPKE seal; returns ``enc ‖ ciphertext``."""
        return self.kem._suite().encrypt(plaintext, self._key(), info=info)

    def _key(self) -> x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey:
        try:
            if self.kem is HpkeKem.X25519:
                return x25519.X25519PublicKey.from_public_bytes(self.raw)
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_MLKEM768_PUBLIC_LEN]),
                x25519.X25519PublicKey.from_public_bytes(self.raw[_MLKEM768_PUBLIC_LEN:]),
            )
        except ValueError as exc:
            raise ChannelError(
                f"not a valid {self.kem} public key", id="channel.hpke.bad_public_key"
            ) from exc


class HpkePrivateKey:
    """A TEE-resident HPKE private key, generated fresh at component start; never serialised."""

    __slots__ = ("_key", "kem", "public_key")

    def __init__(self, kem: HpkeKem = HpkeKem.X25519) -> None:
        self.kem = kem
        try:
            self._key, raw = _generate(kem)
        except UnsupportedAlgorithm as exc:
            raise ChannelError(
                f"this cryptography build has no {kem} (needs an OpenSSL with ML-KEM)",
                id="channel.hpke.unsupported",
            ) from exc
        self.public_key = HpkePublicKey(kem, raw)

    def __repr__(self) -> str:
        return f"HpkePrivateKey(kem={self.kem.value!r})"

    def open(self, sealed: bytes, *, info: bytes) -> bytes:
        """Open what :meth:`HpkePublicKey.seal` produced; raises on any mismatch."""
        try:
            return self.kem._suite().decrypt(sealed, self._key, info=info)
        except (InvalidTag, ValueError) as exc:
            raise ChannelError(
                "the sealed key does not open with this recipient key and context",
                id="channel.hpke.open_failed",
            ) from exc


def _generate(
    kem: HpkeKem,
) -> tuple[x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey, bytes]:
    """A fresh private key and its raw public bytes."""
    if kem is HpkeKem.X25519:
        x_key = x25519.X25519PrivateKey.generate()
        return x_key, x_key.public_key().public_bytes_raw()
    m_key = mlkem.MLKEM768PrivateKey.generate()
    x_key = x25519.X25519PrivateKey.generate()
    raw = m_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()
    return hpke.MLKEM768X25519PrivateKey(m_key, x_key), raw
