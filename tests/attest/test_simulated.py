"""The simulated TEE: its code measurement, its signed statements and their verification."""

from __future__ import annotations

import shutil
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from packaging.requirements import Requirement

from chronoseal.attest import Evidence, SimulatedAttester, _measure, code_measurement
from chronoseal.attest._simulated import SimulatedStatement, verify_simulated
from chronoseal.errors import AttestationError
from chronoseal.spec import Component

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=5)


def spki_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify(evidence: Evidence, now: datetime = NOW) -> None:
    verify_simulated(evidence, now=now, max_age=MAX_AGE)


def _refusal(evidence: Evidence, now: datetime = NOW) -> str:
    with pytest.raises(AttestationError) as caught:
        _verify(evidence, now)
    return caught.value.id


# --- code measurement -------------------------------------------------------------------


def test_code_measurement_is_stable_and_per_component() -> None:
    digests = {kind: code_measurement(kind) for kind in Component}
    assert all(len(digest) == 32 for digest in digests.values())
    assert len(set(digests.values())) == len(Component)
    assert code_measurement("gateway") == digests[Component.GATEWAY]


def _package_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_code_measurement_is_the_hash_of_the_tree_and_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured on a private copy, so engineers editing the live tree cannot race the test."""
    copy = _package_copy(_measure._PACKAGE_ROOT, tmp_path / "chronoseal")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", copy)
    pins = _measure.installed_dependencies("chronoseal")
    expected = _measure.measure_code(
        Component.ANALYSIS, _measure.tree_digest(copy), _measure.dependency_digest(pins)
    )
    assert code_measurement(Component.ANALYSIS) == expected
    assert any(pin.startswith("cryptography==") for pin in pins)
    assert any(pin.startswith("py-evm==") for pin in pins), "extras of eth-tester[py-evm]"


def test_code_measurement_changes_when_a_source_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _package_copy(_measure._PACKAGE_ROOT, tmp_path / "original" / "chronoseal")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", original)
    before = code_measurement(Component.GATEWAY)

    noisy = _package_copy(original, tmp_path / "noisy" / "chronoseal")
    (noisy / "__pycache__").mkdir()
    (noisy / "__pycache__" / "noise.cpython-311.pyc").write_bytes(b"compiled")
    (noisy / "attest" / "stray.pyc").write_bytes(b"compiled")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", noisy)
    assert code_measurement(Component.GATEWAY) == before, "compiled files are not source"

    edited = _package_copy(original, tmp_path / "edited" / "chronoseal")
    target = edited / "attest" / "_binding.py"
    target.write_bytes(target.read_bytes() + b"\n# one more line\n")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", edited)
    assert code_measurement(Component.GATEWAY) != before

    added = _package_copy(original, tmp_path / "added" / "chronoseal")
    (added / "attest" / "new_module.py").write_text("")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", added)
    assert code_measurement(Component.GATEWAY) != before


def test_code_measurement_is_computed_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _package_copy(_measure._PACKAGE_ROOT, tmp_path / "chronoseal")
    monkeypatch.setattr(_measure, "_PACKAGE_ROOT", copy)
    first = code_measurement(Component.PREDICTION)
    (copy / "attest" / "_binding.py").write_text("changed after the first measurement\n")
    assert code_measurement(Component.PREDICTION) == first
    assert (
        _measure.measure_code(
            Component.PREDICTION,
            _measure.tree_digest(copy),
            _measure.dependency_digest(_measure.installed_dependencies("chronoseal")),
        )
        != first
    )


def test_dependency_versions_change_the_measurement() -> None:
    tree = bytes(32)
    pins = {"cryptography==48.0.1", "typer==0.29.2"}
    base = _measure.measure_code(Component.CLIENT, tree, _measure.dependency_digest(pins))
    bumped = {"cryptography==48.0.2", "typer==0.29.2"}
    assert base != _measure.measure_code(Component.CLIENT, tree, _measure.dependency_digest(bumped))
    assert base == _measure.measure_code(
        Component.CLIENT, tree, _measure.dependency_digest(sorted(pins, reverse=True))
    )


def test_renaming_a_file_changes_the_tree_digest(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    first = _measure.tree_digest(tmp_path)
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert _measure.tree_digest(tmp_path) != first


def test_dependency_closure_agrees_with_packaging() -> None:
    """Our small marker evaluator must pick the same closure as the reference implementation."""
    import importlib.metadata as md

    def closure() -> set[str]:
        seen: dict[str, set[str]] = {}
        pending: list[tuple[str, frozenset[str]]] = [("chronoseal", frozenset())]
        while pending:
            name, extras = pending.pop()
            for text in md.requires(name) or []:
                req = Requirement(text)
                environments = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
                if req.marker and not any(req.marker.evaluate(env) for env in environments):
                    continue
                key = _measure._normalize(req.name)
                if key in seen and set(req.extras) <= seen[key]:
                    continue
                seen[key] = seen.get(key, set()) | set(req.extras)
                pending.append((key, frozenset(seen[key])))
        return {f"{name}=={md.version(name)}" for name in seen}

    assert _measure.installed_dependencies("chronoseal") == closure()


def test_dependency_set_follows_extras_and_skips_test_tools() -> None:
    """The measurement covers what the runtime imports, not the test tool chain."""
    names = {pin.split("==")[0] for pin in _measure.installed_dependencies("chronoseal")}
    assert {"web3", "cryptography", "py-evm", "dcap-qvl"} <= names  # py-evm via eth-tester[py-evm]
    assert not {"pytest", "vyper", "mypy"} & names


# --- attester -----------------------------------------------------------------------------


def test_evidence_carries_statement_and_platform_key(
    analysis_attester: SimulatedAttester, report_data: bytes
) -> None:
    evidence = analysis_attester.attest_at(report_data, now=NOW)
    assert (evidence.tee, evidence.component) == ("simulated", Component.ANALYSIS)
    assert evidence.certificates == (analysis_attester.platform_public_key,)
    claims = verify_simulated(evidence, now=NOW + timedelta(seconds=1), max_age=MAX_AGE)
    assert claims.tee == "simulated"
    assert claims.measurements["code"] == code_measurement(Component.ANALYSIS)
    assert claims.report_data == report_data
    assert claims.debug is False
    assert claims.platform["component"] == "analysis"


def test_attest_uses_the_clock(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = analysis_attester.attest(report_data)
    with pytest.raises(AttestationError) as caught:
        _verify(evidence, NOW - timedelta(days=3650))
    assert caught.value.id == "attest.evidence.from_future"


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_report_data_must_be_64_bytes(analysis_attester: SimulatedAttester, size: int) -> None:
    with pytest.raises(AttestationError) as caught:
        analysis_attester.attest_at(bytes(size), now=NOW)
    assert caught.value.id == "attest.report_data.size"


def test_platform_key_must_be_p256() -> None:
    with pytest.raises(AttestationError) as caught:
        SimulatedAttester("gateway", platform_key=ec.generate_private_key(ec.SECP384R1()))
    assert caught.value.id == "attest.simulated.bad_key"


def test_given_platform_key_is_used(tls_key: ec.EllipticCurvePrivateKey) -> None:
    attester = SimulatedAttester("client", platform_key=tls_key)
    assert attester.platform_public_key == spki_of(tls_key)


def test_naive_time_is_refused(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    with pytest.raises(AttestationError) as caught:
        analysis_attester.attest_at(report_data, now=NOW.replace(tzinfo=None))
    assert caught.value.id == "attest.time.naive"


# --- verifier -----------------------------------------------------------------------------


def _evidence(attester: SimulatedAttester, report_data: bytes) -> Evidence:
    return attester.attest_at(report_data, now=NOW)


def _statement_offset(evidence: Evidence) -> int:
    return 4 + evidence.raw[4:].index(b"analysis") + len(b"analysis")


def test_tampered_signature(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = _evidence(analysis_attester, report_data)
    for index in (-1, -3, -40):
        raw = bytearray(evidence.raw)
        raw[index] ^= 0x01
        assert _refusal(replace(evidence, raw=bytes(raw))) == "attest.signature.invalid"


def test_signature_by_another_platform_key(
    analysis_attester: SimulatedAttester, report_data: bytes, tls_key: ec.EllipticCurvePrivateKey
) -> None:
    evidence = _evidence(analysis_attester, report_data)
    assert _refusal(replace(evidence, certificates=(spki_of(tls_key),))) == (
        "attest.signature.invalid"
    )


def test_tampered_measurement(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = _evidence(analysis_attester, report_data)
    raw = bytearray(evidence.raw)
    raw[_statement_offset(evidence)] ^= 0x80
    assert _refusal(replace(evidence, raw=bytes(raw))) == "attest.signature.invalid"


def test_tampered_report_data(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = _evidence(analysis_attester, report_data)
    raw = bytearray(evidence.raw)
    raw[_statement_offset(evidence) + 32] ^= 0x01
    assert _refusal(replace(evidence, raw=bytes(raw))) == "attest.signature.invalid"


def test_relabelled_component(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = _evidence(analysis_attester, report_data)
    relabelled = replace(evidence, component=Component.PREDICTION)
    assert _refusal(relabelled) == "attest.evidence.malformed"


def test_freshness_window(analysis_attester: SimulatedAttester, report_data: bytes) -> None:
    evidence = _evidence(analysis_attester, report_data)
    _verify(evidence, NOW + MAX_AGE)
    _verify(evidence, NOW - timedelta(seconds=30))
    assert _refusal(evidence, NOW + MAX_AGE + timedelta(seconds=1)) == "attest.evidence.stale"
    assert _refusal(evidence, NOW - timedelta(seconds=31)) == "attest.evidence.from_future"
    verify_simulated(evidence, now=NOW + timedelta(days=365), max_age=None)


@pytest.mark.parametrize(
    "certificates",
    [(), (b"a", b"b"), (b"not der",)],
    ids=["none", "two", "garbage"],
)
def test_platform_key_shape(
    analysis_attester: SimulatedAttester, report_data: bytes, certificates: tuple[bytes, ...]
) -> None:
    evidence = replace(_evidence(analysis_attester, report_data), certificates=certificates)
    assert _refusal(evidence) == "attest.simulated.bad_key"


def test_platform_key_must_be_ec_p256(
    analysis_attester: SimulatedAttester, report_data: bytes
) -> None:
    p384 = spki_of(ec.generate_private_key(ec.SECP384R1()))
    evidence = replace(_evidence(analysis_attester, report_data), certificates=(p384,))
    assert _refusal(evidence) == "attest.simulated.bad_key"


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x00", b"\x00\x00\xff\xff" + bytes(10), b"\x00\x00\x00\x02ab"],
    ids=["empty", "short-length", "overlong-length", "no-signature"],
)
def test_malformed_raw(analysis_attester: SimulatedAttester, raw: bytes) -> None:
    evidence = Evidence(
        "simulated", Component.ANALYSIS, raw, (analysis_attester.platform_public_key,)
    )
    assert _refusal(evidence) == "attest.evidence.malformed"


def test_statement_round_trip_and_shape(report_data: bytes) -> None:
    statement = SimulatedStatement(Component.CLIENT, bytes(32), report_data, NOW)
    assert SimulatedStatement.from_bytes(statement.to_bytes()) == statement
    encoded = statement.to_bytes()
    for broken in (encoded[:-1], encoded + b"\x00", b"x" + encoded[1:]):
        with pytest.raises(AttestationError) as caught:
            SimulatedStatement.from_bytes(broken)
        assert caught.value.id == "attest.evidence.malformed"
    far_future = encoded[:-8] + struct.pack(">q", 2**62)
    with pytest.raises(AttestationError) as caught:
        SimulatedStatement.from_bytes(far_future)
    assert caught.value.id == "attest.evidence.malformed"


def test_non_simulated_evidence_is_refused(report_data: bytes) -> None:
    assert _refusal(Evidence("sgx", Component.ANALYSIS, report_data)) == (
        "attest.evidence.malformed"
    )
