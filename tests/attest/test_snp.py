"""SEV-SNP report parsing and verification against real Milan reports and AMD chains."""

from __future__ import annotations

import struct
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import utc, vector_bytes, vector_hex

from chronoseal.attest._snp import (
    OFF_CHIP_ID,
    OFF_MEASUREMENT,
    OFF_REPORT_DATA,
    OFF_REPORTED_TCB,
    OFF_SIGNATURE,
    OFF_SIGNER_INFO,
    OFF_VERSION,
    REPORT_SIZE,
    TCB_BOOTLOADER,
    TCB_MICROCODE,
    TCB_SNP,
    TCB_TEE,
    parse_snp_report,
    verify_snp_report,
)
from chronoseal.errors import AttestationError

NOW = utc("2026-01-01")


def _virtee() -> tuple[bytes, bytes, bytes]:
    return (
        vector_hex("virtee-sev/report_milan.hex"),
        vector_bytes("virtee-sev/vcek_milan.der"),
        vector_bytes("virtee-sev/cert_chain_milan"),
    )


def _go_sev_guest() -> tuple[bytes, bytes, bytes]:
    return (
        vector_bytes("go-sev-guest/attestation.bin"),
        vector_bytes("go-sev-guest/vcek.testcer"),
        vector_bytes("go-sev-guest/milan.testcer"),
    )


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _expect(
    failure_id: str, raw: bytes, vcek: bytes, chain: bytes, now: datetime = NOW
) -> AttestationError:
    with pytest.raises(AttestationError) as caught:
        verify_snp_report(raw, vcek, chain, now=now)
    assert caught.value.id == failure_id, str(caught.value)
    return caught.value


def _pem_with_flipped_signature(pem: bytes, index: int) -> bytes:
    certs = x509.load_pem_x509_certificates(pem)
    out = []
    for i, cert in enumerate(certs):
        der = cert.public_bytes(Encoding.DER)
        if i == index:
            der = _flip(der, len(der) - 1)
        out.append(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return b"".join(out)


def _self_made_ark_chain(ask_pem: bytes) -> bytes:
    """The real ASK followed by a self-signed look-alike 'ARK-Milan' (a forged root)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.load_pem_x509_certificates(ask_pem)[1].subject
    start = datetime(2020, 1, 1, tzinfo=UTC)
    fake = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * 30))
        .sign(key, hashes.SHA384())
    )
    ask = x509.load_pem_x509_certificates(ask_pem)[0]
    return ask.public_bytes(Encoding.PEM) + fake.public_bytes(Encoding.PEM)


# --- parsing -------------------------------------------------------------------------------


def test_virtee_report_parses_into_named_fields() -> None:
    report = parse_snp_report(_virtee()[0])
    assert report.version == 2
    assert report.policy == 0x30000
    assert report.debug is False
    assert report.vmpl == 0
    assert report.signing_key == 0
    assert report.reported_tcb.raw.hex() == "0300000000000873"
    assert (report.reported_tcb.bootloader, report.reported_tcb.snp) == (3, 8)
    assert report.reported_tcb.microcode == 0x73
    assert len(report.measurement) == 48
    assert report.chip_id[:8].hex() == "d49554ec717f4e5b"
    assert len(report.signed) == OFF_SIGNATURE


def test_go_sev_guest_report_is_a_debug_guest() -> None:
    report = parse_snp_report(_go_sev_guest()[0])
    assert report.policy == 0xB0000
    assert report.debug is True
    assert report.report_data[:6] == bytes([1, 2, 3, 4, 5, 0])


@pytest.mark.parametrize("size", [0, 1, REPORT_SIZE - 1, REPORT_SIZE + 1])
def test_wrong_size_is_malformed(size: int) -> None:
    raw = (_virtee()[0] * 2)[:size]
    with pytest.raises(AttestationError) as caught:
        parse_snp_report(raw)
    assert caught.value.id == "attest.report.malformed"


@pytest.mark.parametrize("version", [0, 1, 6, 0xFFFFFFFF])
def test_unsupported_version_is_refused(version: int) -> None:
    raw = bytearray(_virtee()[0])
    struct.pack_into("<I", raw, OFF_VERSION, version)
    with pytest.raises(AttestationError) as caught:
        parse_snp_report(bytes(raw))
    assert caught.value.id == "attest.report.unsupported_version"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * REPORT_SIZE))
def test_parser_raises_only_attestation_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_snp_report(data)
    except AttestationError as exc:
        assert exc.id.startswith("attest.report.")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_parser_handles_any_full_size_buffer(data: bytes) -> None:
    try:
        report = parse_snp_report(data)
    except AttestationError as exc:
        assert exc.id in {"attest.report.unsupported_version", "attest.report.malformed"}
    else:
        assert report.signed == data[:OFF_SIGNATURE]


# --- verification --------------------------------------------------------------------------


def test_virtee_milan_report_verifies_with_debug_off() -> None:
    raw, vcek, chain = _virtee()
    claims = verify_snp_report(raw, vcek, chain, now=NOW)
    report = parse_snp_report(raw)
    assert claims.tee == "sev-snp"
    assert claims.debug is False
    assert claims.tcb_status == "VcekMatched"
    assert list(claims.warnings) == ["attest.snp.tcb_not_checked_against_latest"]
    assert claims.measurements["measurement"] == report.measurement
    assert claims.measurements["host_data"] == report.host_data
    assert claims.report_data == report.report_data
    assert claims.platform["product"] == "Milan"
    assert claims.platform["policy"] == "0x30000"
    assert claims.svn["vmpl"] == 0
    assert claims.svn["microcode"] == 0x73


def test_go_sev_guest_report_verifies_and_says_debug() -> None:
    raw, vcek, chain = _go_sev_guest()
    claims = verify_snp_report(raw, vcek, chain, now=NOW)
    assert claims.debug is True
    assert claims.report_data[:6] == bytes([1, 2, 3, 4, 5, 0])


def test_vcek_may_be_pem() -> None:
    raw, vcek, chain = _virtee()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        pem = x509.load_der_x509_certificate(vcek).public_bytes(Encoding.PEM)
    assert verify_snp_report(raw, pem, chain, now=NOW).tee == "sev-snp"


@pytest.mark.parametrize(
    "offset", [OFF_REPORT_DATA, OFF_MEASUREMENT + 47, OFF_SIGNATURE, OFF_SIGNATURE + 0x48]
)
def test_altered_report_byte_breaks_the_signature(offset: int) -> None:
    raw, vcek, chain = _virtee()
    _expect("attest.signature.invalid", _flip(raw, offset), vcek, chain)


def test_vcek_of_another_chip_is_named() -> None:
    raw, _, chain = _virtee()
    other_vcek = _go_sev_guest()[1]
    _expect("attest.snp.chip_id_mismatch", raw, other_vcek, chain)


def test_altered_chip_id_is_a_chip_mismatch() -> None:
    raw, vcek, chain = _virtee()
    _expect("attest.snp.chip_id_mismatch", _flip(raw, OFF_CHIP_ID), vcek, chain)


def test_reported_tcb_differing_from_the_vcek_is_refused() -> None:
    raw, vcek, chain = _virtee()
    error = _expect(
        "attest.snp.tcb_mismatch", _flip(raw, OFF_REPORTED_TCB + TCB_MICROCODE), vcek, chain
    )
    assert error.context["vcek"]["microcode"] == 0x73


@pytest.mark.parametrize(
    ("position", "component"),
    [
        (TCB_BOOTLOADER, "bootloader"),
        (TCB_TEE, "tee"),
        (TCB_SNP, "snp"),
        (TCB_MICROCODE, "microcode"),
    ],
)
@pytest.mark.parametrize("report", ["virtee", "go-sev-guest"])
def test_each_reported_spl_is_checked_against_the_vcek(
    report: str, position: int, component: str
) -> None:
    """REPORTED_TCB must equal the VCEK's SPLs, component by component, on both chips."""
    raw, vcek, chain = _virtee() if report == "virtee" else _go_sev_guest()
    error = _expect("attest.snp.tcb_mismatch", _flip(raw, OFF_REPORTED_TCB + position), vcek, chain)
    reported, issued = error.context["reported"], error.context["vcek"]
    assert [name for name in reported if reported[name] != issued[name]] == [component]


@pytest.mark.parametrize("position", [2, 3, 4, 5])
def test_reserved_reported_tcb_bytes_are_covered_by_the_signature(position: int) -> None:
    """Bytes 2..5 are no SPL and not compared with the VCEK, but they are still signed."""
    raw, vcek, chain = _virtee()
    _expect("attest.signature.invalid", _flip(raw, OFF_REPORTED_TCB + position), vcek, chain)


def test_the_tcb_warning_says_what_was_and_was_not_checked() -> None:
    raw, vcek, chain = _virtee()
    claims = verify_snp_report(raw, vcek, chain, now=NOW)
    message = claims.warnings["attest.snp.tcb_not_checked_against_latest"]
    assert "bootloader 3, TEE 0, SNP 8, microcode 115" in message
    assert "latest Milan TCB" in message
    assert claims.platform["current_tcb"] == claims.platform["reported_tcb"] == "0300000000000873"


def test_vlek_signed_report_is_not_supported_yet() -> None:
    raw, vcek, chain = _virtee()
    vlek = bytearray(raw)
    struct.pack_into("<I", vlek, OFF_SIGNER_INFO, 1 << 2)
    error = _expect("attest.snp.unsupported_signer", bytes(vlek), vcek, chain)
    assert "VLEK" in error.message


@pytest.mark.parametrize(("when", "ok"), [("2023-04-04", True), ("2023-04-02", False)])
def test_vcek_validity_window(when: str, ok: bool) -> None:
    raw, vcek, chain = _virtee()
    if ok:
        assert verify_snp_report(raw, vcek, chain, now=utc(when)).tee == "sev-snp"
    else:
        error = _expect("attest.collateral.expired", raw, vcek, chain, utc(when))
        assert error.context["certificate"] == "VCEK"


def test_after_expiry_is_refused() -> None:
    raw, vcek, chain = _virtee()
    _expect("attest.collateral.expired", raw, vcek, chain, utc("2030-04-04"))


@pytest.mark.parametrize("index", [0, 1])
def test_altered_chain_signature_is_refused(index: int) -> None:
    raw, vcek, chain = _virtee()
    forged = _pem_with_flipped_signature(chain, index)
    expected = "attest.chain.untrusted_root" if index == 1 else "attest.chain.invalid"
    _expect(expected, raw, vcek, forged)


def test_altered_vcek_signature_is_refused() -> None:
    raw, vcek, chain = _virtee()
    _expect("attest.chain.invalid", raw, _flip(vcek, len(vcek) - 1), chain)


def test_look_alike_ark_is_untrusted() -> None:
    raw, vcek, chain = _virtee()
    error = _expect("attest.chain.untrusted_root", raw, vcek, _self_made_ark_chain(chain))
    assert "ARK" in error.message


def test_chain_of_another_product_does_not_issue_the_vcek() -> None:
    raw, vcek, _ = _virtee()
    genoa = vector_bytes("go-sev-guest/trust/ask_ark_genoa.pem")
    _expect("attest.chain.invalid", raw, vcek, genoa)


def test_turin_chain_verifies_but_turin_tcb_layout_is_not_supported_yet() -> None:
    raw = _virtee()[0]
    vcek = vector_bytes("virtee-sev/vcek_turin.der")
    chain = vector_bytes("virtee-sev/cert_chain_turin")
    error = _expect("attest.snp.unsupported_product", raw, vcek, chain)
    assert error.context["product"] == "Turin"


@pytest.mark.parametrize(
    ("vcek", "chain"), [(b"not a certificate", None), (None, b"not pem"), (None, b"")]
)
def test_unreadable_certificates_are_chain_errors(vcek: bytes | None, chain: bytes | None) -> None:
    raw, real_vcek, real_chain = _virtee()
    _expect("attest.chain.invalid", raw, vcek or real_vcek, real_chain if chain is None else chain)


def test_naive_now_is_a_programming_error() -> None:
    raw, vcek, chain = _virtee()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_snp_report(raw, vcek, chain, now=datetime(2026, 1, 1))


def test_nonzero_signature_padding_is_malformed() -> None:
    """The signature area is unsigned: padding must be zero so one report has one encoding."""
    raw = _virtee()[0]
    for offset in (OFF_SIGNATURE + 48, OFF_SIGNATURE + 0x48 + 71, len(raw) - 1):
        with pytest.raises(AttestationError) as caught:
            parse_snp_report(_flip(raw, offset))
        assert caught.value.id == "attest.report.malformed"


def test_altered_outer_signature_algorithm_is_refused() -> None:
    """The unsigned outer AlgorithmIdentifier must equal the signed one (RFC 5280 4.1.1.2)."""
    raw, vcek, chain = _virtee()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        cert = x509.load_der_x509_certificate(vcek)
    tbs_end = vcek.index(cert.tbs_certificate_bytes) + len(cert.tbs_certificate_bytes)
    salt = vcek.index(bytes([0x02, 0x01, 48]), tbs_end)
    altered = bytearray(vcek)
    altered[salt + 2] = 32
    error = _expect("attest.chain.invalid", raw, bytes(altered), chain)
    assert "outer signature algorithm" in error.message


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2),
    st.lists(st.tuples(st.integers(0, 4700), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_verifier_raises_only_attestation_error_on_damaged_inputs(
    part: int, edits: list[tuple[int, int]]
) -> None:
    """Damaged certificates once leaked cryptography's ValueError/KeyError; never again."""
    parts = [bytearray(p) for p in _virtee()]
    for offset, mask in edits:
        parts[part][offset % len(parts[part])] ^= mask
    try:
        verify_snp_report(bytes(parts[0]), bytes(parts[1]), bytes(parts[2]), now=NOW)
    except AttestationError as exc:
        assert exc.id.startswith("attest.")
