"""SM2 through libcrypto, cross-checked against gmssl (an independent pure-Python SM2).

gmssl hard-codes the default distinguishing id in its own SM3-with-Z helper, so the test
computes e = SM3(Z(id) || M) itself (GM/T 0003.2 section 5.5, hashing only) and hands gmssl
the bare verification of e: the curve arithmetic on the two sides shares no code.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as gmssl_sm2
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import vector_bytes

from chronoseal.attest._csv import parse_ca_certificate
from chronoseal.attest._sm2 import Sm2PrivateKey, sm2_available, sm2_verify
from chronoseal.errors import AttestationError

# GM/T 0003.5 recommended curve parameters (public constants of the curve, not arithmetic).
CURVE = bytes.fromhex(
    "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
    "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
    "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
)


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _gmssl_verify(public_xy: bytes, signature: bytes, message: bytes, user_id: bytes) -> bool:
    z = _sm3(len(user_id * 8).to_bytes(2, "big") + user_id + CURVE + public_xy)
    e = _sm3(z + message)
    crypt = gmssl_sm2.CryptSM2(private_key="", public_key=public_xy.hex())
    return bool(crypt.verify(signature.hex(), e))


def test_libcrypto_sm2_is_available_here() -> None:
    assert sm2_available()


def test_both_implementations_accept_the_real_hrk_self_signature() -> None:
    hrk = parse_ca_certificate(vector_bytes("hygon-csv/hrk.cert"))
    for verify in (
        lambda: sm2_verify(hrk.public_xy, hrk.signature, hrk.body, user_id=b"HYGON-SSD-HRK"),
        lambda: _gmssl_verify(hrk.public_xy, hrk.signature, hrk.body, b"HYGON-SSD-HRK"),
    ):
        assert verify()


def test_both_implementations_refuse_the_real_signature_under_the_default_id() -> None:
    hrk = parse_ca_certificate(vector_bytes("hygon-csv/hrk.cert"))
    assert not sm2_verify(hrk.public_xy, hrk.signature, hrk.body, user_id=b"1234567812345678")
    assert not _gmssl_verify(hrk.public_xy, hrk.signature, hrk.body, b"1234567812345678")


@settings(max_examples=10, deadline=None)
@given(message=st.binary(max_size=300), user_id=st.binary(min_size=1, max_size=40))
def test_libcrypto_signatures_verify_in_gmssl_and_tampers_fail_in_both(
    message: bytes, user_id: bytes
) -> None:
    key = Sm2PrivateKey.generate()
    signature = key.sign(message, user_id=user_id)
    assert sm2_verify(key.public_xy, signature, message, user_id=user_id)
    assert _gmssl_verify(key.public_xy, signature, message, user_id)
    altered = message + b"\x00"
    assert not sm2_verify(key.public_xy, signature, altered, user_id=user_id)
    assert not _gmssl_verify(key.public_xy, signature, altered, user_id)


def test_a_point_off_the_curve_is_refused() -> None:
    with pytest.raises(AttestationError) as caught:
        sm2_verify(b"\x01" * 64, b"\x01" * 64, b"m", user_id=b"id")
    assert caught.value.id == "attest.sm2.bad_key"


def test_zero_or_misshapen_signatures_are_invalid_not_errors() -> None:
    key = Sm2PrivateKey.generate()
    assert not sm2_verify(key.public_xy, bytes(64), b"m", user_id=b"id")
    with pytest.raises(AttestationError):
        sm2_verify(key.public_xy, bytes(10), b"m", user_id=b"id")
