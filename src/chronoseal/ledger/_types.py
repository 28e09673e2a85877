"""Enums and read-side records whose values mirror the contract's constants."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag


class TaskState(IntEnum):
    """A task's state on chain (``Consortium.vy`` S_* constants)."""

    NONE = 0
    PROPOSED = 1
    APPROVED = 2
    RUNNING = 3
    TRAINED = 4
    SERVING = 5
    RETIRED = 6
    ABORTED = 7
    DISPUTED = 8


class ComponentKind(IntEnum):
    """Which chronoseal component a measurement or attestation is for."""

    GATEWAY = 1
    ANALYSIS = 2
    PREDICTION = 3
    ANALYSIS_WORKER = 4


class TeeType(IntEnum):
    """TEE families the registry knows; SIMULATED needs the consortium's on-chain consent."""

    SIMULATED = 1
    SGX = 2
    TDX = 3
    SEV_SNP = 4
    CSV = 5
    CCA = 6


class Role(IntFlag):
    """A participant's roles in a task (bitmask, as stored on chain)."""

    DATA_PROVIDER = 1
    RESULT_RECIPIENT = 2


class MeasurementStatus(IntEnum):
    """Lifecycle of a registered measurement."""

    NONE = 0
    PROPOSED = 1
    APPROVED = 2
    REVOKED = 3


class ProposalKind(IntEnum):
    """What a governance proposal changes once every member approved it."""

    ADD_MEMBER = 1
    REMOVE_MEMBER = 2
    SET_SIMULATED_TEE = 3


@dataclass(frozen=True)
class Receipt:
    """What chronoseal keeps of a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int


@dataclass(frozen=True)
class Pin:
    """A measurement a task trusts: (component kind, TEE type, digest)."""

    kind: ComponentKind
    tee: TeeType
    digest: bytes


@dataclass(frozen=True)
class Member:
    """A consortium member: its id (keccak256 of the name), name and current keys."""

    org_id: bytes
    name: str
    keys: list[str]


@dataclass(frozen=True)
class MeasurementView:
    """A measurement's registry entry."""

    kind: ComponentKind
    tee: TeeType
    digest: bytes
    status: MeasurementStatus
    approvals: int
    required: int
    usable: bool


@dataclass(frozen=True)
class ProposalView:
    """A governance proposal and how far its approval got."""

    proposal_id: int
    kind: ProposalKind
    subject: bytes
    name: str
    key: str | None
    flag: bool
    proposer: str
    approvals: int
    required: int
    executed: bool


@dataclass(frozen=True)
class AttestationView:
    """An attestation record posted for a task."""

    kind: ComponentKind
    tee: TeeType
    measurement: bytes
    evidence: bytes
    tls_key: bytes
    component: str
    acks: int


@dataclass(frozen=True)
class TaskView:
    """Everything the chain knows about one task, with org ids resolved to names."""

    task_id: bytes
    state: TaskState
    proposer: str
    participants: list[str]
    roles: dict[str, Role]
    approvals: int
    required: int
    approved_by: list[str]
    deadline: int
    measurements: list[Pin]
    providers: int
    acknowledgements: int
    matched_commitments: int
    analysis: str | None
    analysis_evidence: bytes | None
    prediction: str | None
    prediction_evidence: bytes | None
    model_commitment: bytes | None
    metrics_digest: bytes | None
    audit_batches: int
    audited_predictions: int

    def binds(self, kind: ComponentKind, address: str | None) -> bool:
        """Whether ``address`` is the component the task binds as its ``kind`` runtime."""
        bound = self.analysis if kind is ComponentKind.ANALYSIS else self.prediction
        return bound is not None and address is not None and bound.lower() == address.lower()
