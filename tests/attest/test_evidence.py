"""Evidence wire encoding: deterministic, round-trips, and refuses everything else by id."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoseal.attest import Evidence
from chronoseal.attest._evidence import component_kind, tee_type
from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

MALFORMED = "attest.evidence.malformed"

evidences = st.builds(
    Evidence,
    tee=st.sampled_from(list(Tee)),
    component=st.sampled_from(list(Component)),
    raw=st.binary(max_size=2048),
    certificates=st.lists(st.binary(max_size=256), max_size=8).map(tuple),
)

SAMPLE = Evidence("sev-snp", Component.GATEWAY, b"\x01report", (b"vcek", b"chain"))


@given(evidences)
def test_round_trip_is_exact_and_deterministic(evidence: Evidence) -> None:
    wire = evidence.to_bytes()
    assert Evidence.from_bytes(wire) == evidence
    assert Evidence.from_bytes(wire).to_bytes() == wire


@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_only_when_canonical(data: bytes) -> None:
    try:
        decoded = Evidence.from_bytes(data)
    except AttestationError as exc:
        assert exc.id == MALFORMED
    else:
        assert decoded.to_bytes() == data


@given(evidences, st.data())
def test_any_truncation_is_malformed(evidence: Evidence, data: st.DataObject) -> None:
    wire = evidence.to_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    with pytest.raises(AttestationError) as caught:
        Evidence.from_bytes(wire[:cut])
    assert caught.value.id == MALFORMED


def test_known_encoding() -> None:
    assert SAMPLE.to_bytes() == (
        b"CSEV\x01"
        + b"\x00\x07sev-snp"
        + b"\x00\x07gateway"
        + b"\x00\x00\x00\x07\x01report"
        + b"\x02"
        + b"\x00\x00\x00\x04vcek"
        + b"\x00\x00\x00\x05chain"
    )


@pytest.mark.parametrize(
    "wire",
    [
        SAMPLE.to_bytes() + b"\x00",
        b"XSEV" + SAMPLE.to_bytes()[4:],
        b"CSEV\x02" + SAMPLE.to_bytes()[5:],
        SAMPLE.to_bytes().replace(b"sev-snp", b"sev-xxx"),
        SAMPLE.to_bytes().replace(b"gateway", b"gatewaz"),
        SAMPLE.to_bytes().replace(b"gateway", b"gatew\xffy"),
        b"CSEV\x01\x00\x03sgx\x00\x07gateway" + struct.pack(">I", (1 << 20) + 1),
        b"CSEV\x01\x00\x03sgx\x00\x07gateway\x00\x00\x00\x00\x09",
    ],
    ids=[
        "trailing",
        "magic",
        "version",
        "tee",
        "component",
        "non-ascii",
        "oversized-raw",
        "too-many-certs",
    ],
)
def test_malformed_inputs_are_refused(wire: bytes) -> None:
    with pytest.raises(AttestationError) as caught:
        Evidence.from_bytes(wire)
    assert caught.value.id == MALFORMED


def test_oversized_evidence_cannot_be_encoded() -> None:
    with pytest.raises(AttestationError) as caught:
        Evidence("sgx", Component.CLIENT, b"", (b"",) * 9).to_bytes()
    assert caught.value.id == MALFORMED


def test_names_are_checked() -> None:
    assert component_kind("prediction") is Component.PREDICTION
    assert tee_type("sev-snp") == "sev-snp"
    with pytest.raises(AttestationError) as caught:
        component_kind("oracle")
    assert caught.value.id == "attest.component.unknown"
    with pytest.raises(AttestationError) as caught:
        tee_type("trustzone")
    assert caught.value.id == "attest.tee.unknown"


def test_constructor_normalises_and_checks_names() -> None:
    evidence = Evidence("sgx", "analysis", b"quote", [b"cert"])  # type: ignore[arg-type]
    assert evidence.component is Component.ANALYSIS
    assert evidence.certificates == (b"cert",)
    with pytest.raises(AttestationError) as caught:
        Evidence("tpm", Component.ANALYSIS, b"quote")  # type: ignore[arg-type]
    assert caught.value.id == "attest.tee.unknown"
