"""Appraisal policy: every check, its exact id, and real SGX/TDX/SNP evidence end to end."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from vectors import milan_auxblob, utc, vector_bytes, vector_hex, vector_json

from chronoseal.attest import (
    Appraisal,
    AppraisalPolicy,
    AppraisalStatus,
    Appraiser,
    Attester,
    Evidence,
    PinnedMeasurements,
    SimulatedAttester,
    VerifiedClaims,
    get_backend,
    measurement_digest,
)
from chronoseal.attest._appraisal import DEFAULT_MAX_EVIDENCE_AGE
from chronoseal.attest._backends import GramineAttester, TsmAttester
from chronoseal.errors import AttestationError, UnsupportedTee
from chronoseal.spec import Component, Tee

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JULY_2025 = utc("2025-07-01")
ANALYSIS = Component.ANALYSIS


def _appraise(
    policy: AppraisalPolicy,
    evidence: Evidence,
    report_data: bytes | None,
    *,
    component: Component = ANALYSIS,
    now: datetime = NOW,
) -> Appraisal:
    return Appraiser(policy).appraise(
        evidence, component=component, expected_report_data=report_data, now=now
    )


@pytest.fixture
def evidence(analysis_attester: SimulatedAttester, report_data: bytes) -> Evidence:
    return analysis_attester.attest_at(report_data, now=NOW)


# --- simulated evidence -------------------------------------------------------------------


def test_allowed_and_pinned_simulated_evidence_is_a_warning(
    simulated_policy: AppraisalPolicy,
    evidence: Evidence,
    report_data: bytes,
    analysis_digest: bytes,
) -> None:
    appraisal = _appraise(simulated_policy, evidence, report_data)
    assert appraisal.status is AppraisalStatus.WARNING
    assert appraisal.failures == ()
    assert appraisal.warnings == ("attest.simulated",)
    assert appraisal.measurement == analysis_digest
    assert appraisal.accepted
    appraisal.require_accepted()


def test_simulated_is_refused_unless_the_consortium_allows_it(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    policy = replace(simulated_policy, allow_simulated=False)
    appraisal = _appraise(policy, evidence, report_data)
    assert appraisal.status is AppraisalStatus.CONTRAINDICATED
    assert appraisal.failures == ("attest.simulated.not_allowed",)
    with pytest.raises(AttestationError) as caught:
        appraisal.require_accepted()
    assert caught.value.id == "attest.simulated.not_allowed"


def test_wrong_component(
    simulated_policy: AppraisalPolicy, report_data: bytes, analysis_digest: bytes
) -> None:
    gateway = SimulatedAttester(Component.GATEWAY).attest_at(report_data, now=NOW)
    appraisal = _appraise(simulated_policy, gateway, report_data)
    assert appraisal.failures == (
        "attest.component.mismatch",
        "attest.measurement.not_approved",
        "attest.measurement.not_pinned",
    )
    assert appraisal.component is Component.GATEWAY


def test_a_gateway_cannot_pass_as_analysis_even_with_the_analysis_code(
    simulated_policy: AppraisalPolicy, report_data: bytes, analysis_digest: bytes
) -> None:
    impostor = SimulatedAttester(Component.GATEWAY, measurement=analysis_digest)
    appraisal = _appraise(simulated_policy, impostor.attest_at(report_data, now=NOW), report_data)
    assert appraisal.failures == ("attest.component.mismatch",)


def test_measurement_not_approved_on_chain(
    simulated_policy: AppraisalPolicy,
    evidence: Evidence,
    report_data: bytes,
    analysis_digest: bytes,
) -> None:
    wrong_tee = PinnedMeasurements([(ANALYSIS, "sgx", analysis_digest)])
    for source in (PinnedMeasurements(), wrong_tee):
        policy = replace(simulated_policy, measurements=source)
        assert _appraise(policy, evidence, report_data).failures == (
            "attest.measurement.not_approved",
        )


def test_measurement_not_pinned_by_the_task(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    for pinned in ({ANALYSIS: bytes(32)}, {Component.GATEWAY: bytes(32)}, {}):
        policy = replace(simulated_policy, pinned=pinned)
        assert _appraise(policy, evidence, report_data).failures == (
            "attest.measurement.not_pinned",
        )
    unpinned = replace(simulated_policy, pinned=None)
    assert _appraise(unpinned, evidence, report_data).failures == ()


def test_another_build_is_not_approved(
    simulated_policy: AppraisalPolicy, report_data: bytes
) -> None:
    rogue = SimulatedAttester(ANALYSIS, measurement=hashlib.sha256(b"rogue").digest())
    appraisal = _appraise(simulated_policy, rogue.attest_at(report_data, now=NOW), report_data)
    assert appraisal.failures == (
        "attest.measurement.not_approved",
        "attest.measurement.not_pinned",
    )


def test_wrong_binding(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    other = bytes(64)
    assert _appraise(simulated_policy, evidence, other).failures == ("attest.binding.mismatch",)
    assert _appraise(simulated_policy, evidence, report_data[:32]).failures == (
        "attest.binding.mismatch",
    )


def test_unchecked_binding_is_only_ever_a_warning(
    simulated_policy: AppraisalPolicy, evidence: Evidence
) -> None:
    appraisal = _appraise(simulated_policy, evidence, None)
    assert appraisal.warnings == ("attest.simulated", "attest.binding.unchecked")
    assert (
        "instance-identity"
        not in appraisal.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"]
    )


def test_stale_evidence(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    assert simulated_policy.max_evidence_age == DEFAULT_MAX_EVIDENCE_AGE == timedelta(minutes=10)
    late = NOW + DEFAULT_MAX_EVIDENCE_AGE + timedelta(seconds=1)
    appraisal = _appraise(simulated_policy, evidence, report_data, now=late)
    assert appraisal.failures == ("attest.evidence.stale",)
    assert appraisal.claims is None
    policy = replace(simulated_policy, max_evidence_age=timedelta(days=2))
    assert _appraise(policy, evidence, report_data, now=late).failures == ()


def test_tampered_signature(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    raw = bytearray(evidence.raw)
    raw[-2] ^= 0x40
    tampered = replace(evidence, raw=bytes(raw))
    assert _appraise(simulated_policy, tampered, report_data).failures == (
        "attest.signature.invalid",
    )


def test_tampered_measurement(
    simulated_policy: AppraisalPolicy,
    evidence: Evidence,
    report_data: bytes,
    analysis_digest: bytes,
) -> None:
    raw = bytearray(evidence.raw)
    at = raw.index(analysis_digest)
    raw[at : at + 32] = hashlib.sha256(b"other code").digest()
    tampered = replace(evidence, raw=bytes(raw))
    assert _appraise(simulated_policy, tampered, report_data).failures == (
        "attest.signature.invalid",
    )


def test_every_failure_is_collected(evidence: Evidence) -> None:
    policy = AppraisalPolicy(measurements=PinnedMeasurements(), pinned={})
    appraisal = _appraise(policy, evidence, bytes(64), component=Component.PREDICTION)
    assert appraisal.failures == (
        "attest.simulated.not_allowed",
        "attest.component.mismatch",
        "attest.measurement.not_approved",
        "attest.measurement.not_pinned",
        "attest.binding.mismatch",
    )
    assert set(appraisal.details) == set(appraisal.failures)
    with pytest.raises(AttestationError) as caught:
        appraisal.require_accepted()
    assert caught.value.id == "attest.simulated.not_allowed"
    assert caught.value.context["failures"] == list(appraisal.failures)


def test_ear_shape(
    simulated_policy: AppraisalPolicy,
    evidence: Evidence,
    report_data: bytes,
    analysis_digest: bytes,
) -> None:
    ear = _appraise(simulated_policy, evidence, report_data).to_ear()
    assert ear["eat_profile"] == "tag:github.com,2023:veraison/ear"
    assert ear["iat"] == int(NOW.timestamp())
    assert ear["ear.verifier-id"]["developer"] == "chronoseal"
    submod = ear["submods"]["analysis"]
    assert submod["ear.status"] == "warning"
    assert submod["chronoseal.tee"] == "simulated"
    assert submod["chronoseal.failures"] == []
    assert submod["chronoseal.warnings"] == ["attest.simulated"]
    assert submod["chronoseal.measurement"] == analysis_digest.hex()
    assert submod["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 32,
    }
    assert submod["ear.veraison.annotated-evidence"]["measurements"] == {
        "code": analysis_digest.hex()
    }


def test_status_tiers() -> None:
    assert [status.tier for status in AppraisalStatus] == [2, 32, 96]


def test_naive_now_is_a_programming_error(
    simulated_policy: AppraisalPolicy, evidence: Evidence, report_data: bytes
) -> None:
    with pytest.raises(ValueError):
        _appraise(simulated_policy, evidence, report_data, now=NOW.replace(tzinfo=None))


# --- registry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tee", "vector"),
    [
        ("csv", "hygon-csv/csv_evidence.json"),
        ("cca", "arm-cca/cca_token.cbor"),
        ("psa", "arm-psa/psa-2_0_0_sign1.bin"),
    ],
)
def test_csv_cca_psa_without_their_collateral_name_what_is_missing(
    tee: Tee,
    vector: str,
    simulated_policy: AppraisalPolicy,
    report_data: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No HSK/CEK in the evidence, no provider, and (CCA/PSA) an empty endorsement store."""
    from chronoseal.attest import _backends

    monkeypatch.setattr(_backends, "ENDORSEMENTS_DIR", tmp_path)
    raw = vector_bytes(vector) if tee != "csv" else b"report"
    evidence = Evidence(tee, ANALYSIS, raw)
    assert _appraise(simulated_policy, evidence, report_data).failures == (
        "attest.collateral.missing",
    )


def test_cca_and_psa_keys_come_from_the_endorsement_store_by_instance_id(
    simulated_policy: AppraisalPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chronoseal.attest import _backends
    from chronoseal.attest._arm import token_instance_id

    monkeypatch.setattr(_backends, "ENDORSEMENTS_DIR", tmp_path)
    token = vector_bytes("arm-cca/cca_token.cbor")
    (tmp_path / "cca").mkdir()
    (tmp_path / "cca" / f"{token_instance_id('cca', token).hex()}.pem").write_bytes(
        vector_bytes("arm-cca/cca_platform.pub")
    )
    claims = get_backend("cca").verify(
        Evidence("cca", ANALYSIS, token), now=utc("2026-01-01"), collateral=None, max_age=None
    )
    assert claims.report_data == b"\xab" * 64


def test_psa_devices_do_not_run_components() -> None:
    with pytest.raises(UnsupportedTee):
        get_backend("psa").attester(ANALYSIS)


def test_registry_names() -> None:
    assert {get_backend(tee).tee for tee in ("sgx", "tdx", "sev-snp", "simulated")} == {
        "sgx",
        "tdx",
        "sev-snp",
        "simulated",
    }
    assert isinstance(get_backend("simulated").attester(ANALYSIS), SimulatedAttester)
    with pytest.raises(AttestationError) as caught:
        get_backend("trustzone")
    assert caught.value.id == "attest.tee.unknown"


# --- real hardware evidence ---------------------------------------------------------------


def _static(collateral: Mapping[str, Any]) -> Any:
    return lambda _evidence: collateral


def _hardware_policy(
    evidence: Evidence, collateral: Mapping[str, Any] | None, now: datetime
) -> tuple[AppraisalPolicy, VerifiedClaims]:
    """Approve and pin exactly what the vector measures, as a consortium would."""
    provider = _static(collateral) if collateral is not None else None
    claims = get_backend(evidence.tee).verify(evidence, now=now, collateral=provider, max_age=None)
    digest = measurement_digest(claims)
    policy = AppraisalPolicy(
        measurements=PinnedMeasurements([(ANALYSIS, evidence.tee, digest)]),
        pinned={ANALYSIS: digest},
        collateral=provider,
    )
    return policy, claims


def test_tdx_up_to_date_and_pinned_is_affirming() -> None:
    evidence = Evidence("tdx", ANALYSIS, vector_bytes("dcap-qvl/tdx_quote"))
    collateral = vector_json("dcap-qvl/tdx_quote_collateral.json")
    policy, claims = _hardware_policy(evidence, collateral, JULY_2025)
    appraisal = _appraise(policy, evidence, claims.report_data, now=JULY_2025)
    assert appraisal.status is AppraisalStatus.AFFIRMING
    assert (appraisal.failures, appraisal.warnings) == ((), ())
    assert appraisal.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 2,
    }
    other_nonce = _appraise(policy, evidence, bytes(64), now=JULY_2025)
    assert other_nonce.failures == ("attest.binding.mismatch",)


def test_tdx_measurement_digest_is_mrtd_and_rtmrs() -> None:
    raw = vector_bytes("dcap-qvl/tdx_quote")
    claims = get_backend("tdx").verify(
        Evidence("tdx", ANALYSIS, raw),
        now=JULY_2025,
        collateral=_static(vector_json("dcap-qvl/tdx_quote_collateral.json")),
        max_age=None,
    )
    registers = raw[184:232] + raw[376:568]  # MRTD, then RTMR0..3 (attestation-formats.md 2)
    expected = hashlib.sha256(b"chronoseal/measurement/tdx/v1\x00" + registers).digest()
    assert measurement_digest(claims) == expected


def test_sgx_needs_hardening_is_a_warning_and_its_digest_is_defined() -> None:
    raw = vector_bytes("dcap-qvl/sgx_quote")
    evidence = Evidence("sgx", ANALYSIS, raw)
    policy, claims = _hardware_policy(
        evidence, vector_json("dcap-qvl/sgx_quote_collateral.json"), JULY_2025
    )
    appraisal = _appraise(policy, evidence, b"Hello, world!".ljust(64, b"\0"), now=JULY_2025)
    assert appraisal.status is AppraisalStatus.WARNING
    assert appraisal.warnings == ("attest.tcb.warning",)
    assert "INTEL-SA-00615" in appraisal.details["attest.tcb.warning"]
    registers = raw[112:144] + raw[176:208] + raw[304:306]  # MRENCLAVE, MRSIGNER, ISVPRODID
    expected = hashlib.sha256(b"chronoseal/measurement/sgx/v1\x00" + registers).digest()
    assert measurement_digest(claims) == expected

    strict = replace(policy, accepted_tcb=frozenset({"UpToDate"}))
    refused = _appraise(strict, evidence, b"Hello, world!".ljust(64, b"\0"), now=JULY_2025)
    assert refused.failures == ("attest.tcb.not_accepted",)
    assert refused.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"]["hardware"] == 96


def test_dcap_outside_the_collateral_window_is_refused() -> None:
    evidence = Evidence("tdx", ANALYSIS, vector_bytes("dcap-qvl/tdx_quote"))
    policy, claims = _hardware_policy(
        evidence, vector_json("dcap-qvl/tdx_quote_collateral.json"), JULY_2025
    )
    appraisal = _appraise(policy, evidence, claims.report_data, now=NOW)
    assert appraisal.failures == ("attest.collateral.expired",)
    assert appraisal.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"] == {
        "hardware": 97
    }


def test_tdx_without_a_matching_tcb_level_is_refused() -> None:
    evidence = Evidence("tdx", ANALYSIS, vector_bytes("dcap-qvl/tdx_quote_outdated"))
    collateral = vector_json("dcap-qvl/tdx_quote_outdated_collateral.json")
    policy = AppraisalPolicy(measurements=PinnedMeasurements(), collateral=_static(collateral))
    appraisal = _appraise(policy, evidence, bytes(64), now=utc("2026-03-01"))
    assert appraisal.failures == ("attest.tcb.no_matching_level",)


def test_dcap_needs_collateral_and_the_right_label() -> None:
    raw = vector_bytes("dcap-qvl/sgx_quote")
    policy = AppraisalPolicy(measurements=PinnedMeasurements())
    assert _appraise(policy, Evidence("sgx", ANALYSIS, raw), bytes(64)).failures == (
        "attest.collateral.missing",
    )
    collateral = _static(vector_json("dcap-qvl/sgx_quote_collateral.json"))
    mislabelled = Evidence("tdx", ANALYSIS, raw)
    appraisal = _appraise(
        replace(policy, collateral=collateral), mislabelled, bytes(64), now=JULY_2025
    )
    assert appraisal.failures == ("attest.evidence.malformed",)


def _snp_evidence(report: bytes, vcek: str, chain: str) -> Evidence:
    return Evidence("sev-snp", ANALYSIS, report, (vector_bytes(vcek), vector_bytes(chain)))


def test_snp_debug_report_is_refused() -> None:
    evidence = _snp_evidence(
        vector_bytes("go-sev-guest/attestation.bin"),
        "go-sev-guest/vcek.testcer",
        "go-sev-guest/milan.testcer",
    )
    policy, claims = _hardware_policy(evidence, None, JULY_2025)
    appraisal = _appraise(policy, evidence, claims.report_data, now=JULY_2025)
    assert appraisal.failures == ("attest.debug.enabled",)
    assert (
        appraisal.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"]["configuration"]
        == 96
    )


SNP_NOT_LATEST = "attest.snp.tcb_not_checked_against_latest"


def test_snp_release_report_is_authentic_but_never_affirming() -> None:
    """Everything passes, yet the TCB was only matched to the VCEK: the verdict says so."""
    report = vector_hex("virtee-sev/report_milan.hex")
    evidence = _snp_evidence(report, "virtee-sev/vcek_milan.der", "virtee-sev/cert_chain_milan")
    policy, claims = _hardware_policy(evidence, None, JULY_2025)
    appraisal = _appraise(policy, evidence, claims.report_data, now=JULY_2025)
    assert appraisal.status is AppraisalStatus.WARNING
    assert appraisal.accepted
    assert (appraisal.failures, appraisal.warnings) == ((), (SNP_NOT_LATEST,))
    assert "AMD's latest Milan TCB" in appraisal.details[SNP_NOT_LATEST]
    submod = appraisal.to_ear()["submods"]["analysis"]
    assert submod["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 32,
    }
    assert submod["ear.veraison.annotated-evidence"]["tcb_status"] == "VcekMatched"
    expected = hashlib.sha256(b"chronoseal/measurement/sev-snp/v1\x00" + report[0x90:0xC0]).digest()
    assert measurement_digest(claims) == expected


def test_a_policy_that_wants_up_to_date_refuses_snp() -> None:
    report = vector_hex("virtee-sev/report_milan.hex")
    evidence = _snp_evidence(report, "virtee-sev/vcek_milan.der", "virtee-sev/cert_chain_milan")
    policy, claims = _hardware_policy(evidence, None, JULY_2025)
    strict = replace(policy, accepted_tcb=frozenset({"UpToDate"}))
    appraisal = _appraise(strict, evidence, claims.report_data, now=JULY_2025)
    # Not "out of date": nobody checked that; the policy wants more than was verified.
    assert appraisal.failures == ("attest.tcb.not_accepted",)
    assert "VcekMatched" in appraisal.details["attest.tcb.not_accepted"]


@pytest.mark.parametrize("offset", [0x180, 0x181, 0x186, 0x187])
def test_snp_reported_tcb_not_the_vceks_is_refused(offset: int) -> None:
    report = bytearray(vector_hex("virtee-sev/report_milan.hex"))
    report[offset] ^= 0x01
    evidence = _snp_evidence(
        bytes(report), "virtee-sev/vcek_milan.der", "virtee-sev/cert_chain_milan"
    )
    policy = AppraisalPolicy(measurements=None)
    appraisal = _appraise(policy, evidence, None, now=JULY_2025)
    assert appraisal.failures == ("attest.snp.tcb_mismatch",)
    assert appraisal.claims is None


def test_snp_certificates_may_come_from_the_provider() -> None:
    report = vector_hex("virtee-sev/report_milan.hex")
    bare = Evidence("sev-snp", ANALYSIS, report)
    fetched = {
        "vcek": vector_bytes("virtee-sev/vcek_milan.der"),
        "chain": vector_bytes("virtee-sev/cert_chain_milan"),
    }
    policy = AppraisalPolicy(measurements=PinnedMeasurements())
    assert _appraise(policy, bare, bytes(64), now=JULY_2025).failures == (
        "attest.collateral.missing",
    )
    wrong_shape = replace(policy, collateral=_static({"vcek": "text"}))
    assert _appraise(wrong_shape, bare, bytes(64), now=JULY_2025).failures == (
        "attest.collateral.invalid",
    )
    provided = replace(policy, collateral=_static(fetched))
    assert _appraise(provided, bare, bytes(64), now=JULY_2025).failures == (
        "attest.measurement.not_approved",
        "attest.binding.mismatch",
    )
    one_cert = replace(bare, certificates=(fetched["vcek"],))
    assert _appraise(provided, one_cert, bytes(64), now=JULY_2025).failures == (
        "attest.evidence.malformed",
    )


def _tdx_evidence() -> tuple[Evidence, AppraisalPolicy, VerifiedClaims]:
    evidence = Evidence("tdx", ANALYSIS, vector_bytes("dcap-qvl/tdx_quote"))
    policy, claims = _hardware_policy(
        evidence, vector_json("dcap-qvl/tdx_quote_collateral.json"), JULY_2025
    )
    unpinned = replace(policy, measurements=None, pinned=None)
    return evidence, unpinned, claims


def test_one_register_is_compared_and_reported_as_partial() -> None:
    evidence, policy, claims = _tdx_evidence()
    registers = {"mrtd": claims.measurements["mrtd"]}
    appraisal = _appraise(
        replace(policy, registers=registers), evidence, claims.report_data, now=JULY_2025
    )
    assert appraisal.failures == ()
    assert appraisal.warnings == ("attest.measurement.unchecked", "attest.measurement.partial")
    assert appraisal.compared_registers == ("mrtd",)
    assert (
        "rtmr0, rtmr1, rtmr2, rtmr3 not compared" in appraisal.details["attest.measurement.partial"]
    )
    submod = appraisal.to_ear()["submods"]["analysis"]
    assert submod["chronoseal.compared-registers"] == ["mrtd"]
    assert "executables" not in submod["ear.trustworthiness-vector"]


def test_a_differing_register_is_refused_and_named() -> None:
    evidence, policy, claims = _tdx_evidence()
    registers = {"mrtd": claims.measurements["mrtd"], "rtmr3": bytes.fromhex("11" * 48)}
    appraisal = _appraise(
        replace(policy, registers=registers), evidence, claims.report_data, now=JULY_2025
    )
    assert appraisal.failures == ("attest.measurement.register_mismatch",)
    detail = appraisal.details["attest.measurement.register_mismatch"]
    assert detail.startswith("rtmr3 is ") and "expected " + "11" * 48 in detail
    assert appraisal.compared_registers == ("mrtd", "rtmr3")
    vector = appraisal.to_ear()["submods"]["analysis"]["ear.trustworthiness-vector"]
    assert vector["executables"] == 96


def test_every_register_compared_is_no_partial_check() -> None:
    evidence, policy, claims = _tdx_evidence()
    names = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
    registers = {name: claims.measurements[name] for name in names}
    appraisal = _appraise(
        replace(policy, registers=registers), evidence, claims.report_data, now=JULY_2025
    )
    assert appraisal.warnings == ("attest.measurement.unchecked",)
    assert appraisal.compared_registers == names


def test_sgx_isvprodid_is_compared_as_a_number() -> None:
    evidence = Evidence("sgx", ANALYSIS, vector_bytes("dcap-qvl/sgx_quote"))
    collateral = _static(vector_json("dcap-qvl/sgx_quote_collateral.json"))
    policy = AppraisalPolicy(measurements=None, collateral=collateral)
    binding = b"Hello, world!".ljust(64, b"\0")
    right = _appraise(replace(policy, registers={"isvprodid": 0}), evidence, binding, now=JULY_2025)
    assert "attest.measurement.partial" in right.warnings
    wrong = _appraise(replace(policy, registers={"isvprodid": 7}), evidence, binding, now=JULY_2025)
    assert wrong.failures == ("attest.measurement.register_mismatch",)
    assert "isvprodid is 0, expected 7" in wrong.details["attest.measurement.register_mismatch"]


def test_a_register_the_evidence_lacks_is_missing_not_matched() -> None:
    evidence, policy, claims = _tdx_evidence()
    appraisal = _appraise(
        replace(policy, registers={"measurement": bytes(48)}),
        evidence,
        claims.report_data,
        now=JULY_2025,
    )
    assert appraisal.failures == ("attest.measurement.missing",)
    assert appraisal.compared_registers == ()


def test_missing_registers_are_reported() -> None:
    from types import MappingProxyType

    claims = VerifiedClaims(
        tee="tdx",
        measurements=MappingProxyType({"mrtd": bytes(48)}),
        report_data=bytes(64),
        debug=False,
        tcb_status="UpToDate",
    )
    with pytest.raises(AttestationError) as caught:
        measurement_digest(claims)
    assert caught.value.id == "attest.measurement.missing"
    with pytest.raises(AttestationError) as caught:
        measurement_digest(replace(claims, tee="sgx"))
    assert caught.value.id == "attest.measurement.missing"


# --- attesters from the registry, on kernel-like fakes ----------------------------------


class _FakeDevice:
    """configfs-tsm or Gramine's /dev/attestation on a real directory: a write produces ``blob``."""

    def __init__(self, root: Path, provider: str, blob: bytes, auxblob: bytes = b"") -> None:
        root.mkdir(parents=True)
        (root / "attestation_type").write_text("dcap\n")
        self.root, self.provider, self.blob, self.auxblob = root, provider, blob, auxblob

    def mkdir(self, path: Path) -> None:
        path.mkdir()
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")

    def rmdir(self, path: Path) -> None:
        shutil.rmtree(path)

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        generation = path.parent / "generation"
        if generation.exists():
            generation.write_text(f"{int(generation.read_text()) + 1}\n")
        (path.parent / "outblob").write_bytes(self.blob)
        (path.parent / "quote").write_bytes(self.blob)
        (path.parent / "auxblob").write_bytes(self.auxblob)


def _generate_and_appraise(
    attester: Attester, report_data: bytes, collateral: Mapping[str, Any] | None
) -> tuple[Evidence, Appraisal]:
    """Generate through the attester, then appraise as a peer would, pinning what it measures."""
    evidence = attester.attest(report_data)
    policy, _ = _hardware_policy(evidence, collateral, JULY_2025)
    return evidence, _appraise(policy, evidence, report_data, now=JULY_2025)


def test_snp_attester_carries_the_hosts_certificates(tmp_path: Path) -> None:
    report = vector_hex("virtee-sev/report_milan.hex")
    device = _FakeDevice(tmp_path / "tsm", "sev_guest", report, milan_auxblob())
    attester = TsmAttester("sev-snp", ANALYSIS, root=device.root, fs=device)
    evidence, appraisal = _generate_and_appraise(attester, report[0x50:0x90], None)
    assert evidence.raw == report
    assert evidence.certificates[0] == vector_bytes("virtee-sev/vcek_milan.der")
    assert evidence.certificates[1].count(b"-----BEGIN CERTIFICATE-----") == 2
    assert appraisal.status is AppraisalStatus.WARNING
    assert appraisal.warnings == (SNP_NOT_LATEST,)


def test_snp_attester_without_host_certificates(tmp_path: Path) -> None:
    report = vector_hex("virtee-sev/report_milan.hex")
    device = _FakeDevice(tmp_path / "tsm", "sev_guest", report)
    evidence = TsmAttester("sev-snp", ANALYSIS, root=device.root, fs=device).attest(
        report[0x50:0x90]
    )
    assert evidence.certificates == ()


def test_tdx_attester(tmp_path: Path) -> None:
    quote = vector_bytes("dcap-qvl/tdx_quote")
    device = _FakeDevice(tmp_path / "tsm", "tdx_guest", quote)
    attester = TsmAttester("tdx", Component.PREDICTION, root=device.root, fs=device)
    evidence = attester.attest(quote[568:632])
    assert (evidence.tee, evidence.component) == ("tdx", Component.PREDICTION)
    collateral = vector_json("dcap-qvl/tdx_quote_collateral.json")
    policy, claims = _hardware_policy(evidence, collateral, JULY_2025)
    appraisal = _appraise(
        policy, evidence, quote[568:632], component=Component.PREDICTION, now=JULY_2025
    )
    assert appraisal.failures == (
        "attest.measurement.not_approved",
        "attest.measurement.not_pinned",
    )
    approved = AppraisalPolicy(
        measurements=PinnedMeasurements(
            [(Component.PREDICTION, "tdx", measurement_digest(claims))]
        ),
        collateral=_static(collateral),
    )
    assert (
        _appraise(
            approved, evidence, quote[568:632], component=Component.PREDICTION, now=JULY_2025
        ).status
        is AppraisalStatus.AFFIRMING
    )


def test_tsm_attester_refuses_the_other_provider(tmp_path: Path) -> None:
    report = vector_hex("virtee-sev/report_milan.hex")
    device = _FakeDevice(tmp_path / "tsm", "sev_guest", report)
    with pytest.raises(AttestationError) as caught:
        TsmAttester("tdx", ANALYSIS, root=device.root, fs=device).attest(report[0x50:0x90])
    assert caught.value.id == "attest.configfs.unknown_provider"
    with pytest.raises(UnsupportedTee):
        TsmAttester("sgx", ANALYSIS)


def test_gramine_attester(tmp_path: Path) -> None:
    quote = vector_bytes("dcap-qvl/sgx_quote")
    device = _FakeDevice(tmp_path / "attestation", "", quote)
    attester = GramineAttester(Component.GATEWAY, root=device.root, fs=device)
    evidence = attester.attest(b"Hello, world!".ljust(64, b"\0"))
    assert (evidence.tee, evidence.component, evidence.raw) == ("sgx", Component.GATEWAY, quote)


def test_registry_attesters() -> None:
    sgx = get_backend("sgx").attester(ANALYSIS)
    tdx = get_backend("tdx").attester(ANALYSIS)
    snp = get_backend("sev-snp").attester(ANALYSIS)
    assert isinstance(sgx, GramineAttester) and sgx.tee == "sgx"
    assert isinstance(tdx, TsmAttester) and tdx.tee == "tdx"
    assert isinstance(snp, TsmAttester) and snp.tee == "sev-snp"
    with pytest.raises(AttestationError) as caught:
        tdx.attest(bytes(64))
    assert caught.value.id == "attest.configfs.unavailable"
