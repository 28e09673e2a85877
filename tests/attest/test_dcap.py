"""SGX/TDX DCAP parsing and verification against real quotes and their collateral."""

from __future__ import annotations

import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import utc, vector_bytes, vector_hex, vector_json, vector_path

from chronoseal.attest import Evidence, _dcap, get_backend
from chronoseal.attest._dcap import (
    HDR_ATT_KEY_TYPE,
    HDR_QE_VENDOR_ID,
    HDR_VERSION,
    SgxQuote,
    TdxQuote,
    parse_quote,
    verify_dcap_quote,
)
from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

JULY_2025 = utc("2025-07-01")
MARCH_2026 = utc("2026-03-01")

BINARY_QUOTES = [
    "dcap-qvl/sgx_quote",
    "dcap-qvl/tdx_quote",
    "dcap-qvl/tdx_quote_outdated",
    "go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
    "go-tdx-guest/quote_v5_sample.dat",
    "go-tdx-guest/ccel/cos-113-tdx-quote.dat",
    "automata-dcap/quotev5.dat",
    "automata-dcap/tdx_quote_5.dat",
]
HEX_QUOTES = [
    "automata-dcap/quotev3.hex",
    "automata-dcap/quotev4.hex",
    "dcap-qvl/tdx-quote.hex",
    "dcap-qvl/quote-from-tappd.hex",
]


def _all_quotes() -> list[tuple[str, bytes]]:
    quotes = [(name, vector_bytes(name)) for name in BINARY_QUOTES]
    return quotes + [(name, vector_hex(name)) for name in HEX_QUOTES]


def _sgx() -> tuple[bytes, dict[str, Any]]:
    return vector_bytes("dcap-qvl/sgx_quote"), vector_json("dcap-qvl/sgx_quote_collateral.json")


def _tdx() -> tuple[bytes, dict[str, Any]]:
    return vector_bytes("dcap-qvl/tdx_quote"), vector_json("dcap-qvl/tdx_quote_collateral.json")


def _flip(raw: bytes, offset: int) -> bytes:
    out = bytearray(raw)
    out[offset] ^= 0x01
    return bytes(out)


def _with_cert_data(raw: bytes, cert_data: bytes) -> bytes:
    """Rebuild a v3 quote with different PCK certification data (sizes patched)."""
    quote = parse_quote(raw)
    start = quote.length - len(quote.auth.cert_data)
    head = bytearray(raw[: start - 4])
    sig_len = int.from_bytes(head[quote.signed_length : quote.signed_length + 4], "little")
    new_sig_len = sig_len - len(quote.auth.cert_data) + len(cert_data)
    head[quote.signed_length : quote.signed_length + 4] = new_sig_len.to_bytes(4, "little")
    return bytes(head) + len(cert_data).to_bytes(4, "little") + cert_data


def _pem_blocks(pem: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [block.strip() + b"\n" + marker + b"\n" for block in pem.split(marker)[:-1]]


def _expect(failure_id: str, raw: bytes, collateral: Any, now: datetime) -> AttestationError:
    with pytest.raises(AttestationError) as caught:
        verify_dcap_quote(raw, collateral, now=now)
    assert caught.value.id == failure_id, str(caught.value)
    return caught.value


# --- parsing -------------------------------------------------------------------------------


def test_sgx_quote_parses_into_named_fields() -> None:
    quote = parse_quote(vector_bytes("dcap-qvl/sgx_quote"))
    assert isinstance(quote, SgxQuote)
    assert quote.header.version == 3
    assert quote.signed_length == 432
    assert quote.length == 4600
    assert quote.body.report_data.startswith(b"Hello, world!")
    assert int.from_bytes(quote.body.attributes[:8], "little") == 0x5
    assert quote.body.debug is False
    assert quote.auth.cert_type == 5
    assert quote.auth.cert_data.startswith(b"-----BEGIN CERTIFICATE-----")
    assert len(quote.auth.qe_auth_data) == 32


def test_tdx_v4_quote_ignores_padding_after_signature_data() -> None:
    raw = vector_bytes("dcap-qvl/tdx_quote")
    quote = parse_quote(raw)
    assert isinstance(quote, TdxQuote)
    assert (quote.header.version, quote.header.tee_type, quote.body_type) == (4, 0x81, 2)
    assert quote.signed_length == 632
    assert quote.length == len(raw) - 70
    assert raw[quote.length :] == bytes(70)
    assert quote.body.td_attributes == 0x10000000
    assert quote.body.debug is False
    assert quote.body.mrservicetd is None


def test_tdx_v5_td15_quote_has_service_td_fields() -> None:
    quote = parse_quote(vector_bytes("dcap-qvl/tdx_quote_outdated"))
    assert isinstance(quote, TdxQuote)
    assert (quote.header.version, quote.body_type, quote.signed_length) == (5, 3, 702)
    assert quote.body.mrservicetd is not None and len(quote.body.mrservicetd) == 48
    assert quote.body.tee_tcb_svn2 is not None


TEST_TAIL = b"\nextra bytes(only for testing purpose)\n"


def test_bytes_after_the_quote_are_refused_unless_zero_padding() -> None:
    """Nothing signs what follows the signature data: a tail could carry anything."""
    raw = vector_bytes("go-tdx-guest/tdx_prod_quote_SPR_E4.dat")
    assert raw.endswith(TEST_TAIL)
    with pytest.raises(AttestationError) as info:
        parse_quote(raw)
    assert info.value.id == "attest.quote.malformed"
    quote = parse_quote(raw.removesuffix(TEST_TAIL))
    assert quote.length == len(raw) - len(TEST_TAIL)
    padded = parse_quote(raw.removesuffix(TEST_TAIL) + bytes(4096))  # a fixed-size buffer
    assert padded.length == quote.length
    with pytest.raises(AttestationError):
        parse_quote(raw.removesuffix(TEST_TAIL) + bytes(100) + b"\x01")


@pytest.mark.parametrize(("name", "raw"), _all_quotes(), ids=lambda v: str(v)[:40])
def test_parser_agrees_with_dcap_qvl_on_every_real_quote(name: str, raw: bytes) -> None:
    raw = raw.removesuffix(TEST_TAIL)
    ours = parse_quote(raw)
    theirs = dcap_qvl.parse_quote(raw)
    assert ours.header.version == theirs.header.version
    assert ours.header.qe_vendor_id == bytes(theirs.header.qe_vendor_id)
    report = theirs.report
    assert ours.body.report_data == bytes(report.report_data)
    if isinstance(ours, SgxQuote):
        assert ours.body.mrenclave == bytes(report.mr_enclave)
        assert ours.body.mrsigner == bytes(report.mr_signer)
    else:
        assert ours.body.mrtd == bytes(report.mr_td)
        assert ours.body.mrseam == bytes(report.mr_seam)
        assert ours.body.rtmrs == tuple(bytes(getattr(report, f"rt_mr{i}")) for i in range(4))
        assert ours.body.td_attributes == int.from_bytes(bytes(report.td_attributes), "little")
    assert ours.auth.cert_data.rstrip(b"\0") == bytes(theirs.cert_chain_pem_bytes() or b"")


@pytest.mark.parametrize(
    ("offset", "value", "failure_id"),
    [
        (HDR_VERSION, 2, "attest.quote.unsupported_version"),
        (HDR_VERSION, 6, "attest.quote.unsupported_version"),
        (HDR_ATT_KEY_TYPE, 3, "attest.quote.unsupported_key_type"),
    ],
)
def test_header_refusals(offset: int, value: int, failure_id: str) -> None:
    raw = bytearray(vector_bytes("dcap-qvl/sgx_quote"))
    struct.pack_into("<H", raw, offset, value)
    with pytest.raises(AttestationError) as caught:
        parse_quote(bytes(raw))
    assert caught.value.id == failure_id


def test_signature_data_len_past_end_is_malformed() -> None:
    raw = bytearray(vector_bytes("dcap-qvl/sgx_quote"))
    struct.pack_into("<I", raw, 432, len(raw))
    with pytest.raises(AttestationError) as caught:
        parse_quote(bytes(raw))
    assert caught.value.id == "attest.quote.malformed"


def test_unknown_v5_body_type_is_refused() -> None:
    raw = bytearray(vector_bytes("dcap-qvl/tdx_quote_outdated"))
    struct.pack_into("<H", raw, 48, 9)
    with pytest.raises(AttestationError) as caught:
        parse_quote(bytes(raw))
    assert caught.value.id == "attest.quote.unsupported_version"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000))
def test_parser_raises_only_attestation_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_quote(data)
    except AttestationError as exc:
        assert exc.id.startswith("attest.quote.")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["dcap-qvl/sgx_quote", "dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_outdated"]),
    st.integers(min_value=0, max_value=5006),
    st.lists(st.tuples(st.integers(0, 5005), st.integers(0, 255)), max_size=4),
)
def test_parser_survives_truncated_and_mutated_real_quotes(
    name: str, cut: int, edits: list[tuple[int, int]]
) -> None:
    raw = bytearray(vector_bytes(name)[:cut])
    for offset, value in edits:
        if offset < len(raw):
            raw[offset] = value
    try:
        parse_quote(bytes(raw))
    except AttestationError as exc:
        assert exc.id.startswith("attest.quote.")


# --- verification: the expected outcomes ---------------------------------------------------


def test_sgx_quote_verifies_with_its_tcb_status_and_advisories() -> None:
    raw, collateral = _sgx()
    claims = verify_dcap_quote(raw, collateral, now=JULY_2025)
    quote = parse_quote(raw)
    assert isinstance(quote, SgxQuote)
    assert claims.tee == "sgx"
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert claims.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert claims.measurements["mrenclave"] == quote.body.mrenclave
    assert claims.measurements["mrsigner"] == quote.body.mrsigner
    assert claims.report_data == quote.body.report_data
    assert claims.report_data.startswith(b"Hello, world!")
    assert claims.debug is False
    assert claims.svn["isvprodid"] == quote.body.isv_prod_id
    assert claims.svn["isvsvn"] == quote.body.isv_svn
    assert claims.platform["fmspc"] == "00a067110000"
    assert claims.platform["qe_tcb_status"] == "UpToDate"


def test_sgx_collateral_may_be_given_as_json_bytes() -> None:
    raw = vector_bytes("dcap-qvl/sgx_quote")
    collateral = vector_path("dcap-qvl/sgx_quote_collateral.json").read_bytes()
    claims = verify_dcap_quote(raw, collateral, now=JULY_2025)
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"


def test_tdx_quote_is_up_to_date() -> None:
    raw, collateral = _tdx()
    claims = verify_dcap_quote(raw, collateral, now=JULY_2025)
    quote = parse_quote(raw)
    assert isinstance(quote, TdxQuote)
    assert claims.tee == "tdx"
    assert claims.tcb_status == "UpToDate"
    assert claims.advisory_ids == ()
    assert claims.debug is False
    assert claims.measurements["mrtd"] == quote.body.mrtd
    assert [claims.measurements[f"rtmr{i}"] for i in range(4)] == list(quote.body.rtmrs)
    assert claims.measurements["mrseam"] == quote.body.mrseam
    assert claims.measurements["mrconfigid"] == quote.body.mrconfigid
    assert claims.measurements["mrowner"] == quote.body.mrowner
    assert claims.report_data == quote.body.report_data
    assert claims.platform["fmspc"] == "b0c06f000000"


def test_outdated_tdx_quote_has_no_matching_tcb_level() -> None:
    raw = vector_bytes("dcap-qvl/tdx_quote_outdated")
    collateral = vector_json("dcap-qvl/tdx_quote_outdated_collateral.json")
    error = _expect("attest.tcb.no_matching_level", raw, collateral, MARCH_2026)
    assert "No matching TCB level" in error.message


# --- verification: one altered input, one failure id ---------------------------------------


@pytest.mark.parametrize(
    ("offset", "failure_id"),
    [
        (112, "attest.signature.invalid"),  # MRENCLAVE
        (368, "attest.signature.invalid"),  # REPORTDATA
        (436, "attest.signature.invalid"),  # quote signature r
        (500 + 10, "attest.qe.binding_invalid"),  # attestation key
        (564 + 64, "attest.qe.signature_invalid"),  # QE report MRENCLAVE
        (948, "attest.qe.signature_invalid"),  # QE report signature
        (1014, "attest.qe.binding_invalid"),  # QE auth data
    ],
)
def test_sgx_altered_byte_fails_with_its_id(offset: int, failure_id: str) -> None:
    raw, collateral = _sgx()
    _expect(failure_id, _flip(raw, offset), collateral, JULY_2025)


@pytest.mark.parametrize(
    ("offset", "failure_id"),
    [
        (184, "attest.signature.invalid"),  # MRTD
        (568, "attest.signature.invalid"),  # REPORTDATA
        (636, "attest.signature.invalid"),  # quote signature
        (770 + 64, "attest.qe.signature_invalid"),  # QE report
    ],
)
def test_tdx_altered_byte_fails_with_its_id(offset: int, failure_id: str) -> None:
    raw, collateral = _tdx()
    _expect(failure_id, _flip(raw, offset), collateral, JULY_2025)


def test_foreign_qe_vendor_is_refused() -> None:
    raw, collateral = _sgx()
    _expect("attest.quote.unknown_vendor", _flip(raw, HDR_QE_VENDOR_ID), collateral, JULY_2025)


@pytest.mark.parametrize("when", ["2025-06-01", "2025-08-01", "2026-11-27"])
def test_outside_the_collateral_window_is_expired(when: str) -> None:
    raw, collateral = _sgx()
    _expect("attest.collateral.expired", raw, collateral, utc(when))


def test_naive_now_is_a_programming_error() -> None:
    raw, collateral = _sgx()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_dcap_quote(raw, collateral, now=datetime(2025, 7, 1))


@pytest.mark.parametrize("field", ["tcb_info", "qe_identity"])
def test_altered_collateral_signature_fails(field: str) -> None:
    raw, collateral = _sgx()
    altered = dict(collateral)
    altered[field] = collateral[field].replace('"version":', '"version" :', 1)
    assert altered[field] != collateral[field]
    _expect("attest.collateral.invalid", raw, altered, JULY_2025)


def test_collateral_for_another_tee_fails() -> None:
    raw, _ = _tdx()
    _, sgx_collateral = _sgx()
    _expect("attest.collateral.invalid", raw, sgx_collateral, JULY_2025)


def test_unreadable_collateral_fails() -> None:
    raw, _ = _sgx()
    _expect("attest.collateral.invalid", raw, b"{not json", JULY_2025)


def test_chain_ending_in_another_root_is_untrusted() -> None:
    raw, collateral = _sgx()
    chain = _pem_blocks(parse_quote(raw).auth.cert_data.rstrip(b"\0"))
    test_root = vector_path("intel-dcap-qvl-sampledata/trustedRootCaCert.pem").read_bytes()
    forged = _with_cert_data(raw, b"".join(chain[:-1]) + test_root)
    error = _expect("attest.chain.untrusted_root", forged, collateral, JULY_2025)
    assert "Intel SGX Root CA" in error.message


def test_leaf_from_another_platform_does_not_chain() -> None:
    raw, collateral = _sgx()
    chain = _pem_blocks(parse_quote(raw).auth.cert_data.rstrip(b"\0"))
    other = _pem_blocks(parse_quote(_tdx()[0]).auth.cert_data.rstrip(b"\0"))
    forged = _with_cert_data(raw, b"".join([other[0], *chain[1:]]))
    _expect("attest.chain.invalid", forged, collateral, JULY_2025)


def test_quote_without_pck_chain_is_refused() -> None:
    raw = vector_bytes("intel-dcap-qvl-sampledata/quote.dat")
    error = _expect("attest.chain.invalid", raw, _sgx()[1], JULY_2025)
    assert error.context["cert_type"] == 1


def test_intel_sample_tdx_quote_with_der_chain_is_refused() -> None:
    raw = vector_bytes("intel-dcap-qvl-sampledata/tdx/quote.dat")
    _expect("attest.chain.invalid", raw, _tdx()[1], JULY_2025)


def test_rebuilt_quote_with_its_own_chain_still_verifies() -> None:
    """The rebuild helper used above is faithful: same chain in, same result out."""
    raw, collateral = _sgx()
    same = _with_cert_data(raw, parse_quote(raw).auth.cert_data)
    assert same == raw
    assert verify_dcap_quote(same, collateral, now=JULY_2025).tee == "sgx"


def test_bundled_root_is_checked_against_its_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_root = x509.load_pem_x509_certificate(
        vector_path("intel-dcap-qvl-sampledata/trustedRootCaCert.pem").read_bytes()
    )
    (tmp_path / "intel_sgx_root_ca.der").write_bytes(test_root.public_bytes(Encoding.DER))
    monkeypatch.setattr(_dcap, "ROOTS_DIR", tmp_path)
    raw, collateral = _sgx()
    error = _expect("attest.chain.untrusted_root", raw, collateral, JULY_2025)
    assert "bundled" in error.message


@settings(max_examples=150, deadline=None)
@given(
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 5005), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_verifier_raises_only_attestation_error_on_damaged_quotes(
    tdx: bool, edits: list[tuple[int, int]]
) -> None:
    """Damaged certificates once leaked cryptography's KeyError/ValueError; never again."""
    raw, collateral = _tdx() if tdx else _sgx()
    damaged = bytearray(raw)
    for offset, mask in edits:
        damaged[offset % len(raw)] ^= mask
    try:
        verify_dcap_quote(bytes(damaged), collateral, now=JULY_2025)
    except AttestationError as exc:
        assert exc.id.startswith("attest.")


# dcap-qvl 0.7's own wording, one sample per entry of _dcap._DCAP_ERROR_IDS (texts marked
# "real" were produced by the mutations below; the others by no public vector).
CAUSED_BY = "\n\nCaused by:\n    "
DCAP_SAMPLES: list[tuple[str, str, str]] = [
    (
        "No matching TCB level found",
        "No matching TCB level",
        "attest.tcb.no_matching_level",
    ),  # real
    ("TCB status is invalid: Revoked", "TCB status is invalid: Revoked", "attest.tcb.revoked"),
    (
        "Failed to verify certificate chain" + CAUSED_BY + "CertRevoked",
        "CertRevoked",
        "attest.crl.revoked",
    ),
    (
        "Failed to verify certificate chain" + CAUSED_BY + "UnknownRevocationStatus",  # real
        "UnknownRevocationStatus",
        "attest.crl.unknown_status",
    ),
    (
        "CrlExpired { time: UnixTime(1795737600), next_update: UnixTime(1775215317) }",  # real
        "CrlExpired",
        "attest.collateral.expired",
    ),
    (
        "Failed to verify certificate chain" + CAUSED_BY + "CertExpired { time: UnixTime(1), "
        "not_after: UnixTime(0) }",
        "CertExpired",
        "attest.collateral.expired",
    ),
    (
        "Failed to verify certificate chain" + CAUSED_BY + "CertNotValidYet { time: "
        "UnixTime(1750377600), not_before: UnixTime(1769524587) }",  # real
        "CertNotValidYet",
        "attest.collateral.expired",
    ),
    (
        "Collateral expired: earliest_expiration 1 < now 2",
        "Collateral expired",
        "attest.collateral.expired",
    ),
    (
        "certificate expired: verification time 2 (UNIX), but certificate is not valid after 1",
        "certificate expired",
        "attest.collateral.expired",
    ),
    (
        "certificate revocation list expired: verification time 2 (UNIX), but CRL is not valid "
        "after 1",
        "revocation list expired",
        "attest.collateral.expired",
    ),
    ("TCBInfo expired", "TCBInfo expired", "attest.collateral.expired"),  # real
    ("QE Identity expired", "QE Identity expired", "attest.collateral.expired"),
    (
        "TCBInfo issue date is in the future",  # real
        "issue date is in the future",
        "attest.collateral.expired",
    ),
    (
        "Failed to parse root CA CRL" + CAUSED_BY + "InvalidCrlSignatureForPublicKey",  # real
        "InvalidCrlSignatureForPublicKey",
        "attest.collateral.invalid",
    ),
    (
        "Signature is invalid for tcb_info in quote_collateral",  # real
        "Signature is invalid for tcb_info",
        "attest.collateral.invalid",
    ),
    (
        "Signature is invalid for qe_identity in quote_collateral",  # real
        "Signature is invalid for qe_identity",
        "attest.collateral.invalid",
    ),
    ("Fmspc mismatch", "Fmspc mismatch", "attest.collateral.invalid"),  # real
    (
        "TDX quote with non-TDX TCB info in the collateral",
        "TCB info in the collateral",
        "attest.collateral.invalid",
    ),
    (
        "TDX TCB Info is missing tdxModule field",
        "missing tdxModule",
        "attest.collateral.invalid",
    ),
    (
        "SGX component count mismatch: expected 16, got 15",
        "component count mismatch",
        "attest.collateral.invalid",
    ),
    (
        "No TCB levels found in QE Identity",
        "No TCB levels found in QE Identity",
        "attest.collateral.invalid",
    ),
    (
        "Failed to decode TcbInfo" + CAUSED_BY + "missing field `id` at line 1 column 2",  # real
        "Failed to decode TcbInfo",
        "attest.collateral.invalid",
    ),
    (
        "Failed to decode QeIdentity" + CAUSED_BY + "missing field `id` at line 1 column 2",
        "Failed to decode QeIdentity",
        "attest.collateral.invalid",
    ),
    (
        "Unsupported QE Identity id/version for the quote TEE type: QE version 2 (expected "
        "TD_QE version [2, 3])",  # real
        "Unsupported QE Identity",
        "attest.collateral.invalid",
    ),
    (
        "Failed to parse PCK CRL" + CAUSED_BY + "TrailingData(CertRevocationList)",  # real
        "CRL",
        "attest.collateral.invalid",
    ),
    (
        "Signature is invalid for qe_report in quote",  # real
        "Signature is invalid for qe_report",
        "attest.qe.signature_invalid",
    ),
    ("QE report hash mismatch", "QE report hash mismatch", "attest.qe.binding_invalid"),  # real
    ("Invalid QE auth data length", "Invalid QE auth data length", "attest.qe.binding_invalid"),
    (
        "QE MRSIGNER mismatch: expected 8c4f57, got 00",
        "QE MRSIGNER mismatch",
        "attest.qe.identity_mismatch",
    ),
    (
        "QE ISVPRODID mismatch: expected 1, got 2",
        "QE ISVPRODID mismatch",
        "attest.qe.identity_mismatch",
    ),
    (
        "QE ATTRIBUTES mismatch at byte 0: expected 11 (masked), got 13 (masked)",
        "QE ATTRIBUTES mismatch",
        "attest.qe.identity_mismatch",
    ),
    (
        "QE MISCSELECT mismatch: expected 00000000 (masked), got 00000001 (masked)",
        "QE MISCSELECT mismatch",
        "attest.qe.identity_mismatch",
    ),
    (
        "QE ISVSVN 1 is below minimum required 2 from QE Identity",
        "QE ISVSVN",
        "attest.qe.identity_mismatch",
    ),
    (
        "ISV enclave report signature is invalid",  # real
        "ISV enclave report signature is invalid",
        "attest.signature.invalid",
    ),
    (
        "TDX module identity check"
        + CAUSED_BY
        + "TDX module MRSIGNER mismatch: expected 00, got 01",
        "TDX module",
        "attest.tdx.module_mismatch",
    ),
    (
        "Invalid MR service TD",  # real
        "Invalid MR service TD",
        "attest.tdx.service_td_not_allowed",
    ),
    (
        "SEPT_VE_DISABLE is not enabled",
        "SEPT_VE_DISABLE is not enabled",
        "attest.tdx.attributes_refused",
    ),
    (
        "Reserved bits in TD attributes are set",
        "Reserved bits in TD attributes",
        "attest.tdx.attributes_refused",
    ),
    ("Debug mode is enabled", "Debug mode is enabled", "attest.debug.enabled"),
    (
        "Failed to load root ca" + CAUSED_BY + "BadDer",
        "Failed to load root ca",
        "attest.chain.untrusted_root",
    ),
    ("UnknownIssuer", "UnknownIssuer", "attest.chain.invalid"),  # real
    (
        "Failed to parse TCB Info leaf certificate" + CAUSED_BY + "InvalidSignatureForPublicKey",
        "InvalidSignatureForPublicKey",
        "attest.chain.invalid",
    ),
    (
        "Failed to verify certificate chain" + CAUSED_BY + "CaUsedAsEndEntity",  # real
        "certificate chain",
        "attest.chain.invalid",
    ),
    (
        "Certificate chain is too short for TCB Info",  # real
        "Certificate chain",
        "attest.chain.invalid",
    ),
    (
        "Failed to parse PCK certificate" + CAUSED_BY + "BadDer",
        "PCK certificate",
        "attest.chain.invalid",
    ),
    (
        "Unsupported DCAP PCK cert format: 3. Use CollateralClient::fetch() to obtain it.",
        "PCK cert format",
        "attest.chain.invalid",
    ),
    ("Unknown QE vendor ID", "Unknown QE vendor", "attest.quote.unknown_vendor"),
    (
        "Unsupported DCAP quote version",
        "Unsupported DCAP quote version",
        "attest.quote.unsupported_version",
    ),
    (
        "SGX TEE quote must have version 3",
        "must have version",
        "attest.quote.unsupported_version",
    ),
    (
        "Unsupported DCAP attestation key type",
        "Unsupported DCAP attestation key type",
        "attest.quote.unsupported_key_type",
    ),
    ("Unsupported TEE type: 7", "Unsupported TEE type", "attest.quote.malformed"),
    ("Invalid TEE type", "Invalid TEE type", "attest.quote.malformed"),
    (
        "Failed to decode quote" + CAUSED_BY + "unexpected end of input",
        "Failed to decode quote",
        "attest.quote.malformed",
    ),
]


@pytest.mark.parametrize(
    ("detail", "fragment", "failure_id"), DCAP_SAMPLES, ids=[s[1] for s in DCAP_SAMPLES]
)
def test_each_dcap_qvl_refusal_maps_to_its_own_id(
    detail: str, fragment: str, failure_id: str
) -> None:
    """The entry that decides is the one meant, not an earlier, broader one."""
    assert _dcap._dcap_refusal(detail) == (fragment, failure_id)
    error = _dcap._map_dcap_error(ValueError(f"Verification failed: {detail}"))
    assert error.id == failure_id
    assert error.context["detail"].endswith(detail)


def test_every_table_entry_has_a_sample() -> None:
    assert [(fragment, fid) for _, fragment, fid in DCAP_SAMPLES] == list(_dcap._DCAP_ERROR_IDS)


def test_an_unknown_refusal_is_the_generic_id() -> None:
    error = _dcap._map_dcap_error(ValueError("Verification failed: a refusal added later"))
    assert error.id == "attest.dcap.failed"


def test_every_fragment_is_still_in_the_installed_dcap_qvl() -> None:
    """A dcap-qvl release that rewords a refusal must fail here, not map it to a generic id."""
    package = Path(dcap_qvl.__file__).parent
    binary = b"".join(path.read_bytes() for path in package.glob("_dcap_qvl*.so"))
    assert binary, f"no dcap-qvl extension module under {package}"
    missing = [fragment for fragment, _ in _dcap._DCAP_ERROR_IDS if fragment.encode() not in binary]
    assert missing == []


def _pcs_body(relative: str, key: str) -> tuple[str, str]:
    """Split a PCS response into the exact signed JSON text of ``key`` and its signature."""
    text = vector_path(relative).read_text().strip()
    prefix = f'{{"{key}":'
    assert text.startswith(prefix)
    return text[len(prefix) : text.rindex(',"signature"')], json.loads(text)["signature"]


def test_platform_ca_sgx_quote_with_collateral_from_another_source() -> None:
    """automata's SGX quote (PCK Platform CA) with its Aug-2025 PCS responses and CRL.

    Root CRL and issuer chains come from dcap-qvl's collateral (the same Intel keys, as the
    vectors README says). The expected status is characterisation: automata states none;
    this is what dcap-qvl 0.7 computes, and it differs from the processor-CA quote's.
    """
    tcb_info, tcb_signature = _pcs_body(
        "automata-dcap/collateral/0825_sgx_tcbinfov3_00606a000000.json", "tcbInfo"
    )
    qe_identity, qe_signature = _pcs_body(
        "automata-dcap/collateral/0825_sgx_qeidentity_v4.json", "enclaveIdentity"
    )
    collateral = dict(
        _sgx()[1],
        tcb_info=tcb_info,
        tcb_info_signature=tcb_signature,
        qe_identity=qe_identity,
        qe_identity_signature=qe_signature,
        pck_crl=vector_bytes("automata-dcap/collateral/0825_platform_crl.der").hex(),
    )
    raw = vector_hex("automata-dcap/quotev3.hex")
    claims = verify_dcap_quote(raw, collateral, now=utc("2025-08-20"))
    assert claims.tee == "sgx"
    assert claims.tcb_status == "SWHardeningNeeded"
    assert claims.advisory_ids == ("INTEL-SA-00615",)
    assert claims.platform["pck_ca"] == "platform"
    assert claims.platform["fmspc"] == "00606a000000"
    _expect("attest.collateral.expired", raw, collateral, utc("2025-09-20"))


# --- real refusals from mutated vectors, through the public backend --------------------------


def _backend_refusal(tee: Tee, raw: bytes, collateral: Any, now: datetime) -> AttestationError:
    evidence = Evidence(tee, Component.ANALYSIS, raw)
    with pytest.raises(AttestationError) as caught:
        get_backend(tee).verify(evidence, now=now, collateral=lambda _e: collateral, max_age=None)
    return caught.value


def _flip_hex(text: str, index: int = -1) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[index] ^= 0x01
    return raw.hex()


def _automata_tdx_collateral(tcb_info: str) -> dict[str, Any]:
    """dcap-qvl's TDX CRLs and chains with automata's Intel-signed June-2025 PCS bodies."""
    info, info_signature = _pcs_body(f"automata-dcap/collateral/{tcb_info}", "tcbInfo")
    identity, identity_signature = _pcs_body(
        "automata-dcap/collateral/0625_qe_td.json", "enclaveIdentity"
    )
    return dict(
        _tdx()[1],
        tcb_info=info,
        tcb_info_signature=info_signature,
        qe_identity=identity,
        qe_identity_signature=identity_signature,
    )


class Refusal(NamedTuple):
    """One real mutation: the id it must give and the dcap-qvl fragment that decides it."""

    name: str
    tee: Tee
    raw: bytes
    collateral: dict[str, Any]
    now: datetime
    failure_id: str
    fragment: str


def _sgx_collateral(**changes: str) -> dict[str, Any]:
    return dict(_sgx()[1], **changes)


def _mutations() -> list[Refusal]:
    sgx_raw, sgx = _sgx()
    tdx_raw, tdx = _tdx()
    platform_crl = vector_bytes("automata-dcap/collateral/0825_platform_crl.der").hex()
    other_tdx_fmspc = _automata_tdx_collateral("0625_tcbinfov3_90C06F000000.json")
    june = utc("2025-06-20")
    collateral_cases = [
        (
            "TCB info signature",
            _sgx_collateral(tcb_info_signature=_flip_hex(sgx["tcb_info_signature"])),
            "attest.collateral.invalid",
            "Signature is invalid for tcb_info",
        ),
        (
            "QE identity signature",
            _sgx_collateral(qe_identity_signature=_flip_hex(sgx["qe_identity_signature"])),
            "attest.collateral.invalid",
            "Signature is invalid for qe_identity",
        ),
        (
            "PCK CRL signature",
            _sgx_collateral(pck_crl=_flip_hex(sgx["pck_crl"])),
            "attest.collateral.invalid",
            "InvalidCrlSignatureForPublicKey",
        ),
        (
            "root CRL signature",
            _sgx_collateral(root_ca_crl=_flip_hex(sgx["root_ca_crl"])),
            "attest.collateral.invalid",
            "InvalidCrlSignatureForPublicKey",
        ),
        ("garbage PCK CRL", _sgx_collateral(pck_crl="00"), "attest.collateral.invalid", "CRL"),
        (
            "PCK CRL of the Platform CA",
            _sgx_collateral(pck_crl=platform_crl),
            "attest.crl.unknown_status",
            "UnknownRevocationStatus",
        ),
        (
            "root CRL as PCK CRL",
            _sgx_collateral(pck_crl=sgx["root_ca_crl"]),
            "attest.crl.unknown_status",
            "UnknownRevocationStatus",
        ),
        (
            "TCB info of another FMSPC (the TDX one)",
            _sgx_collateral(tcb_info=tdx["tcb_info"], tcb_info_signature=tdx["tcb_info_signature"]),
            "attest.collateral.invalid",
            "Fmspc mismatch",
        ),
        (
            "QE identity of the TD QE",
            _sgx_collateral(
                qe_identity=tdx["qe_identity"], qe_identity_signature=tdx["qe_identity_signature"]
            ),
            "attest.collateral.invalid",
            "Unsupported QE Identity",
        ),
        (
            "TCB info that is not TCB info",
            _sgx_collateral(tcb_info="{}"),
            "attest.collateral.invalid",
            "Failed to decode TcbInfo",
        ),
        (
            "QE identity that is not QE identity",
            _sgx_collateral(qe_identity="{}"),
            "attest.collateral.invalid",
            "Failed to decode QeIdentity",
        ),
        (
            "TCB signing chain replaced by the PCK CRL chain",
            _sgx_collateral(tcb_info_issuer_chain=sgx["pck_crl_issuer_chain"]),
            "attest.chain.invalid",
            "certificate chain",
        ),
        (
            "no TCB signing chain",
            _sgx_collateral(tcb_info_issuer_chain=""),
            "attest.chain.invalid",
            "Certificate chain",
        ),
    ]
    cases = [
        Refusal(name, "sgx", sgx_raw, collateral, JULY_2025, failure_id, fragment)
        for name, collateral, failure_id, fragment in collateral_cases
    ]
    signature = "ISV enclave report signature is invalid"
    qe_signature = "Signature is invalid for qe_report"
    expired = "attest.collateral.expired"
    cases += [
        Refusal(
            "quote signature",
            "sgx",
            _flip(sgx_raw, 436),
            sgx,
            JULY_2025,
            "attest.signature.invalid",
            signature,
        ),
        Refusal(
            "TDX quote signature",
            "tdx",
            _flip(tdx_raw, 636),
            tdx,
            JULY_2025,
            "attest.signature.invalid",
            signature,
        ),
        Refusal(
            "QE report",
            "sgx",
            _flip(sgx_raw, 564 + 64),
            sgx,
            JULY_2025,
            "attest.qe.signature_invalid",
            qe_signature,
        ),
        Refusal(
            "TDX QE report signature",
            "tdx",
            _flip(tdx_raw, 1154),
            tdx,
            JULY_2025,
            "attest.qe.signature_invalid",
            qe_signature,
        ),
        Refusal(
            "attestation key",
            "sgx",
            _flip(sgx_raw, 510),
            sgx,
            JULY_2025,
            "attest.qe.binding_invalid",
            "QE report hash mismatch",
        ),
        Refusal(
            "TCB info of another TDX FMSPC",
            "tdx",
            tdx_raw,
            other_tdx_fmspc,
            june,
            "attest.collateral.invalid",
            "Fmspc mismatch",
        ),
        Refusal(
            "before the TCB info was issued",
            "sgx",
            sgx_raw,
            sgx,
            utc("2025-06-19T10:30:00"),
            expired,
            "issue date is in the future",
        ),
        Refusal(
            "after the TCB info's next update",
            "sgx",
            sgx_raw,
            sgx,
            utc("2025-07-20"),
            expired,
            "TCBInfo expired",
        ),
        Refusal(
            "after the CRLs' next update",
            "sgx",
            sgx_raw,
            sgx,
            utc("2026-11-27"),
            expired,
            "CrlExpired",
        ),
        Refusal(
            "TCB no longer matched",
            "tdx",
            vector_bytes("dcap-qvl/tdx_quote_outdated"),
            vector_json("dcap-qvl/tdx_quote_outdated_collateral.json"),
            MARCH_2026,
            "attest.tcb.no_matching_level",
            "No matching TCB level",
        ),
        Refusal(
            "TD bound to a service TD",
            "tdx",
            vector_bytes("automata-dcap/quotev5.dat"),
            other_tdx_fmspc,
            june,
            "attest.tdx.service_td_not_allowed",
            "Invalid MR service TD",
        ),
    ]
    return cases


MUTATIONS = _mutations()


@pytest.mark.parametrize("case", MUTATIONS, ids=[case.name for case in MUTATIONS])
def test_each_real_refusal_has_its_specific_id(case: Refusal) -> None:
    error = _backend_refusal(case.tee, case.raw, case.collateral, case.now)
    assert error.id == case.failure_id, str(error)
    assert _dcap._dcap_refusal(error.context["detail"]) == (case.fragment, case.failure_id)


def test_the_collateral_used_for_the_service_td_refusal_is_otherwise_good() -> None:
    """automata's June collateral verifies a TDX quote of the same kind: the refusal above is
    about MRSERVICETD, not about the collateral it was paired with."""
    collateral = _automata_tdx_collateral("0625_tcbinfov3_00806f050000.json")
    raw = vector_bytes("go-tdx-guest/ccel/cos-113-tdx-quote.dat")
    claims = verify_dcap_quote(raw, collateral, now=utc("2025-06-20"))
    assert claims.tcb_status == "UpToDate"
    quote = parse_quote(vector_bytes("automata-dcap/quotev5.dat"))
    assert isinstance(quote, TdxQuote) and quote.body.mrservicetd != bytes(48)
