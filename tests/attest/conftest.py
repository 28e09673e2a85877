"""Fixtures for attestation tests: a TLS key to bind, a simulated analysis runtime, a policy."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chronoseal.attest import (
    AppraisalPolicy,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
    report_data_for,
)
from chronoseal.spec import Component

NONCE = bytes(range(32))


@pytest.fixture(scope="session")
def tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def report_data(tls_key: ec.EllipticCurvePrivateKey) -> bytes:
    spki = tls_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return report_data_for(spki, NONCE)


@pytest.fixture(scope="session")
def analysis_attester() -> SimulatedAttester:
    return SimulatedAttester(Component.ANALYSIS)


@pytest.fixture(scope="session")
def analysis_digest() -> bytes:
    return code_measurement(Component.ANALYSIS)


@pytest.fixture
def simulated_policy(analysis_digest: bytes) -> AppraisalPolicy:
    """The consortium allows simulation, approved and the task pins the analysis code."""
    return AppraisalPolicy(
        measurements=PinnedMeasurements([(Component.ANALYSIS, "simulated", analysis_digest)]),
        pinned={Component.ANALYSIS: analysis_digest},
        allow_simulated=True,
    )
