"""RA-TLS certificates: the evidence binds the TLS key and the HPKE key, and only that."""

from __future__ import annotations

import json
import os
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from channel_support import NONCE, appraiser, identity
from cryptography import x509
from cryptography.hazmat.asn1 import decode_der, encode_der
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from chronoseal.attest import SimulatedAttester, report_data_for
from chronoseal.channel import CMW_MEDIA_TYPE, CMW_OID, HpkePrivateKey, appraise_certificate
from chronoseal.channel._ratls import _encode_cmw, binding_nonce, spki_der
from chronoseal.errors import ChannelError, PeerRefused
from chronoseal.spec import Component

ANALYSIS = Component.ANALYSIS
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chronoseal analysis")])


def certificate(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    extension: bytes | None,
    *,
    signer: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None,
) -> bytes:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
    )
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(CMW_OID, extension), critical=False
        )
    signing = signer or key
    algorithm = None if isinstance(signing, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signing, algorithm).public_bytes(serialization.Encoding.DER)


def appraise(certificate_der: bytes) -> None:
    appraise_certificate(
        certificate_der,
        appraiser=appraiser(),
        component=ANALYSIS,
        fresh_nonces={NONCE},
        now=datetime.now(UTC),
    )


def refusal(certificate_der: bytes) -> PeerRefused:
    with pytest.raises(PeerRefused) as refused:
        appraise(certificate_der)
    return refused.value


def test_a_generated_certificate_appraises_and_yields_the_peer_hpke_key() -> None:
    me = identity(ANALYSIS)
    peer = appraise_certificate(
        me.certificate_der,
        appraiser=appraiser(),
        component=ANALYSIS,
        fresh_nonces={b"another-recent-block-hash", NONCE},
        now=datetime.now(UTC),
    )
    assert peer.hpke_public_key == me.hpke.public_key
    assert peer.fingerprint == me.fingerprint
    assert peer.appraisal.accepted
    assert "attest.simulated" in peer.appraisal.warnings


def test_the_evidence_travels_in_a_non_critical_json_cmw_extension() -> None:
    parsed = x509.load_der_x509_certificate(identity(ANALYSIS).certificate_der)
    extension = parsed.extensions.get_extension_for_oid(CMW_OID)
    assert not extension.critical
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    media_type, _ = json.loads(decode_der(str, extension.value.value))
    assert media_type == CMW_MEDIA_TYPE


def test_evidence_copied_onto_another_key_is_refused() -> None:
    genuine = x509.load_der_x509_certificate(identity(ANALYSIS).certificate_der)
    stolen = genuine.extensions.get_extension_for_oid(CMW_OID).value
    assert isinstance(stolen, x509.UnrecognizedExtension)
    forged = certificate(ec.generate_private_key(ec.SECP256R1()), stolen.value)
    refused = refusal(forged)
    assert refused.id == "channel.peer.evidence_refused"
    assert refused.context["attestation_id"] == "attest.binding.mismatch"


def test_a_substituted_hpke_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attested, substitute = HpkePrivateKey(), HpkePrivateKey()
    report_data = report_data_for(
        spki_der(key.public_key()), binding_nonce(NONCE, attested.public_key)
    )
    evidence = SimulatedAttester(ANALYSIS).attest(report_data)
    appraise(certificate(key, _encode_cmw(evidence, NONCE, attested.public_key, b"")))
    swapped = refusal(certificate(key, _encode_cmw(evidence, NONCE, substitute.public_key, b"")))
    assert swapped.context["attestation_id"] == "attest.binding.mismatch"


def test_a_certificate_without_evidence_is_refused() -> None:
    refused = refusal(certificate(ec.generate_private_key(ec.SECP256R1()), None))
    assert refused.id == "channel.peer.no_evidence"


@pytest.mark.parametrize(
    "value",
    [
        encode_der("not json"),
        encode_der(json.dumps(["application/other", "AAAA"])),
        encode_der(json.dumps([CMW_MEDIA_TYPE, "!!"])),
        encode_der(json.dumps([CMW_MEDIA_TYPE, "e30"])),
        b"\x04\x01x",
    ],
    ids=["not-json", "other-media-type", "bad-base64", "empty-claims", "not-utf8string"],
)
def test_an_unreadable_evidence_extension_is_refused(value: bytes) -> None:
    refused = refusal(certificate(ec.generate_private_key(ec.SECP256R1()), value))
    assert refused.id == "channel.peer.bad_evidence"


def test_a_non_p256_certificate_is_refused() -> None:
    refused = refusal(certificate(ed25519.Ed25519PrivateKey.generate(), None))
    assert refused.id == "channel.peer.bad_certificate"


def test_a_certificate_not_signed_by_its_own_key_is_refused() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    refused = refusal(certificate(key, None, signer=other))
    assert refused.id == "channel.peer.bad_certificate"


def test_garbage_is_not_a_certificate() -> None:
    assert refusal(b"\x30\x03\x02\x01\x01").id == "channel.peer.bad_certificate"


def test_without_memfd_the_key_is_not_loaded_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "memfd_create")
    with pytest.raises(ChannelError) as refused:
        identity(ANALYSIS).load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert refused.value.id == "channel.tls.no_memfd"


def test_a_short_freshness_value_is_refused() -> None:
    with pytest.raises(ChannelError) as refused:
        identity(ANALYSIS, nonce=b"block-7")
    assert refused.value.id == "channel.identity.bad_freshness"


def test_the_evidence_binds_the_components_chain_address() -> None:
    """A runtime's chain key is inside its attested report data: a certificate claiming
    another address (to take over its on-chain record) does not appraise."""
    key = ec.generate_private_key(ec.SECP256R1())
    hpke = HpkePrivateKey()
    mine, other = bytes.fromhex("11" * 20), bytes.fromhex("22" * 20)
    report_data = report_data_for(
        spki_der(key.public_key()), binding_nonce(NONCE, hpke.public_key, mine)
    )
    evidence = SimulatedAttester(ANALYSIS).attest(report_data)
    peer = appraise_certificate(
        certificate(key, _encode_cmw(evidence, NONCE, hpke.public_key, mine)),
        appraiser=appraiser(),
        component=ANALYSIS,
        fresh_nonces={NONCE},
        now=datetime.now(UTC),
    )
    assert peer.chain_address == "0x" + "11" * 20
    for claimed in (other, b""):
        refused = refusal(certificate(key, _encode_cmw(evidence, NONCE, hpke.public_key, claimed)))
        assert refused.context["attestation_id"] == "attest.binding.mismatch"
