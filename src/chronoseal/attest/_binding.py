"""Bind a TLS key and a verifier's nonce into the 64-byte REPORTDATA of a TEE report.

All 64 bytes are used (SHA-512, the shape Intel Trust Authority uses) because configfs-tsm
refuses anything but exactly 64 bytes and Gramine silently zero-pads shorter input: a
32-byte binding would leave half of REPORTDATA meaning nothing. The key must be DER so that
``spki_der || nonce`` splits in exactly one place (DER carries its own length).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from chronoseal.errors import AttestationError

REPORT_DATA_SIZE: Final = 64
MIN_NONCE_SIZE: Final = 16
BINDING_TAG: Final = b"chronoseal/ra-tls/v1\x00"


def report_data_for(spki_der: bytes, nonce: bytes) -> bytes:
    """Return SHA-512(tag || spki_der || nonce), the REPORTDATA an attester must embed."""
    if not _is_der_sequence(spki_der):
        raise AttestationError(
            "the bound key must be a DER SubjectPublicKeyInfo", id="attest.binding.bad_key"
        )
    if len(nonce) < MIN_NONCE_SIZE:
        raise AttestationError(
            f"the nonce must be at least {MIN_NONCE_SIZE} bytes to make evidence fresh",
            id="attest.binding.bad_nonce",
        )
    return hashlib.sha512(BINDING_TAG + spki_der + nonce).digest()


def binding_matches(expected: bytes, actual: bytes) -> bool:
    """Compare REPORTDATA in constant time; anything but exactly 64 bytes never matches."""
    if len(expected) != REPORT_DATA_SIZE:
        return False
    # compare_digest on unequal lengths returns early, but the length is public anyway.
    return hmac.compare_digest(expected, actual)


def _is_der_sequence(data: bytes) -> bool:
    """True when ``data`` is exactly one DER SEQUENCE (tag, minimal length, contents)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return len(data) == 2 + first
    width = first & 0x7F
    if width == 0 or width > 4 or len(data) < 2 + width:
        return False
    length = int.from_bytes(data[2 : 2 + width], "big")
    if length < 0x80 or data[2] == 0:
        return False
    return len(data) == 2 + width + length
