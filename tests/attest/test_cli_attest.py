"""``chronoseal attest verify`` and ``chronoseal measure`` on real vectors, through typer."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result
from vectors import vector_bytes, vector_hex, vector_path

from chronoseal.attest import SimulatedAttester, code_measurement
from chronoseal.cli._attest import attest_app, measure
from chronoseal.spec import Component

TDX_QUOTE = "dcap-qvl/tdx_quote"
TDX_COLLATERAL = "dcap-qvl/tdx_quote_collateral.json"
JULY_2025 = "2025-07-01T00:00:00Z"
TDX_REGISTERS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A stand-alone app mounting the sub-app the way the main CLI does."""
    root = typer.Typer()
    root.add_typer(attest_app, name="attest")
    root.command("measure")(measure)
    return root


def _run(app: typer.Typer, *args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _tdx_digest() -> bytes:
    raw = vector_bytes(TDX_QUOTE)
    return hashlib.sha256(
        b"chronoseal/measurement/tdx/v1\x00" + raw[184:232] + raw[376:568]
    ).digest()


def _tdx(app: typer.Typer, *extra: str) -> Result:
    return _run(
        app,
        "attest",
        "verify",
        vector_path(TDX_QUOTE),
        "--tee",
        "tdx",
        "--collateral",
        vector_path(TDX_COLLATERAL),
        "--now",
        JULY_2025,
        *extra,
    )


def _ear(result: Result) -> dict[str, Any]:
    loaded = json.loads(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


def test_tdx_with_measurement_and_binding_is_affirming(app: typer.Typer) -> None:
    report_data = vector_bytes(TDX_QUOTE)[568:632].hex()
    result = _tdx(app, "--measurement", _tdx_digest().hex(), "--report-data", report_data)
    assert result.exit_code == 0, result.output
    assert "affirming" in result.stdout
    assert "UpToDate" in result.stdout


def test_json_prints_the_ear(app: typer.Typer) -> None:
    result = _tdx(app, "--measurement", _tdx_digest().hex(), "--json")
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    assert submod["ear.status"] == "warning"
    assert submod["chronoseal.warnings"] == ["attest.binding.unchecked"]
    assert submod["chronoseal.measurement"] == _tdx_digest().hex()


def test_without_measurement_the_approval_is_reported_unchecked(app: typer.Typer) -> None:
    result = _tdx(app, "--json")
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    assert submod["chronoseal.warnings"] == [
        "attest.measurement.unchecked",
        "attest.binding.unchecked",
    ]
    assert "executables" not in submod["ear.trustworthiness-vector"]


def test_wrong_measurement_exits_1_with_ids(app: typer.Typer) -> None:
    result = _tdx(app, "--measurement", "00" * 32)
    assert result.exit_code == 1
    assert "attest.measurement.not_approved attest.measurement.not_pinned" in result.stderr


def test_wrong_binding_exits_1(app: typer.Typer) -> None:
    result = _tdx(app, "--report-data", "11" * 64)
    assert result.exit_code == 1
    assert "attest.binding.mismatch" in result.stderr


def test_expired_collateral_exits_1(app: typer.Typer) -> None:
    result = _tdx(app, "--now", "2026-03-01")
    assert result.exit_code == 1
    assert "attest.collateral.expired" in result.stderr


def test_snp_debug_report_exits_1(app: typer.Typer) -> None:
    result = _run(
        app,
        "attest",
        "verify",
        vector_path("go-sev-guest/attestation.bin"),
        "--tee",
        "sev-snp",
        "--collateral",
        vector_path("go-sev-guest/vcek.testcer"),
        "--collateral",
        vector_path("go-sev-guest/milan.testcer"),
        "--now",
        JULY_2025,
    )
    assert result.exit_code == 1
    assert "attest.debug.enabled" in result.stderr


def test_snp_hex_report_with_collateral_in_any_order(app: typer.Typer) -> None:
    result = _run(
        app,
        "attest",
        "verify",
        vector_path("virtee-sev/report_milan.hex"),
        "--tee",
        "sev-snp",
        "--collateral",
        vector_path("virtee-sev/cert_chain_milan"),
        "--collateral",
        vector_path("virtee-sev/vcek_milan.der"),
        "--now",
        JULY_2025,
        "--json",
    )
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    assert submod["ear.veraison.annotated-evidence"]["platform"]["product"] == "Milan"
    assert submod["chronoseal.failures"] == []


@pytest.mark.parametrize(
    "extra",
    [
        ("--now", "yesterday"),
        ("--measurement", "zz"),
        ("--measurement", "00" * 31),
        ("--report-data", "00" * 32),
        ("--tee", "trustzone"),
    ],
    ids=["now", "measurement-hex", "measurement-size", "report-data-size", "tee"],
)
def test_usage_errors_exit_2(app: typer.Typer, extra: tuple[str, str]) -> None:
    assert _tdx(app, *extra).exit_code == 2


def test_dcap_needs_one_collateral_file(app: typer.Typer) -> None:
    result = _run(app, "attest", "verify", vector_path(TDX_QUOTE), "--tee", "tdx")
    assert result.exit_code == 2
    assert "collateral" in result.output


def test_snp_collateral_must_be_vcek_and_chain(app: typer.Typer) -> None:
    result = _run(
        app,
        "attest",
        "verify",
        vector_path("virtee-sev/report_milan.hex"),
        "--tee",
        "sev-snp",
        "--collateral",
        vector_path("virtee-sev/vcek_milan.der"),
    )
    assert result.exit_code == 2


def _simulated_file(tmp_path: Path, moment: datetime) -> Path:
    evidence = SimulatedAttester(Component.GATEWAY).attest_at(bytes(64), now=moment)
    path = tmp_path / "gateway.evidence"
    path.write_bytes(evidence.to_bytes())
    return path


def test_simulated_envelope_verifies_as_a_warning(app: typer.Typer, tmp_path: Path) -> None:
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    path = _simulated_file(tmp_path, moment)
    digest = code_measurement(Component.GATEWAY).hex()
    result = _run(
        app,
        "attest",
        "verify",
        path,
        "--tee",
        "simulated",
        "--now",
        moment.isoformat(),
        "--measurement",
        digest,
        "--report-data",
        "00" * 64,
        "--json",
    )
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["gateway"]
    assert submod["ear.status"] == "warning"
    assert submod["chronoseal.warnings"] == ["attest.simulated"]

    wrong_component = _run(
        app,
        "attest",
        "verify",
        path,
        "--tee",
        "simulated",
        "--now",
        moment.isoformat(),
        "--component",
        "analysis",
    )
    assert wrong_component.exit_code == 1
    assert "attest.component.mismatch" in wrong_component.stderr


def test_envelope_problems(app: typer.Typer, tmp_path: Path) -> None:
    path = _simulated_file(tmp_path, datetime(2026, 3, 1, tzinfo=UTC))
    assert _run(app, "attest", "verify", path, "--tee", "sgx").exit_code == 2
    path.write_bytes(path.read_bytes()[:-1])
    truncated = _run(app, "attest", "verify", path, "--tee", "simulated")
    assert truncated.exit_code == 1
    assert "attest.evidence.malformed" in truncated.stderr
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x01\x02")
    assert _run(app, "attest", "verify", raw, "--tee", "simulated").exit_code == 2


def test_measure_simulated_prints_the_code_hash(app: typer.Typer) -> None:
    result = _run(app, "measure", "--component", "gateway")
    assert result.exit_code == 0
    assert result.stdout.strip() == code_measurement(Component.GATEWAY).hex()
    as_json = json.loads(_run(app, "measure", "--component", "analysis", "--json").stdout)
    assert as_json["digest"] == code_measurement(Component.ANALYSIS).hex()
    assert as_json["tee"] == "simulated"


def test_measure_hardware_explains_and_combines(app: typer.Typer) -> None:
    guidance = _run(app, "measure", "--component", "analysis", "--tee", "sgx")
    assert guidance.exit_code == 0
    assert guidance.stdout == ""
    assert "gramine-sgx-sigstruct-view" in guidance.stderr

    raw = vector_bytes("dcap-qvl/sgx_quote")
    registers = [
        f"mrenclave={raw[112:144].hex()}",
        f"mrsigner={raw[176:208].hex()}",
        "isvprodid=0",
    ]
    args = ["measure", "--component", "analysis", "--tee", "sgx"]
    for item in registers:
        args += ["--register", item]
    combined = _run(app, *args)
    assert combined.exit_code == 0, combined.output
    expected = hashlib.sha256(
        b"chronoseal/measurement/sgx/v1\x00" + raw[112:144] + raw[176:208] + bytes(2)
    ).hexdigest()
    assert combined.stdout.strip() == expected

    tdx = json.loads(
        _run(app, "measure", "--component", "gateway", "--tee", "tdx", "--json").stdout
    )
    assert tdx["digest"] is None
    assert tdx["registers"] == ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]


@pytest.mark.parametrize(
    "args",
    [
        ("--tee", "sgx", "--register", "mrtd=00"),
        ("--tee", "sgx", "--register", "mrenclave"),
        ("--tee", "sgx", "--register", "isvprodid=x"),
        ("--tee", "sev-snp", "--register", "measurement=00"),
        ("--tee", "simulated", "--register", "code=00"),
        ("--tee", "trustzone"),
        ("--tee", "csv", "--register", "measure=00"),
    ],
    ids=[
        "foreign-register",
        "no-value",
        "bad-int",
        "short-register",
        "simulated",
        "unknown-tee",
        "csv-short-register",
    ],
)
def test_measure_usage_errors(app: typer.Typer, args: tuple[str, ...]) -> None:
    assert _run(app, "measure", "--component", "gateway", *args).exit_code == 2


def test_hex_evidence_may_carry_a_0x_prefix(app: typer.Typer, tmp_path: Path) -> None:
    hexed = tmp_path / "quote.hex"
    hexed.write_text("0x" + vector_bytes(TDX_QUOTE).hex() + "\n")
    result = _run(
        app,
        "attest",
        "verify",
        hexed,
        "--tee",
        "tdx",
        "--collateral",
        vector_path(TDX_COLLATERAL),
        "--now",
        JULY_2025,
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("tail", [b"\x01" * 16, b"\x00" * (33 << 20)])
def test_a_quote_with_a_tail_or_an_oversized_file_is_refused(
    app: typer.Typer, tmp_path: Path, tail: bytes
) -> None:
    padded = tmp_path / "quote.bin"
    padded.write_bytes(vector_bytes(TDX_QUOTE) + tail)
    result = _run(
        app,
        "attest",
        "verify",
        padded,
        "--tee",
        "tdx",
        "--collateral",
        vector_path(TDX_COLLATERAL),
        "--now",
        JULY_2025,
    )
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert "attest.quote.malformed" in result.output or "larger than" in result.output


# --- --measurement in the vendors' own form ---------------------------------------------------

SNP_REPORT = "virtee-sev/report_milan.hex"


def _snp(app: typer.Typer, *extra: str) -> Result:
    return _run(
        app,
        "attest",
        "verify",
        vector_path(SNP_REPORT),
        "--tee",
        "sev-snp",
        "--collateral",
        vector_path("virtee-sev/vcek_milan.der"),
        "--collateral",
        vector_path("virtee-sev/cert_chain_milan"),
        "--now",
        JULY_2025,
        *extra,
    )


def _snp_measurement() -> bytes:
    return vector_hex(SNP_REPORT)[0x90:0xC0]


def _tdx_register(name: str) -> str:
    raw = vector_bytes(TDX_QUOTE)
    offsets = {"mrtd": 184, "rtmr0": 376, "rtmr1": 424, "rtmr2": 472, "rtmr3": 520}
    return f"{name}:{raw[offsets[name] : offsets[name] + 48].hex()}"


@pytest.mark.parametrize("form", ["measurement:{}", "{}", "MEASUREMENT=0x{}"])
def test_snp_measurement_as_sev_snp_measure_prints_it(app: typer.Typer, form: str) -> None:
    measurement = _snp_measurement()
    result = _snp(app, "--measurement", form.format(measurement.hex()), "--json")
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    digest = hashlib.sha256(b"chronoseal/measurement/sev-snp/v1\x00" + measurement).hexdigest()
    assert submod["chronoseal.measurement"] == digest
    assert submod["chronoseal.failures"] == []
    assert submod["ear.trustworthiness-vector"]["executables"] == 2  # a full digest match
    assert "chronoseal.compared-registers" not in submod


def test_a_wrong_snp_measurement_is_refused(app: typer.Typer) -> None:
    wrong = bytearray(_snp_measurement())
    wrong[0] ^= 1
    result = _snp(app, "--measurement", f"measurement:{wrong.hex()}")
    assert result.exit_code == 1
    assert "attest.measurement.not_approved attest.measurement.not_pinned" in result.stderr


def test_snp_says_its_tcb_was_not_checked_against_amds_latest(app: typer.Typer) -> None:
    report_data = vector_hex(SNP_REPORT)[0x50:0x90].hex()
    measurement = _snp_measurement().hex()
    text = _snp(app, "--measurement", measurement, "--report-data", report_data)
    assert text.exit_code == 0, text.output
    assert "VcekMatched" in text.stdout
    assert "UpToDate" not in text.stdout
    assert "verdict: warning" in text.stdout
    assert "attest.snp.tcb_not_checked_against_latest" in text.stdout
    as_json = _snp(app, "--measurement", measurement, "--report-data", report_data, "--json")
    submod = _ear(as_json)["submods"]["analysis"]
    assert submod["ear.status"] == "warning"  # everything else checked, and still not affirming
    assert submod["chronoseal.warnings"] == ["attest.snp.tcb_not_checked_against_latest"]
    assert submod["ear.trustworthiness-vector"]["hardware"] == 32
    claims = submod["ear.veraison.annotated-evidence"]
    assert claims["tcb_status"] == "VcekMatched"
    assert list(claims["warnings"]) == ["attest.snp.tcb_not_checked_against_latest"]


def test_snp_with_a_mutated_reported_tcb_is_refused(app: typer.Typer, tmp_path: Path) -> None:
    report = bytearray(vector_hex(SNP_REPORT))
    report[0x180] ^= 1  # REPORTED_TCB bootloader SPL
    mutated = tmp_path / "report.bin"
    mutated.write_bytes(bytes(report))
    result = _run(
        app,
        "attest",
        "verify",
        mutated,
        "--tee",
        "sev-snp",
        "--collateral",
        vector_path("virtee-sev/vcek_milan.der"),
        "--collateral",
        vector_path("virtee-sev/cert_chain_milan"),
        "--now",
        JULY_2025,
    )
    assert result.exit_code == 1
    assert "attest.snp.tcb_mismatch" in result.stderr


def test_tdx_mrtd_alone_is_reported_as_a_partial_check(app: typer.Typer) -> None:
    report_data = vector_bytes(TDX_QUOTE)[568:632].hex()
    text = _tdx(app, "--measurement", _tdx_register("mrtd"), "--report-data", report_data)
    assert text.exit_code == 0, text.output
    assert "verdict: warning" in text.stdout
    assert "affirming" not in text.stdout
    assert "attest.measurement.partial" in text.stdout
    assert "rtmr0, rtmr1, rtmr2, rtmr3 not compared" in " ".join(text.stdout.split())
    result = _tdx(app, "--measurement", _tdx_register("mrtd"), "--json")
    submod = _ear(result)["submods"]["analysis"]
    assert submod["chronoseal.compared-registers"] == ["mrtd"]
    assert "attest.measurement.partial" in submod["chronoseal.warnings"]
    assert "executables" not in submod["ear.trustworthiness-vector"]  # not assessed in full


def test_a_wrong_mrtd_is_refused(app: typer.Typer) -> None:
    result = _tdx(app, "--measurement", "mrtd:" + "00" * 48, "--json")
    assert result.exit_code == 1
    submod = _ear(result)["submods"]["analysis"]
    assert submod["chronoseal.failures"] == ["attest.measurement.register_mismatch"]
    assert submod["ear.trustworthiness-vector"]["executables"] == 96


def test_all_tdx_registers_are_a_full_match(app: typer.Typer) -> None:
    report_data = vector_bytes(TDX_QUOTE)[568:632].hex()
    registers = [("--measurement", _tdx_register(name)) for name in reversed(TDX_REGISTERS)]
    args = [item for pair in registers for item in pair]
    result = _tdx(app, *args, "--report-data", report_data, "--json")
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    assert submod["ear.status"] == "affirming"
    assert submod["chronoseal.measurement"] == _tdx_digest().hex()


def test_sgx_mrenclave_needs_its_prefix(app: typer.Typer) -> None:
    raw = vector_bytes("dcap-qvl/sgx_quote")
    common = (
        "attest",
        "verify",
        vector_path("dcap-qvl/sgx_quote"),
        "--tee",
        "sgx",
        "--collateral",
        vector_path("dcap-qvl/sgx_quote_collateral.json"),
        "--now",
        JULY_2025,
    )
    explicit = _run(app, *common, "--measurement", f"mrenclave:{raw[112:144].hex()}", "--json")
    assert explicit.exit_code == 0, explicit.output
    submod = _ear(explicit)["submods"]["analysis"]
    assert submod["chronoseal.compared-registers"] == ["mrenclave"]
    assert "mrsigner, isvprodid not compared" in " ".join(
        _run(app, *common, "--measurement", f"mrenclave:{raw[112:144].hex()}").stdout.split()
    )
    bare = _run(app, *common, "--measurement", raw[112:144].hex())  # a bare value is a digest
    assert bare.exit_code == 1
    assert "attest.measurement.not_pinned" in bare.stderr


@pytest.mark.parametrize(
    ("tee_args", "value", "failure_id"),
    [
        ((), "00" * 48, "config.measurement.ambiguous"),
        ((), "00" * 31, "config.measurement.wrong_length"),
        ((), "zz", "config.measurement.not_hex"),
        ((), "mrtd:" + "00" * 32, "config.measurement.wrong_length"),
        ((), "measurement:" + "00" * 48, "config.measurement.not_in_tee"),
        ((), "mrenclave:" + "00" * 32, "config.measurement.not_in_tee"),
        ((), "sha384:" + "00" * 48, "config.measurement.unknown_form"),
        (("sev-snp",), "mrtd:" + "00" * 48, "config.measurement.not_in_tee"),
        (("sev-snp",), "00" * 47, "config.measurement.wrong_length"),
    ],
)
def test_measurement_usage_errors_carry_an_id(
    app: typer.Typer, tee_args: tuple[str, ...], value: str, failure_id: str
) -> None:
    result = _snp(app, "--measurement", value) if tee_args else _tdx(app, "--measurement", value)
    assert result.exit_code == 2, result.output
    assert f"[{failure_id}]" in result.stderr
    assert "Traceback" not in result.output


def test_repeated_register_is_a_conflict(app: typer.Typer) -> None:
    result = _tdx(app, "--measurement", _tdx_register("mrtd"), "--measurement", "mrtd=" + "11" * 48)
    assert result.exit_code == 2
    assert "[config.measurement.conflict]" in result.stderr


def test_measure_register_errors_carry_an_id(app: typer.Typer) -> None:
    digest = _run(
        app, "measure", "--component", "analysis", "--tee", "tdx", "--register", "00" * 32
    )
    assert digest.exit_code == 2
    assert "[config.measurement.unknown_form]" in digest.stderr
    partial = _run(
        app,
        "measure",
        "--component",
        "analysis",
        "--tee",
        "tdx",
        "--register",
        _tdx_register("mrtd"),
    )
    assert partial.exit_code == 2
    assert "[config.measurement.incomplete]" in partial.stderr
    assert "rtmr0" in partial.stderr


# --- Hygon CSV, Arm CCA, PSA ----------------------------------------------------------------


def test_csv_chain_only_accepts_the_real_hsk_cek(app: typer.Typer) -> None:
    result = _run(
        app,
        "attest",
        "verify",
        vector_path("hygon-csv/hsk_cek.cert"),
        "--tee",
        "csv",
        "--chain-only",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["accepted"] is True
    assert summary["hsk_key_id"] == "6e1009311eb0e448f7320da5ce2d4d47"


def test_csv_chain_only_refuses_a_one_byte_tamper(app: typer.Typer, tmp_path: Path) -> None:
    tampered = bytearray(vector_bytes("hygon-csv/hsk_cek.cert"))
    tampered[832 + 30] ^= 1
    path = tmp_path / "hsk_cek.cert"
    path.write_bytes(bytes(tampered))
    result = _run(app, "attest", "verify", path, "--tee", "csv", "--chain-only")
    assert result.exit_code == 1
    assert "attest.chain.invalid" in result.stderr


def test_chain_only_is_for_csv(app: typer.Typer) -> None:
    result = _run(app, "attest", "verify", vector_path(TDX_QUOTE), "--tee", "tdx", "--chain-only")
    assert result.exit_code == 2


def test_csv_evidence_json_with_another_chips_cek_exits_1(app: typer.Typer) -> None:
    """Trustee's real report against csv-rs's real (other chip's) HSK and CEK, as two files."""
    result = _run(
        app,
        "attest",
        "verify",
        vector_path("hygon-csv/csv_evidence.json"),
        "--tee",
        "csv",
        "--collateral",
        vector_path("hygon-csv/cek.cert"),
        "--collateral",
        vector_path("hygon-csv/hsk.cert"),
        "--json",
    )
    assert result.exit_code == 1
    assert _ear(result)["submods"]["analysis"]["chronoseal.failures"] == ["attest.csv.cek_mismatch"]


def test_csv_without_hsk_cek_exits_1_naming_the_missing_collateral(app: typer.Typer) -> None:
    result = _run(
        app, "attest", "verify", vector_path("hygon-csv/csv_evidence.json"), "--tee", "csv"
    )
    assert result.exit_code == 1
    assert "attest.collateral.missing" in result.stderr


def _cca(app: typer.Typer, token: Path, key: str, *extra: str) -> Result:
    return _run(
        app, "attest", "verify", token, "--tee", "cca", "--collateral", vector_path(key), *extra
    )


def test_the_real_cca_token_is_accepted_with_its_challenge_bound(app: typer.Typer) -> None:
    result = _cca(
        app,
        vector_path("arm-cca/cca_token.cbor"),
        "arm-cca/cca_platform.pub",
        "--report-data",
        "ab" * 64,
        "--json",
    )
    assert result.exit_code == 0, result.output
    submod = _ear(result)["submods"]["analysis"]
    assert submod["chronoseal.failures"] == []
    assert submod["ear.trustworthiness-vector"]["instance-identity"] == 2


def test_a_cca_token_whose_nonce_is_not_the_rak_hash_exits_1(
    app: typer.Typer, tmp_path: Path
) -> None:
    from test_arm import _cpak_private, _parts, _payload, sign1

    from chronoseal.attest._arm import cca_token

    platform, realm = _parts()
    claims = _payload(platform)
    claims[10] = bytes(32)
    path = tmp_path / "forged.cbor"
    path.write_bytes(cca_token(sign1(claims, _cpak_private(), -35), realm))
    result = _cca(app, path, "arm-cca/cca_platform.pub")
    assert result.exit_code == 1
    assert "attest.cca.rak_not_bound" in result.stderr


def test_the_real_psa_token_is_accepted_and_refused_under_another_key(app: typer.Typer) -> None:
    token = vector_path("arm-psa/psa-2_0_0_sign1.bin")
    accepted = _run(
        app,
        "attest", "verify", token, "--tee", "psa",
        "--collateral", vector_path("arm-psa/public.pem"),
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    assert "PsaTokenVerified" in accepted.stdout
    refused = _run(
        app,
        "attest", "verify", token, "--tee", "psa",
        "--collateral", vector_path("arm-cca/cca_platform.pub"),
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "attest.signature.invalid" in refused.stderr


def test_cca_needs_its_key_as_collateral(app: typer.Typer) -> None:
    result = _run(app, "attest", "verify", vector_path("arm-cca/cca_token.cbor"), "--tee", "cca")
    assert result.exit_code == 2


def test_measure_csv_digest_from_the_launch_measurement(app: typer.Typer) -> None:
    measure_hex = "ae2a2cf1f41a485fa37bf9ae92f678783c59fbc79de7b5d237743d58f5538034"
    result = _run(
        app, "measure", "--component", "analysis", "--tee", "csv",
        "--register", f"measure={measure_hex}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = hashlib.sha256(
        b"chronoseal/measurement/csv/v1\x00" + bytes.fromhex(measure_hex)
    ).hexdigest()
    assert result.stdout.strip() == expected
