"""``--measurement`` in the chain's form or the vendor's own: parsing, mapping to the digest.

The digests are checked against real evidence: the MEASUREMENT of virtee's Milan report, the
MRTD/RTMRs of dcap-qvl's TDX quote and the MRENCLAVE/MRSIGNER/ISVPRODID of its SGX quote,
parsed out of the raw bytes at the offsets of attestation-formats.md and then compared with
what the library computes from the verified claims of the same evidence.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import utc, vector_bytes, vector_hex, vector_json

from chronoseal.attest import (
    Evidence,
    ExpectedMeasurement,
    VerifiedClaims,
    get_backend,
    measurement_digest,
    parse_expected_measurement,
    register_digest,
)
from chronoseal.errors import ConfigError
from chronoseal.spec import Component, Tee

JULY_2025 = utc("2025-07-01")
TDX_REGISTERS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
CONFIG_IDS = {
    "config.measurement.not_hex",
    "config.measurement.wrong_length",
    "config.measurement.unknown_form",
    "config.measurement.not_in_tee",
    "config.measurement.ambiguous",
    "config.measurement.conflict",
}


def _static(collateral: Mapping[str, Any]) -> Any:
    return lambda _evidence: collateral


def _snp_claims() -> VerifiedClaims:
    report = vector_hex("virtee-sev/report_milan.hex")
    certificates = (
        vector_bytes("virtee-sev/vcek_milan.der"),
        vector_bytes("virtee-sev/cert_chain_milan"),
    )
    evidence = Evidence("sev-snp", Component.ANALYSIS, report, certificates)
    return get_backend("sev-snp").verify(evidence, now=JULY_2025, collateral=None, max_age=None)


def _dcap_claims(tee: Tee, quote: str, collateral: str) -> VerifiedClaims:
    evidence = Evidence(tee, Component.ANALYSIS, vector_bytes(quote))
    provider = _static(vector_json(collateral))
    return get_backend(tee).verify(evidence, now=JULY_2025, collateral=provider, max_age=None)


def _tdx_registers() -> dict[str, bytes]:
    raw = vector_bytes("dcap-qvl/tdx_quote")
    registers = {"mrtd": raw[184:232]}
    registers.update({f"rtmr{i}": raw[376 + 48 * i : 424 + 48 * i] for i in range(4)})
    return registers


def _parse(tee: str, *values: str) -> ExpectedMeasurement:
    return parse_expected_measurement(tee, list(values))


def _refused(tee: str, *values: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _parse(tee, *values)
    return caught.value


# --- native forms map to the digest of the real evidence ------------------------------------


def test_snp_measurement_maps_to_the_digest_of_the_real_report() -> None:
    measurement = vector_hex("virtee-sev/report_milan.hex")[0x90:0xC0]
    claims = _snp_claims()
    assert claims.measurements["measurement"] == measurement
    expected_digest = hashlib.sha256(
        b"chronoseal/measurement/sev-snp/v1\x00" + measurement
    ).digest()
    assert measurement_digest(claims) == expected_digest
    for text in (f"measurement:{measurement.hex()}", measurement.hex(), f"0x{measurement.hex()}"):
        parsed = _parse("sev-snp", text)
        assert parsed.digest == expected_digest, text
        assert parsed.uncompared == ()
        assert expected_digest.hex() in parsed.describe()


def test_tdx_mrtd_alone_is_a_partial_expectation_never_a_digest() -> None:
    registers = _tdx_registers()
    parsed = _parse("tdx", f"mrtd:{registers['mrtd'].hex()}")
    assert parsed.digest is None
    assert dict(parsed.registers) == {"mrtd": registers["mrtd"]}
    assert parsed.uncompared == ("rtmr0", "rtmr1", "rtmr2", "rtmr3")
    assert "rtmr0, rtmr1, rtmr2, rtmr3 not compared" in parsed.describe()


def test_tdx_all_registers_in_any_order_give_the_quotes_digest() -> None:
    registers = _tdx_registers()
    claims = _dcap_claims("tdx", "dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json")
    for order in itertools.islice(itertools.permutations(TDX_REGISTERS), 0, None, 17):
        parsed = _parse("tdx", *(f"{name}:{registers[name].hex()}" for name in order))
        assert parsed.digest == measurement_digest(claims)
        assert tuple(parsed.registers) == TDX_REGISTERS  # digest order, whatever was typed


def test_sgx_mrenclave_is_explicit_and_a_bare_32_bytes_stays_the_digest() -> None:
    raw = vector_bytes("dcap-qvl/sgx_quote")
    mrenclave, mrsigner = raw[112:144], raw[176:208]
    isvprodid = int.from_bytes(raw[304:306], "little")
    bare = _parse("sgx", mrenclave.hex())
    assert bare.digest == mrenclave and not bare.registers  # the digest, as before
    partial = _parse("sgx", f"mrenclave:{mrenclave.hex()}")
    assert (partial.digest, partial.uncompared) == (None, ("mrsigner", "isvprodid"))
    full = _parse(
        "sgx",
        f"isvprodid:{isvprodid}",
        f"mrenclave={mrenclave.hex()}",
        f"MRSIGNER:{mrsigner.hex()}",
    )
    claims = _dcap_claims("sgx", "dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json")
    assert full.digest == measurement_digest(claims)
    assert full.digest == register_digest("sgx", dict(full.registers))


def test_explicit_digest_and_simulated_code() -> None:
    digest = bytes(range(32))
    for tee in ("sgx", "tdx", "sev-snp", "simulated"):
        assert _parse(tee, f"digest:{digest.hex()}").digest == digest
    assert _parse("simulated", f"code:{digest.hex()}").digest == digest


# --- refusals: stable ids, never another exception --------------------------------------------


@pytest.mark.parametrize(
    ("tee", "values", "failure_id"),
    [
        ("tdx", ["zz"], "config.measurement.not_hex"),
        ("tdx", ["mrtd:"], "config.measurement.not_hex"),
        ("tdx", ["0x"], "config.measurement.not_hex"),
        ("tdx", ["aa bb"], "config.measurement.not_hex"),
        ("tdx", ["abc"], "config.measurement.not_hex"),
        ("sgx", ["isvprodid:one"], "config.measurement.not_hex"),
        ("tdx", ["00" * 31], "config.measurement.wrong_length"),
        ("sgx", ["00" * 48], "config.measurement.wrong_length"),
        ("sev-snp", ["00" * 47], "config.measurement.wrong_length"),
        ("tdx", ["digest:" + "00" * 48], "config.measurement.wrong_length"),
        ("tdx", ["mrtd:" + "00" * 32], "config.measurement.wrong_length"),
        ("sev-snp", ["measurement:" + "00" * 32], "config.measurement.wrong_length"),
        ("sgx", ["isvprodid:65536"], "config.measurement.wrong_length"),
        ("sgx", ["isvprodid:-1"], "config.measurement.wrong_length"),
        ("tdx", ["mrtdx:" + "00" * 48], "config.measurement.unknown_form"),
        ("sev-snp", ["sha384:" + "00" * 48], "config.measurement.unknown_form"),
        ("sev-snp", ["mrtd:" + "00" * 48], "config.measurement.not_in_tee"),
        ("tdx", ["measurement:" + "00" * 48], "config.measurement.not_in_tee"),
        ("sgx", ["rtmr0:" + "00" * 48], "config.measurement.not_in_tee"),
        ("tdx", ["mrenclave:" + "00" * 32], "config.measurement.not_in_tee"),
        ("simulated", ["mrenclave:" + "00" * 32], "config.measurement.not_in_tee"),
        ("csv", ["mrtd:" + "00" * 48], "config.measurement.not_in_tee"),
        ("cca", ["measure:" + "00" * 32], "config.measurement.not_in_tee"),
        ("csv", ["measure:" + "00" * 48], "config.measurement.wrong_length"),
        ("trustzone", ["00" * 32], "config.measurement.not_in_tee"),
        ("tdx", ["00" * 48], "config.measurement.ambiguous"),
        ("tdx", ["00" * 32, "11" * 32], "config.measurement.conflict"),
        ("tdx", ["00" * 32, "mrtd:" + "00" * 48], "config.measurement.conflict"),
        ("tdx", ["mrtd:" + "00" * 48, "digest:" + "00" * 32], "config.measurement.conflict"),
        ("tdx", ["mrtd:" + "00" * 48, "MRTD=" + "11" * 48], "config.measurement.conflict"),
        ("sev-snp", ["00" * 48, "measurement:" + "00" * 48], "config.measurement.conflict"),
    ],
)
def test_refusals_have_stable_ids(tee: str, values: list[str], failure_id: str) -> None:
    error = _refused(tee, *values)
    assert error.id == failure_id, str(error)


def test_the_ambiguity_refusal_says_what_to_write() -> None:
    message = _refused("tdx", "00" * 48).message
    assert "mrtd:HEX" in message and "MRTD only" in message


def test_a_pasted_file_is_not_echoed_whole() -> None:
    assert len(_refused("tdx", "z" * 10_000).message) < 300


def test_nothing_to_expect_is_the_callers_case() -> None:
    with pytest.raises(ValueError):
        parse_expected_measurement("tdx", [])


_hex_text = st.binary(min_size=0, max_size=80).map(bytes.hex)
_register_name = st.sampled_from(
    [
        *("digest", "mrtd", "rtmr0", "rtmr3", "measurement"),
        *("mrenclave", "mrsigner", "isvprodid", "code", "MRTD", "foo", ""),
    ]
)
_value_text = st.one_of(
    st.text(max_size=40),
    _hex_text,
    st.builds(
        lambda n, s, v: f"{n}{s}{v}", _register_name, st.sampled_from([":", "=", " : "]), _hex_text
    ),
    st.builds(lambda n: f"isvprodid:{n}", st.integers(-5, 70_000)),
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["sgx", "tdx", "sev-snp", "simulated"]),
    st.lists(_value_text, min_size=1, max_size=6),
)
def test_any_input_parses_or_is_refused_with_an_id(tee: str, values: list[str]) -> None:
    try:
        parsed = parse_expected_measurement(tee, values)
    except ConfigError as exc:
        assert exc.id in CONFIG_IDS
    else:
        assert parsed.tee == tee
        assert (parsed.digest is None) == bool(parsed.uncompared)
        assert parsed.digest is None or len(parsed.digest) == 32


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sgx", "tdx", "sev-snp", "simulated"]), st.binary(max_size=64))
def test_a_bare_value_is_the_digest_or_snp_measurement_by_length(tee: str, value: bytes) -> None:
    try:
        parsed = _parse(tee, value.hex())
    except ConfigError as exc:
        if not value:
            assert exc.id == "config.measurement.not_hex"
        elif tee == "tdx" and len(value) == 48:
            assert exc.id == "config.measurement.ambiguous"
        else:
            assert exc.id == "config.measurement.wrong_length"
            assert len(value) != 32 and not (tee == "sev-snp" and len(value) == 48)
        return
    if len(value) == 32:
        assert parsed.digest == value and not parsed.registers
    else:
        assert (tee, len(value)) == ("sev-snp", 48)
        assert parsed.digest == register_digest("sev-snp", {"measurement": value})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(TDX_REGISTERS), min_size=1, max_size=5, unique=True),
    st.binary(min_size=48, max_size=48),
)
def test_tdx_registers_give_a_digest_exactly_when_complete(names: list[str], seed: bytes) -> None:
    registers = {name: hashlib.sha384(seed + name.encode()).digest() for name in names}
    parsed = _parse("tdx", *(f"{name}:{value.hex()}" for name, value in registers.items()))
    assert dict(parsed.registers) == registers
    assert parsed.uncompared == tuple(name for name in TDX_REGISTERS if name not in names)
    if len(names) == len(TDX_REGISTERS):
        combined = b"".join(registers[name] for name in TDX_REGISTERS)
        assert (
            parsed.digest
            == hashlib.sha256(b"chronoseal/measurement/tdx/v1\x00" + combined).digest()
        )
    else:
        assert parsed.digest is None


@settings(max_examples=150, deadline=None)
@given(
    st.binary(min_size=48, max_size=48),
    st.sampled_from(["measurement:", "MEASUREMENT=", " measurement : ", ""]),
    st.sampled_from(["", "0x", "0X"]),
    st.booleans(),
    st.sampled_from(["", " ", "\n"]),
)
def test_spellings_of_one_snp_measurement_agree(
    value: bytes, prefix: str, radix: str, upper: bool, pad: str
) -> None:
    digits = value.hex().upper() if upper else value.hex()
    parsed = _parse("sev-snp", f"{pad}{prefix}{radix}{digits}{pad}")
    assert parsed.digest == register_digest("sev-snp", {"measurement": value})
