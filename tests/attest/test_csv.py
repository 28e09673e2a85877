"""Hygon CSV: certificates, the SM2 chain and reports, on real vectors and constructed chains.

Real data (``../shared/vectors/hygon-csv``) covers: the pinned HRK and its self-signature,
HRK -> HSK -> CEK (csv-rs's chip), PEK -> report (Trustee's chip), and a real wrong-chip CEK
(csv-rs's CEK against Trustee's PEK). CEK -> PEK for one chip, V2 reports, bound report data
and policy bits are covered by constructed data (``csv_builder``), signed with libcrypto SM2.
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from csv_builder import POLICY_PRODUCTION, SERIAL, CsvPlatform, le72
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from vectors import vector_bytes, vector_path

from chronoseal.attest import (
    Appraisal,
    AppraisalPolicy,
    Appraiser,
    Evidence,
    PinnedMeasurements,
    measurement_digest,
)
from chronoseal.attest._csv import (
    HRK_SHA256,
    POLICY_NOSEND,
    USAGE_CEK,
    csv_report_wrapper,
    parse_ca_certificate,
    parse_csv_certificate,
    parse_csv_report,
    verify_csv_chain,
    verify_csv_report,
)
from chronoseal.attest._sm2 import Sm2PrivateKey
from chronoseal.errors import AttestationError
from chronoseal.spec import Component

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _trustee_report() -> bytes:
    document = json.loads(vector_path("hygon-csv/csv_evidence.json").read_text())
    report = document["attestation_report"]
    return csv_report_wrapper(
        bytes(report["data"]), magic=bytes(report["magic"]), flags=report["flags"]
    )


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _expect(failure_id: str, raw: bytes, hsk_cek: bytes, **kwargs: bytes) -> AttestationError:
    with pytest.raises(AttestationError) as caught:
        verify_csv_report(raw, hsk_cek, **kwargs)
    assert caught.value.id == failure_id, str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def platform() -> CsvPlatform:
    return CsvPlatform()


# --- real certificates ----------------------------------------------------------------------


def test_real_certificates_parse_with_hygon_usages_and_user_ids() -> None:
    hrk = parse_ca_certificate(vector_bytes("hygon-csv/hrk.cert"))
    hsk = parse_ca_certificate(vector_bytes("hygon-csv/hsk.cert"))
    cek = parse_csv_certificate(vector_bytes("hygon-csv/cek.cert"))
    assert (hrk.usage, hrk.user_id) == (0x0, b"HYGON-SSD-HRK")
    assert (hsk.usage, hsk.user_id) == (0x13, b"HYGON-SSD-HSK")
    assert (cek.usage, cek.user_id) == (USAGE_CEK, b"HYGON-SSD-CEK")
    assert hsk.signer_id == hrk.key_id and cek.signer_id == hsk.key_id


def test_the_real_hsk_cek_chain_verifies_against_the_pinned_hrk() -> None:
    chain = verify_csv_chain(vector_bytes("hygon-csv/hsk_cek.cert"))
    assert chain.hrk.raw == vector_bytes("hygon-csv/hrk.cert")
    assert chain.cek.raw == vector_bytes("hygon-csv/cek.cert")


def test_the_pinned_hrk_is_the_published_one() -> None:
    assert hashlib.sha256(vector_bytes("hygon-csv/hrk.cert")).hexdigest() == HRK_SHA256


@pytest.mark.parametrize(
    ("offset", "failure_id"),
    [
        (80, "attest.chain.invalid"),  # HSK key x (signed body)
        (600, "attest.chain.invalid"),  # HSK signature r
        (832 + 30, "attest.chain.invalid"),  # CEK key x
        (832 + 1044 + 20, "attest.chain.invalid"),  # CEK's HSK signature
        (832 + 1044 + 8 + 40, "attest.csv.cert_malformed"),  # unsigned r padding
        (832 - 5, "attest.csv.cert_malformed"),  # HSK reserved tail
    ],
)
def test_a_one_byte_tamper_of_the_real_chain_is_refused(offset: int, failure_id: str) -> None:
    tampered = _flip(vector_bytes("hygon-csv/hsk_cek.cert"), offset)
    with pytest.raises(AttestationError) as caught:
        verify_csv_chain(tampered)
    assert caught.value.id == failure_id


def test_a_chain_from_another_root_is_untrusted(platform: CsvPlatform) -> None:
    # Verifies with its own (constructed) root, and is refused against the pinned one.
    verify_csv_chain(platform.hsk_cek, hrk=platform.hrk)
    with pytest.raises(AttestationError) as caught:
        verify_csv_chain(platform.hsk_cek)
    assert caught.value.id == "attest.chain.invalid"


def test_a_substituted_root_is_untrusted_not_merely_invalid(platform: CsvPlatform) -> None:
    from chronoseal.attest import _csv

    with pytest.raises(AttestationError) as caught:
        _csv._check_hrk(platform.hrk, pinned=True)
    assert caught.value.id == "attest.chain.untrusted_root"


# --- the real report ------------------------------------------------------------------------


def test_the_real_report_parses_and_its_pek_signature_verifies() -> None:
    from chronoseal.attest._sm2 import sm2_verify

    report = parse_csv_report(_trustee_report())
    assert report.version == 1 and report.chip_id == "KPA64911240507"
    assert report.policy.value == 0x45 and not report.policy.debug
    assert report.policy.migratable  # NOSEND clear on this guest
    pek = parse_csv_certificate(report.pek)
    assert sm2_verify(pek.public_xy, report.signature, report.signed, user_id=b"HYGON-SSD-PEK")
    assert not sm2_verify(
        pek.public_xy, report.signature, _flip(report.signed, 70), user_id=b"HYGON-SSD-PEK"
    )


def test_the_real_report_with_another_chips_real_cek_is_refused_as_such() -> None:
    error = _expect(
        "attest.csv.cek_mismatch", _trustee_report(), vector_bytes("hygon-csv/hsk_cek.cert")
    )
    assert "KPA64911240507" in error.message


def test_the_real_report_with_its_pek_resigned_by_a_constructed_cek_verifies() -> None:
    """Real PEK -> report link, real PEK key; only the CEK -> PEK signature is constructed."""
    platform = CsvPlatform()
    raw = bytearray(_trustee_report())
    pek_at = 20 + 0x150
    pek = bytes(raw[pek_at : pek_at + 2084])
    rs = platform.cek_key.sign(pek[:1044], user_id=b"HYGON-SSD-CEK")
    slot = struct.pack("<II", USAGE_CEK, 4) + le72(rs[:32]) + le72(rs[32:]) + bytes(368)
    raw[pek_at + 1044 : pek_at + 1564] = slot
    claims = verify_csv_report(bytes(raw), platform.hsk_cek, hrk=platform.hrk)
    assert claims.tee == "csv" and claims.platform["chip_id"] == "KPA64911240507"
    assert claims.measurements["measure"].hex().startswith("ae2a2cf1f41a485f")
    assert claims.report_data == bytes(64) and not claims.debug and claims.migratable
    # A one-byte tamper of the signed part is a report signature failure.
    _expect(
        "attest.signature.invalid",
        _flip(bytes(raw), 20 + 150),
        platform.hsk_cek,
        hrk=platform.hrk,
    )


# --- constructed chains ---------------------------------------------------------------------


def test_a_constructed_v1_report_verifies_with_unmasked_claims(
    platform: CsvPlatform, report_data: bytes
) -> None:
    raw = csv_report_wrapper(platform.report_v1(report_data))
    claims = verify_csv_report(raw, platform.hsk_cek, hrk=platform.hrk)
    assert claims.report_data == report_data
    assert claims.measurements["measure"] == b"\x11" * 32
    assert claims.platform["chip_id"] == SERIAL.decode()
    assert not claims.debug and not claims.migratable
    assert claims.platform["report_version"] == "1"


def test_a_plain_4096_byte_page_is_a_v1_report(platform: CsvPlatform, report_data: bytes) -> None:
    claims = verify_csv_report(platform.report_v1(report_data), platform.hsk_cek, hrk=platform.hrk)
    assert claims.report_data == report_data


def test_a_constructed_v2_report_verifies_with_its_rtmrs(
    platform: CsvPlatform, report_data: bytes
) -> None:
    claims = verify_csv_report(platform.report_v2(report_data), platform.hsk_cek, hrk=platform.hrk)
    assert claims.platform["report_version"] == "2"
    assert [claims.measurements[f"rtmr{i}"] for i in range(5)] == [
        bytes([i]) * 32 for i in range(1, 6)
    ]
    assert claims.report_data == report_data


def test_a_v2_tamper_inside_the_rtmrs_is_refused(platform: CsvPlatform, report_data: bytes) -> None:
    raw = _flip(platform.report_v2(report_data), 20 + 208 + 40)
    _expect("attest.signature.invalid", raw, platform.hsk_cek, hrk=platform.hrk)


def test_a_pek_signed_under_the_wrong_sm2_id_is_refused(
    platform: CsvPlatform, report_data: bytes
) -> None:
    """The CEK signed the PEK with the default SM2 id instead of HYGON-SSD-CEK."""
    page = bytearray(platform.report_v1(report_data))
    page[0x150 : 0x150 + 2084] = platform.pek(cek_uid=b"1234567812345678")
    _expect("attest.csv.cek_mismatch", bytes(page), platform.hsk_cek, hrk=platform.hrk)


def test_a_report_signed_under_the_wrong_sm2_id_is_refused(
    platform: CsvPlatform, report_data: bytes
) -> None:
    raw = platform.report_v1(report_data, pek_uid=b"HYGON-SSD-CEK")
    _expect("attest.signature.invalid", raw, platform.hsk_cek, hrk=platform.hrk)


def test_a_wrong_chip_cek_is_refused(platform: CsvPlatform, report_data: bytes) -> None:
    other = CsvPlatform(hrk_key=platform.hrk_key, hsk_key=platform.hsk_key)
    raw = platform.report_v1(report_data)
    error = _expect("attest.csv.cek_mismatch", raw, other.hsk_cek, hrk=platform.hrk)
    assert SERIAL.decode() in error.message


def test_a_pek_beside_the_report_must_be_the_reports_own(
    platform: CsvPlatform, report_data: bytes
) -> None:
    raw = platform.report_v1(report_data)
    _expect("attest.csv.pek_mismatch", raw, platform.hsk_cek, pek=platform.pek(), hrk=platform.hrk)


def test_changing_the_unsigned_anonce_changes_every_v1_claim(
    platform: CsvPlatform, report_data: bytes
) -> None:
    """ANONCE is not signed: the claims then move, and only the binding check catches it."""
    page = bytearray(platform.report_v1(report_data))
    for offset in (180, 184, 188):  # sig_usage, sig_algo and anonce all re-masked consistently
        page[offset] ^= 0x01
    claims = verify_csv_report(bytes(page), platform.hsk_cek, hrk=platform.hrk)
    assert claims.report_data != report_data
    policy = AppraisalPolicy(measurements=None)
    appraisal = Appraiser(policy).appraise(
        Evidence("csv", Component.ANALYSIS, bytes(page)),
        component=Component.ANALYSIS,
        expected_report_data=report_data,
        now=NOW,
    )
    assert "attest.binding.mismatch" in appraisal.failures or not appraisal.accepted


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(offset=st.integers(min_value=0, max_value=4115))
@example(offset=2000)
def test_any_one_byte_change_of_a_constructed_report_is_caught(
    platform: CsvPlatform, report_data: bytes, offset: int
) -> None:
    """Every byte is signed, unsigned-but-checked (padding, PEK), or moves a bound claim."""
    raw = csv_report_wrapper(platform.report_v1(report_data))
    tampered = _flip(raw, offset)
    try:
        claims = verify_csv_report(tampered, platform.hsk_cek, hrk=platform.hrk)
    except AttestationError:
        return
    # What still verifies: the PEK's owner (OCA) signature, which nothing here can check, the
    # unsigned serial, the MAC, and V1's unsigned mask fields.
    pek = 20 + 0x150
    oca_signature = pek + 1044 + 520 + 8
    moved = claims.report_data != report_data or claims.platform["chip_id"] != SERIAL.decode()
    assert (
        moved or oca_signature <= offset < oca_signature + 144 or pek + 2084 <= offset < pek + 2212
    )


# --- the appraisal: policy bits -------------------------------------------------------------


@pytest.fixture
def trusted_platform(platform: CsvPlatform, monkeypatch: pytest.MonkeyPatch) -> CsvPlatform:
    """Pin the constructed root instead of Hygon's, so the backend verifies its chains."""
    from chronoseal.attest import _csv

    monkeypatch.setattr(_csv, "_pinned_hrk", lambda: platform.hrk)
    monkeypatch.setattr(_csv, "HRK_SHA256", hashlib.sha256(platform.hrk).hexdigest())
    return platform


def _appraise(raw: bytes, platform: CsvPlatform, report_data: bytes, **policy: Any) -> Appraisal:
    evidence = Evidence("csv", Component.ANALYSIS, raw, (platform.hsk_cek,))
    return Appraiser(AppraisalPolicy(**policy)).appraise(
        evidence, component=Component.ANALYSIS, expected_report_data=report_data, now=NOW
    )


def test_a_production_guest_is_accepted_with_its_digest_approved(
    trusted_platform: CsvPlatform, report_data: bytes
) -> None:
    platform = trusted_platform
    raw = csv_report_wrapper(platform.report_v1(report_data))
    claims = verify_csv_report(raw, platform.hsk_cek)
    digest = measurement_digest(claims)
    appraisal = _appraise(
        raw,
        platform,
        report_data,
        measurements=PinnedMeasurements([(Component.ANALYSIS, "csv", digest)]),
        pinned={Component.ANALYSIS: digest},
    )
    assert appraisal.accepted, appraisal.failures
    assert appraisal.failures == ()
    assert appraisal.warnings == ("attest.csv.firmware_not_checked_against_latest",)


def test_a_debug_guest_is_refused(trusted_platform: CsvPlatform, report_data: bytes) -> None:
    platform = trusted_platform
    raw = platform.report_v1(report_data, policy=POLICY_PRODUCTION & ~1)
    appraisal = _appraise(raw, platform, report_data, measurements=None)
    assert "attest.debug.enabled" in appraisal.failures


def test_a_migratable_guest_is_refused_unless_migration_is_allowed(
    trusted_platform: CsvPlatform, report_data: bytes
) -> None:
    platform = trusted_platform
    raw = platform.report_v1(report_data, policy=POLICY_PRODUCTION & ~POLICY_NOSEND)
    refused = _appraise(raw, platform, report_data, measurements=None)
    assert refused.failures == ("attest.migration.enabled",)
    allowed = _appraise(raw, platform, report_data, measurements=None, allow_migration=True)
    assert allowed.accepted and not allowed.failures


def test_sm2_keys_from_libcrypto_sign_what_they_verify() -> None:
    key = Sm2PrivateKey.generate()
    from chronoseal.attest._sm2 import sm2_verify

    signature = key.sign(b"message", user_id=b"HYGON-SSD-PEK")
    assert sm2_verify(key.public_xy, signature, b"message", user_id=b"HYGON-SSD-PEK")
    assert not sm2_verify(key.public_xy, signature, b"message", user_id=b"HYGON-SSD-CEK")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), size=st.sampled_from([832, 2084, 2916, 4096, 4116]))
def test_arbitrary_bytes_are_refused_with_an_id(data: bytes, size: int) -> None:
    blob = (data * (size // max(len(data), 1) + 1))[:size] if data else bytes(size)
    for parse in (
        parse_ca_certificate,
        parse_csv_certificate,
        parse_csv_report,
        verify_csv_chain,
        lambda raw: verify_csv_report(raw, vector_bytes("hygon-csv/hsk_cek.cert")),
    ):
        try:
            parse(blob)
        except AttestationError as exc:
            assert exc.id.startswith("attest.")
