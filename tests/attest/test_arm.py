"""Arm CCA and PSA tokens on the real veraison vectors, plus constructed and tampered ones."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import vector_bytes

from chronoseal.attest import AppraisalPolicy, Appraiser, Evidence, measurement_digest
from chronoseal.attest._arm import (
    CCA_PLATFORM,
    CCA_REALM,
    cca_realm_challenge,
    cca_token,
    verify_cca_token,
    verify_psa_token,
)
from chronoseal.errors import AttestationError
from chronoseal.spec import Component

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CCA = "arm-cca/cca_token.cbor"
CPAK = "arm-cca/cca_platform.pub"
PSA = "arm-psa/psa-2_0_0_sign1.bin"
PSA_KEY = "arm-psa/public.pem"


def sign1(claims: dict[int, Any], key: ec.EllipticCurvePrivateKey, alg: int) -> bytes:
    """A COSE_Sign1 (tag 18) over ``claims``, signed the way RFC 9052 section 4.4 says."""
    protected = cbor2.dumps({1: alg})
    payload = cbor2.dumps(claims)
    digest = {-7: hashes.SHA256(), -35: hashes.SHA384()}[alg]
    size = key.curve.key_size // 8
    der = key.sign(cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(digest))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


def _payload(token: bytes) -> dict[int, Any]:
    decoded = cbor2.loads(token)
    return dict(cbor2.loads(decoded.value[2]))


def _cpak_private() -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(vector_bytes("arm-cca/cca_platform.pem"), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _parts() -> tuple[bytes, bytes]:
    parts = cbor2.loads(vector_bytes(CCA)).value
    return parts[CCA_PLATFORM], parts[CCA_REALM]


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- CCA ------------------------------------------------------------------------------------


def test_the_real_cca_token_verifies_and_binds_its_rak() -> None:
    claims = verify_cca_token(vector_bytes(CCA), vector_bytes(CPAK))
    assert claims.tee == "cca" and not claims.debug
    assert claims.report_data == b"\xab" * 64
    assert claims.measurements["rim"] == bytes(32)
    assert claims.platform["profile"] == "http://arm.com/CCA-SSD/1.0.0"
    assert claims.platform["lifecycle"].startswith("secured")
    assert len(measurement_digest(claims)) == 32
    assert cca_realm_challenge(vector_bytes(CCA)) == b"\xab" * 64


def test_a_cca_token_with_another_cpak_is_refused() -> None:
    other = _pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(AttestationError) as caught:
        verify_cca_token(vector_bytes(CCA), other)
    assert caught.value.id == "attest.signature.invalid"


@pytest.mark.parametrize("which", [CCA_PLATFORM, CCA_REALM])
def test_a_one_byte_tamper_of_either_token_is_refused(which: int) -> None:
    platform, realm = _parts()
    if which == CCA_PLATFORM:
        platform = _flip(platform, len(platform) - 100)
    else:
        realm = _flip(realm, len(realm) - 150)
    with pytest.raises(AttestationError) as caught:
        verify_cca_token(cca_token(platform, realm), vector_bytes(CPAK))
    assert caught.value.id in {"attest.signature.invalid", "attest.token.malformed"}


@pytest.mark.parametrize(
    "nonce",
    [
        b"\x00" * 32,
        # the hash of the RAK, but under another algorithm than the realm token declares
        None,
    ],
)
def test_a_platform_nonce_that_is_not_the_hash_of_the_rak_is_refused(nonce: bytes | None) -> None:
    """Both tokens are validly signed (the platform one by the CPAK): only the binding fails."""
    platform, realm = _parts()
    claims = _payload(platform)
    rak = _payload(realm)[44237]
    claims[10] = hashlib.sha512(rak).digest() if nonce is None else nonce
    forged = sign1(claims, _cpak_private(), -35)
    with pytest.raises(AttestationError) as caught:
        verify_cca_token(cca_token(forged, realm), vector_bytes(CPAK))
    assert caught.value.id == "attest.cca.rak_not_bound"


def test_a_resigned_platform_token_with_the_right_nonce_verifies() -> None:
    """The forgery path above is not refused for being re-signed: only for the nonce."""
    platform, realm = _parts()
    forged = sign1(_payload(platform), _cpak_private(), -35)
    assert verify_cca_token(cca_token(forged, realm), vector_bytes(CPAK)).tee == "cca"


def test_a_cca_collection_must_hold_both_tokens() -> None:
    platform, _ = _parts()
    token = cbor2.dumps(cbor2.CBORTag(399, {CCA_PLATFORM: platform}))
    with pytest.raises(AttestationError) as caught:
        verify_cca_token(token, vector_bytes(CPAK))
    assert caught.value.id == "attest.token.malformed"


# --- PSA ------------------------------------------------------------------------------------


def test_the_real_psa_2_token_verifies() -> None:
    claims = verify_psa_token(vector_bytes(PSA), vector_bytes(PSA_KEY))
    assert claims.tee == "psa" and not claims.debug
    assert claims.platform["profile"] == "http://arm.com/psa/2.0.0"
    assert claims.measurements["implementation_id"] == b"\xaa" * 8 + b"\xbb" * 8 + (
        b"\xcc" * 8 + b"\xdd" * 8
    )
    assert claims.platform["boot_seed"] == bytes(range(0xA0, 0xC0)).hex()
    assert claims.platform["sw_components"] == "SPE 1.6.0, NSPE 0.0.0"
    assert claims.report_data == bytes(64)


def test_a_psa_token_checked_with_another_key_is_refused() -> None:
    other = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AttestationError) as caught:
        verify_psa_token(vector_bytes(PSA), other)
    assert caught.value.id == "attest.signature.invalid"


def test_a_one_byte_tamper_of_the_psa_token_is_refused() -> None:
    token = vector_bytes(PSA)
    with pytest.raises(AttestationError) as caught:
        verify_psa_token(_flip(token, 200), vector_bytes(PSA_KEY))
    assert caught.value.id == "attest.signature.invalid"


def _p1_claims(lifecycle: int = 0x3000) -> dict[int, Any]:
    """The legacy PSA_IOT_PROFILE_1 shape of TF-M's token (veraison's psa-iot-1_sign1.bin)."""
    return {
        -75000: "PSA_IOT_PROFILE_1",
        -75001: 3002,
        -75002: lifecycle,
        -75003: b"\xaa" * 32,
        -75004: bytes(range(32)),
        -75005: "0604565272829-10010",
        -75006: [{1: "SPE", 2: b"\x01" * 32, 4: "1.6.0", 5: b"\x02" * 32, 6: "SHA256"}],
        -75008: b"\x05" * 64,
        -75009: b"\x01" + b"\x06" * 32,
        -75010: "www.trustedfirmware.org",
    }


def test_a_legacy_profile_1_token_verifies_with_the_same_claims() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = verify_psa_token(sign1(_p1_claims(), key, -7), _pem(key))
    assert claims.platform["profile"] == "PSA_IOT_PROFILE_1"
    assert claims.measurements["implementation_id"] == b"\xaa" * 32
    assert claims.report_data == b"\x05" * 64
    assert claims.platform["instance_id"] == ("01" + "06" * 32)


def test_an_unknown_psa_profile_is_unsupported() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = _p1_claims()
    claims[-75000] = "PSA_IOT_PROFILE_9"
    with pytest.raises(AttestationError) as caught:
        verify_psa_token(sign1(claims, key, -7), _pem(key))
    assert caught.value.id == "attest.token.unsupported"


def test_a_psa_device_in_a_debug_lifecycle_is_refused_by_the_appraisal() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = sign1(_p1_claims(lifecycle=0x5000), key, -7)
    pem = _pem(key)
    appraisal = Appraiser(AppraisalPolicy(measurements=None, collateral=lambda _: pem)).appraise(
        Evidence("psa", Component.ANALYSIS, token),
        component=Component.ANALYSIS,
        expected_report_data=b"\x05" * 64,
        now=NOW,
    )
    assert appraisal.failures == ("attest.debug.enabled",)


def test_the_appraisal_binds_the_realm_challenge() -> None:
    cpak = vector_bytes(CPAK)
    policy = AppraisalPolicy(measurements=None, collateral=lambda _: cpak)
    evidence = Evidence("cca", Component.ANALYSIS, vector_bytes(CCA))
    bound = Appraiser(policy).appraise(
        evidence, component=Component.ANALYSIS, expected_report_data=b"\xab" * 64, now=NOW
    )
    assert bound.accepted and not bound.failures
    unbound = Appraiser(policy).appraise(
        evidence, component=Component.ANALYSIS, expected_report_data=b"\xac" * 64, now=NOW
    )
    assert unbound.failures == ("attest.binding.mismatch",)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_an_id(data: bytes) -> None:
    for verify, key in ((verify_cca_token, CPAK), (verify_psa_token, PSA_KEY)):
        with pytest.raises(AttestationError) as caught:
            verify(data, vector_bytes(key))
        assert caught.value.id.startswith("attest.")
