"""Enums and read-side records whose values mirror the contract's constants.

The chain stores components, TEEs and roles as integers; ``Chain*`` are those codes, and the
ledger's edge converts them from and to the one vocabulary in :mod:`chronoseal.spec`
(:class:`~chronoseal.spec.Component`, :class:`~chronoseal.spec.Tee`,
:class:`~chronoseal.spec.Role`) with ``of`` and the reverse properties.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from chronoseal.errors import LedgerError
from chronoseal.spec import Component, Role, Tee


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


class ChainComponent(IntEnum):
    """Which chronoseal component a measurement or attestation is for, as the chain codes it."""

    GATEWAY = 1
    ANALYSIS = 2
    PREDICTION = 3
    ANALYSIS_WORKER = 4

    @classmethod
    def of(cls, component: Component | str | int) -> ChainComponent:
        """``Component.GATEWAY`` (or ``"gateway"``, or the code 1) → ``ChainComponent.GATEWAY``;
        refused before anything is sent for a component the chain has no code for."""
        try:
            if isinstance(component, int):
                return cls(component)
            return cls[Component(component).name]
        except (KeyError, ValueError):
            raise LedgerError(
                f"{getattr(component, 'value', component)!r} is not a component the chain "
                "registers; "
                f"use one of {', '.join(c.component.value for c in cls)}",
                id="ledger.code.bad_component",
            ) from None

    @property
    def component(self) -> Component:
        return Component[self.name]


class ChainTee(IntEnum):
    """TEE families the registry knows, as the chain codes them; SIMULATED needs the
    consortium's on-chain consent. PSA has no code: it is appraised, never registered."""

    SIMULATED = 1
    SGX = 2
    TDX = 3
    SEV_SNP = 4
    CSV = 5
    CCA = 6

    @classmethod
    def of(cls, tee: Tee | str | int) -> ChainTee:
        """``Tee.SEV_SNP`` (or ``"sev-snp"``, or the code 4) → ``ChainTee.SEV_SNP``; refused
        before anything is sent for a TEE the chain does not register."""
        try:
            if isinstance(tee, int):
                return cls(tee)
            return cls[Tee(tee).name]
        except (KeyError, ValueError):
            raise LedgerError(
                f"{getattr(tee, 'value', tee)!r} is not a TEE the chain registers; "
                f"use one of {', '.join(t.tee.value for t in cls)}",
                id="ledger.code.bad_tee",
            ) from None

    @property
    def tee(self) -> Tee:
        return Tee[self.name]


class ChainRole(IntFlag):
    """A participant's roles in a task (bitmask, as stored on chain)."""

    DATA_PROVIDER = 1
    RESULT_RECIPIENT = 2

    @classmethod
    def of(cls, roles: Iterable[Role]) -> ChainRole:
        """The bitmask of a participant's roles."""
        mask = cls(0)
        for role in roles:
            mask |= cls[Role(role).name]
        return mask

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role[str(r.name)] for r in ChainRole if r in self)


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
    contract_address: str | None = None  # set for a contract creation


@dataclass(frozen=True)
class Pin:
    """A measurement a task trusts: (component kind, TEE type, digest)."""

    kind: ChainComponent
    tee: ChainTee
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

    kind: ChainComponent
    tee: ChainTee
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

    kind: ChainComponent
    tee: ChainTee
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
    roles: dict[str, ChainRole]
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

    def binds(self, kind: ChainComponent, address: str | None) -> bool:
        """Whether ``address`` is the component the task binds as its ``kind`` runtime."""
        bound = self.analysis if kind is ChainComponent.ANALYSIS else self.prediction
        return bound is not None and address is not None and bound.lower() == address.lower()
