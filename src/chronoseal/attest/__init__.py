"""Remote attestation: produce evidence inside a TEE and appraise a peer's evidence.

RATS vocabulary (RFC 9334): an :class:`Attester` produces :class:`Evidence`; a backend from
:func:`get_backend` checks its authenticity and yields :class:`VerifiedClaims`; an
:class:`Appraiser` applies an :class:`AppraisalPolicy` and returns an :class:`Appraisal`,
whose ids and EAR form (:meth:`Appraisal.to_ear`) are the record of the decision.

Typical use (attester side, then verifier side)::

    rd = report_data_for(tls_spki_der, nonce)              # 64 bytes, SHA-512 binding
    evidence = SimulatedAttester(Component.ANALYSIS).attest(rd)
    wire = evidence.to_bytes()                              # deterministic encoding

    policy = AppraisalPolicy(
        measurements=registry,                              # MeasurementSource (on chain)
        pinned={Component.ANALYSIS: digest},                # what the task pins
        allow_simulated=consortium_allows_simulation,
    )
    appraisal = Appraiser(policy).appraise(
        Evidence.from_bytes(wire), component=Component.ANALYSIS,
        expected_report_data=rd, now=datetime.now(UTC),
    )
    appraisal.require_accepted()                            # raises AttestationError(id=...)

:func:`code_measurement` is the simulated TEE's measurement of the installed code;
:func:`measurement_digest` turns any TEE's claims into the 32-byte digest registered on
chain, and :func:`register_digest` the raw registers a vendor tool prints.
:func:`parse_expected_measurement` reads an operator's expectation in either form (see
``docs/attestation-backends.md``). Failure ids are listed in ``docs/trust-model.md`` and,
with what to do about each, in ``docs/failure-ids.md``.

Hardware backends: SGX/TDX (DCAP), SEV-SNP, Hygon CSV (SM2 through libcrypto, Hygon's root
pinned), Arm CCA and PSA tokens; attesters: :class:`GramineAttester`, :class:`TsmAttester`
(TDX, SEV-SNP, CCA through configfs-tsm), :class:`CsvGuestAttester` (``/dev/csv-guest``),
chosen from the pinned TEE by :func:`attester_for`.
"""

from chronoseal.attest._appraisal import (
    Appraisal,
    AppraisalPolicy,
    AppraisalStatus,
    Appraiser,
    MeasurementSource,
    PinnedMeasurements,
)
from chronoseal.attest._backends import (
    Backend,
    Collateral,
    CollateralProvider,
    GramineAttester,
    TsmAttester,
    attester_for,
    get_backend,
)
from chronoseal.attest._binding import REPORT_DATA_SIZE, report_data_for
from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._csv import csv_report_wrapper, verify_csv_chain
from chronoseal.attest._csv_guest import CsvGuestAttester
from chronoseal.attest._evidence import Attester, Evidence, tee_type
from chronoseal.attest._expected import ExpectedMeasurement, parse_expected_measurement
from chronoseal.attest._measure import (
    code_measurement,
    installed_measurement,
    measurement_digest,
    register_digest,
)
from chronoseal.attest._simulated import SimulatedAttester

from ._sealing import sealing_key

__all__ = [
    "REPORT_DATA_SIZE",
    "Appraisal",
    "AppraisalPolicy",
    "AppraisalStatus",
    "Appraiser",
    "Attester",
    "Backend",
    "Collateral",
    "CollateralProvider",
    "CsvGuestAttester",
    "Evidence",
    "ExpectedMeasurement",
    "GramineAttester",
    "MeasurementSource",
    "PinnedMeasurements",
    "SimulatedAttester",
    "TsmAttester",
    "VerifiedClaims",
    "attester_for",
    "code_measurement",
    "csv_report_wrapper",
    "get_backend",
    "installed_measurement",
    "measurement_digest",
    "parse_expected_measurement",
    "register_digest",
    "report_data_for",
    "sealing_key",
    "tee_type",
    "verify_csv_chain",
]
