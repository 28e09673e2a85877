"""Appraisal: decide whether verified evidence is good enough for this task (RATS: the policy).

Authenticity (signatures, collateral, freshness) is the backend's job; this module adds the
relying party's questions: is it the component we expect, is its measurement approved on
chain and pinned by the task, is debug off, is the TCB acceptable, is our key bound in it.
Every check runs and every failure is recorded with a stable id, so a refusal says
everything that was wrong at once and the same ids can go to logs and on-chain events.
"""

from __future__ import annotations

import hmac
import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Protocol

from chronoseal.attest._arm import TCB_STATUS_CCA_VERIFIED, TCB_STATUS_PSA_VERIFIED
from chronoseal.attest._backends import CollateralProvider, get_backend
from chronoseal.attest._binding import binding_matches
from chronoseal.attest._claims import VerifiedClaims
from chronoseal.attest._csv import TCB_STATUS_CSV_CHAIN_VERIFIED
from chronoseal.attest._evidence import Evidence, component_kind, tee_type
from chronoseal.attest._measure import DIGEST_REGISTERS, measurement_digest
from chronoseal.attest._snp import TCB_STATUS_VCEK_MATCHED
from chronoseal.errors import AttestationError
from chronoseal.spec import Component, Tee

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"
APPRAISAL_POLICY_ID: Final = "policy:chronoseal/appraisal/v1"

DEFAULT_ACCEPTED_TCB: Final = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        # SEV-SNP's only status: authentic, REPORTED_TCB is the VCEK's. Its claims carry
        # attest.snp.tcb_not_checked_against_latest, so the verdict is at best a warning.
        TCB_STATUS_VCEK_MATCHED,
        # CSV, CCA, PSA: authentic up to the vendor's root or the given key; their claims
        # carry a warning saying the firmware was not compared with the vendor's latest.
        TCB_STATUS_CSV_CHAIN_VERIFIED,
        TCB_STATUS_CCA_VERIFIED,
        TCB_STATUS_PSA_VERIFIED,
    }
)
DEFAULT_WARN_TCB: Final = frozenset(
    {"SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"}
)
DEFAULT_MAX_EVIDENCE_AGE: Final = timedelta(minutes=10)


class AppraisalStatus(StrEnum):
    """EAR status tiers (draft-ietf-rats-ear)."""

    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def tier(self) -> int:
        """The numeric AR4SI tier EAR uses in its CBOR form."""
        return {"affirming": 2, "warning": 32, "contraindicated": 96}[self.value]


class MeasurementSource(Protocol):
    """Where approved measurements live: the on-chain registry, or a pinned set in tests."""

    def is_usable(self, component: Component, tee: Tee, digest: bytes) -> bool:
        """True when every member approved ``digest`` for (component, tee) and none revoked it."""
        ...


class PinnedMeasurements:
    """An in-process :class:`MeasurementSource`: a fixed set of (component, tee, digest)."""

    def __init__(self, entries: Iterable[tuple[Component | str, Tee | str, bytes]] = ()) -> None:
        self._entries = frozenset(
            (component_kind(component), tee_type(tee), bytes(digest))
            for component, tee, digest in entries
        )

    def is_usable(self, component: Component, tee: Tee, digest: bytes) -> bool:
        found = False
        for kind, entry_tee, approved in self._entries:
            if kind == component and entry_tee == tee:
                found |= hmac.compare_digest(approved, digest)
        return found


@dataclass(frozen=True, slots=True)
class AppraisalPolicy:
    """What a relying party accepts; ``pinned`` is the task's digest per component.

    ``measurements=None`` skips the approval check (an operator inspecting a quote offline);
    the appraisal then carries the warning ``attest.measurement.unchecked``.

    ``registers`` compares raw registers (vendor names: ``mrtd``, ``mrenclave`` ...; an int
    for ``isvprodid``) when the operator has the vendor's values rather than the digest. A
    mismatch fails ``attest.measurement.register_mismatch``; covering fewer registers than
    the digest does gives the warning ``attest.measurement.partial``, never a match.

    ``allow_migration`` accepts evidence whose TEE policy lets the host migrate the guest
    (``VerifiedClaims.migratable``); by default that fails ``attest.migration.enabled``.
    """

    measurements: MeasurementSource | None
    pinned: Mapping[Component, bytes] | None = None
    allow_simulated: bool = False
    accepted_tcb: frozenset[str] = DEFAULT_ACCEPTED_TCB
    warn_tcb: frozenset[str] = DEFAULT_WARN_TCB
    max_evidence_age: timedelta | None = DEFAULT_MAX_EVIDENCE_AGE
    collateral: CollateralProvider | None = None
    registers: Mapping[str, bytes | int] | None = None
    allow_migration: bool = False


@dataclass(frozen=True, slots=True)
class Appraisal:
    """The verdict on one piece of evidence; failure and warning ids are the data of record."""

    status: AppraisalStatus
    failures: tuple[str, ...]
    warnings: tuple[str, ...]
    claims: VerifiedClaims | None
    tee: Tee
    component: Component
    appraised_at: datetime
    measurement: bytes | None = None
    details: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    compared_registers: tuple[str, ...] = ()
    """Raw registers compared one by one (``AppraisalPolicy.registers``), in digest order."""

    @property
    def accepted(self) -> bool:
        """True unless contraindicated (a warning is accepted, and says why in ``warnings``)."""
        return self.status is not AppraisalStatus.CONTRAINDICATED

    def require_accepted(self) -> None:
        """Raise :class:`AttestationError` with the first failure id when contraindicated."""
        if self.accepted:
            return
        raise AttestationError(
            f"{self.component} evidence ({self.tee}) was refused: " + ", ".join(self.failures),
            id=self.failures[0],
            context={"failures": list(self.failures), "warnings": list(self.warnings)},
        )

    def to_ear(self) -> dict[str, Any]:
        """An EAR-shaped (draft-ietf-rats-ear, JSON spelling) record of this appraisal."""
        submod: dict[str, Any] = {
            "ear.status": self.status.value,
            "ear.trustworthiness-vector": self._trust_vector(),
            "ear.appraisal-policy-id": APPRAISAL_POLICY_ID,
            "chronoseal.tee": self.tee,
            "chronoseal.failures": list(self.failures),
            "chronoseal.warnings": list(self.warnings),
        }
        if self.measurement is not None:
            submod["chronoseal.measurement"] = self.measurement.hex()
        if self.compared_registers:
            submod["chronoseal.compared-registers"] = list(self.compared_registers)
        if self.claims is not None:
            submod["ear.veraison.annotated-evidence"] = _claims_json(self.claims)
        return {
            "eat_profile": EAR_PROFILE,
            "iat": int(self.appraised_at.timestamp()),
            "ear.verifier-id": {"developer": "chronoseal", "build": f"chronoseal {_version()}"},
            "submods": {self.component.value: submod},
        }

    def _trust_vector(self) -> dict[str, int]:
        """AR4SI claims we actually assessed: 2 affirming, 32 warning, 96/97 contraindicated."""
        failed = set(self.failures)
        vector: dict[str, int] = {}
        if self.claims is None:
            vector["hardware"] = 97
            return vector
        if "attest.binding.unchecked" not in self.warnings:
            vector["instance-identity"] = 96 if "attest.binding.mismatch" in failed else 2
        misconfigured = {"attest.debug.enabled", "attest.migration.enabled"}
        vector["configuration"] = 96 if failed & misconfigured else 2
        unapproved = {
            "attest.measurement.not_approved",
            "attest.measurement.not_pinned",
            "attest.measurement.register_mismatch",
        }
        if failed & unapproved:
            vector["executables"] = 96
        elif "attest.measurement.unchecked" not in self.warnings:
            vector["executables"] = 2
        if self.tee == "simulated":
            vector["hardware"] = 32
        elif failed & {"attest.tcb.out_of_date", "attest.tcb.revoked", "attest.tcb.not_accepted"}:
            vector["hardware"] = 96
        else:
            # A backend warning (e.g. SNP's TCB not compared with AMD's latest) means the
            # platform was not fully assessed: never affirm the hardware then.
            unassessed = "attest.tcb.warning" in self.warnings or bool(self.claims.warnings)
            vector["hardware"] = 32 if unassessed else 2
        return vector


class Appraiser:
    """Applies one :class:`AppraisalPolicy` to evidence (RATS: verifier + relying-party policy)."""

    def __init__(self, policy: AppraisalPolicy) -> None:
        self._policy = policy

    @property
    def policy(self) -> AppraisalPolicy:
        return self._policy

    def appraise(
        self,
        evidence: Evidence,
        *,
        component: Component | str,
        expected_report_data: bytes | None,
        now: datetime,
    ) -> Appraisal:
        """Run every check and return the verdict; never raises for bad evidence.

        ``expected_report_data`` is what the caller recomputed with :func:`report_data_for`;
        ``None`` means the binding is not checked, which caps the verdict at ``warning``.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware: collateral windows are absolute")
        run = _Run(self._policy, evidence, component_kind(component), now)
        run.check(expected_report_data)
        return run.result()


class _Run:
    """The mutable state of one appraisal; kept apart so Appraiser stays reusable."""

    def __init__(
        self, policy: AppraisalPolicy, evidence: Evidence, expected: Component, now: datetime
    ) -> None:
        self.policy = policy
        self.evidence = evidence
        self.expected = expected
        self.now = now
        self.failures: list[str] = []
        self.warnings: list[str] = []
        self.details: dict[str, str] = {}
        self.claims: VerifiedClaims | None = None
        self.measurement: bytes | None = None
        self.compared_registers: tuple[str, ...] = ()

    def fail(self, failure_id: str, message: str) -> None:
        if failure_id not in self.failures:
            self.failures.append(failure_id)
            self.details[failure_id] = message

    def warn(self, warning_id: str, message: str) -> None:
        if warning_id not in self.warnings:
            self.warnings.append(warning_id)
            self.details.setdefault(warning_id, message)

    def check(self, expected_report_data: bytes | None) -> None:
        self._authenticity()
        if self.evidence.component != self.expected:
            self.fail(
                "attest.component.mismatch",
                f"evidence is from a {self.evidence.component}, expected a {self.expected}",
            )
        if self.claims is None:
            return
        self._measurement(self.claims)
        self._registers(self.claims)
        if self.claims.debug:
            self.fail("attest.debug.enabled", f"the {self.claims.tee} TEE runs in debug mode")
        if self.claims.migratable and not self.policy.allow_migration:
            self.fail(
                "attest.migration.enabled",
                f"the {self.claims.tee} guest policy lets the host migrate it (and its memory "
                "key) to another platform, and the policy does not allow migration",
            )
        self._tcb(self.claims)
        self._binding(self.claims, expected_report_data)

    def _authenticity(self) -> None:
        tee = self.evidence.tee
        if tee == "simulated":
            if self.policy.allow_simulated:
                self.warn("attest.simulated", "simulated TEE: no hardware root of trust")
            else:
                self.fail(
                    "attest.simulated.not_allowed",
                    "simulated evidence, and the consortium has not allowed simulation",
                )
        try:
            self.claims = get_backend(tee).verify(
                self.evidence,
                now=self.now,
                collateral=self.policy.collateral,
                max_age=self.policy.max_evidence_age,
            )
        except AttestationError as exc:
            self.fail(exc.id, exc.message)

    def _measurement(self, claims: VerifiedClaims) -> None:
        try:
            digest = measurement_digest(claims)
        except AttestationError as exc:
            self.fail(exc.id, exc.message)
            return
        self.measurement = digest
        source = self.policy.measurements
        if source is None:
            self.warn("attest.measurement.unchecked", "measurement approval was not checked")
        elif not source.is_usable(self.expected, claims.tee, digest):
            self.fail(
                "attest.measurement.not_approved",
                f"measurement {digest.hex()} is not approved for {self.expected} on {claims.tee}",
            )
        if self.policy.pinned is not None:
            pinned = self.policy.pinned.get(self.expected)
            if pinned is None or not hmac.compare_digest(pinned, digest):
                self.fail(
                    "attest.measurement.not_pinned",
                    f"measurement {digest.hex()} is not the one the task pins for {self.expected}",
                )

    def _registers(self, claims: VerifiedClaims) -> None:
        """Compare raw registers one by one; say which, and what the digest covers besides."""
        expected = self.policy.registers
        if not expected:
            return
        compared: list[str] = []
        differing: list[str] = []
        for name, value in expected.items():
            actual = (
                claims.svn.get(name) if isinstance(value, int) else claims.measurements.get(name)
            )
            if actual is None or isinstance(actual, int) != isinstance(value, int):
                self.fail(
                    "attest.measurement.missing",
                    f"{claims.tee} evidence carries no {name} to compare",
                )
                continue
            compared.append(name)
            if not _same_register(actual, value):
                differing.append(f"{name} is {_shown(actual)}, expected {_shown(value)}")
        self.compared_registers = tuple(compared)
        if differing:
            self.fail("attest.measurement.register_mismatch", "; ".join(differing))
            return
        left_out = [name for name in DIGEST_REGISTERS.get(claims.tee, ()) if name not in expected]
        if compared and left_out:
            self.warn(
                "attest.measurement.partial",
                f"only {', '.join(compared)} compared (equal); {', '.join(left_out)} not "
                "compared, so this is not a match of the measurement digest",
            )

    def _tcb(self, claims: VerifiedClaims) -> None:
        for warning_id, message in claims.warnings.items():
            self.warn(warning_id, message)
        if claims.tee == "simulated":
            return
        status = claims.tcb_status
        if status not in self.policy.accepted_tcb:
            # Say what is known: "out of date" only when the verifier found it so (a status
            # such as SEV-SNP's VcekMatched says nothing about it, only that the policy wants
            # more than was checked).
            if status == "Revoked":
                failure = "attest.tcb.revoked"
            elif status.startswith("OutOfDate"):
                failure = "attest.tcb.out_of_date"
            else:
                failure = "attest.tcb.not_accepted"
            self.fail(failure, f"TCB status {status} is not accepted by the policy")
        elif status in self.policy.warn_tcb:
            advisories = ", ".join(claims.advisory_ids) or "none listed"
            self.warn("attest.tcb.warning", f"TCB status {status} (advisories: {advisories})")

    def _binding(self, claims: VerifiedClaims, expected: bytes | None) -> None:
        if expected is None:
            self.warn("attest.binding.unchecked", "the key binding was not checked")
        elif not binding_matches(expected, claims.report_data):
            self.fail(
                "attest.binding.mismatch",
                "REPORTDATA does not bind the expected key and nonce",
            )

    def result(self) -> Appraisal:
        if self.failures:
            status = AppraisalStatus.CONTRAINDICATED
        elif self.warnings:
            status = AppraisalStatus.WARNING
        else:
            status = AppraisalStatus.AFFIRMING
        return Appraisal(
            status=status,
            failures=tuple(self.failures),
            warnings=tuple(self.warnings),
            claims=self.claims,
            tee=self.evidence.tee,
            component=self.evidence.component,
            appraised_at=self.now,
            measurement=self.measurement,
            details=MappingProxyType(dict(self.details)),
            compared_registers=self.compared_registers,
        )


def _claims_json(claims: VerifiedClaims) -> dict[str, Any]:
    return {
        "tee": claims.tee,
        "measurements": {name: value.hex() for name, value in sorted(claims.measurements.items())},
        "report_data": claims.report_data.hex(),
        "debug": claims.debug,
        "migratable": claims.migratable,
        "tcb_status": claims.tcb_status,
        "advisory_ids": list(claims.advisory_ids),
        "svn": dict(sorted(claims.svn.items())),
        "platform": dict(sorted(claims.platform.items())),
        "warnings": dict(claims.warnings),
    }


def _same_register(actual: bytes | int, expected: bytes | int) -> bool:
    if isinstance(actual, bytes) and isinstance(expected, bytes):
        return hmac.compare_digest(actual, expected)
    return actual == expected


def _shown(value: bytes | int) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


def _version() -> str:
    try:
        return importlib.metadata.version("chronoseal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
