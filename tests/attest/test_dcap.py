"""SGX/TDX DCAP parsing and verification against real quotes and their collateral."""

from __future__ import annotations

import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import utc, vector_bytes, vector_hex, vector_json, vector_path

from chronoseal.attest import _dcap
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


@pytest.mark.parametrize(
    ("detail", "failure_id"),
    [
        # Refusals no public vector triggers, in dcap-qvl 0.7's own wording.
        ("QE MRSIGNER mismatch: expected 8c4f57, got 00", "attest.qe.identity_mismatch"),
        ("QE ISVPRODID mismatch: expected 1, got 2", "attest.qe.identity_mismatch"),
        ("CertRevoked", "attest.crl.revoked"),
        ("TCB status is invalid: Revoked", "attest.tcb.revoked"),
        ("TDX module MRSIGNER mismatch: expected 00", "attest.tdx.module_mismatch"),
        ("Fmspc mismatch", "attest.collateral.invalid"),
        ("Unsupported DCAP attestation key type", "attest.quote.unsupported_key_type"),
        ("a refusal added in a later dcap-qvl", "attest.dcap.failed"),
    ],
)
def test_dcap_qvl_refusals_map_to_stable_ids(detail: str, failure_id: str) -> None:
    error = _dcap._map_dcap_error(ValueError(f"Verification failed: {detail}"))
    assert error.id == failure_id
    assert error.context["detail"].endswith(detail)


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
