"""The consortium ledger: Vyper contracts and the typed client every component uses.

The chain holds members, approved measurements, tasks with every party's approval, the
data and model commitments, and prediction audit roots. ``EmbeddedChain`` runs it in
process; ``JsonRpcChain`` talks to any EVM node. Contract refusals surface as
``chronoseal.errors.ChainRevert`` with the contract's stable id.
"""

from chronoseal._decode import restore_recursion_limit
from chronoseal.ledger._bridge import (
    OnChainMeasurements,
    RecentBlocks,
    onchain_task,
    spec_participants,
    spec_pins,
    usable_pins,
)
from chronoseal.ledger._chain import ChainBackend, EmbeddedChain, JsonRpcChain
from chronoseal.ledger._consortium import (
    ComponentSession,
    Consortium,
    OrgSession,
    Session,
    attestation_record,
    measurement_id,
    org_id,
)
from chronoseal.ledger._errors import map_chain_errors
from chronoseal.ledger._events import (
    ChainEvent,
    ChainStats,
    EventStream,
    chain_stats,
    read_events,
    task_timeline,
)
from chronoseal.ledger._types import (
    AttestationView,
    ChainComponent,
    ChainRole,
    ChainTee,
    MeasurementStatus,
    MeasurementView,
    Member,
    Pin,
    ProposalKind,
    ProposalView,
    Receipt,
    TaskState,
    TaskView,
)
from chronoseal.ledger._validator_node import (
    ValidatorKeys,
    new_validator_keys,
    validator_node_command,
)
from chronoseal.ledger._validators import (
    GENESIS_NAME,
    VALIDATOR_WEI,
    Validator,
    ValidatorError,
    ValidatorNetwork,
    clique_genesis,
    find_ethereumjs,
    static_peer,
)
from chronoseal.ledger._validators import run_network as run_validator_network

# py-evm and py_ecc raise the recursion limit to 100,000 on import: put it back.
restore_recursion_limit()

__all__ = [
    "GENESIS_NAME",
    "VALIDATOR_WEI",
    "AttestationView",
    "ChainBackend",
    "ChainComponent",
    "ChainEvent",
    "ChainRole",
    "ChainStats",
    "ChainTee",
    "ComponentSession",
    "Consortium",
    "EmbeddedChain",
    "EventStream",
    "JsonRpcChain",
    "MeasurementStatus",
    "MeasurementView",
    "Member",
    "OnChainMeasurements",
    "OrgSession",
    "Pin",
    "ProposalKind",
    "ProposalView",
    "Receipt",
    "RecentBlocks",
    "Session",
    "TaskState",
    "TaskView",
    "Validator",
    "ValidatorError",
    "ValidatorKeys",
    "ValidatorNetwork",
    "attestation_record",
    "chain_stats",
    "clique_genesis",
    "find_ethereumjs",
    "map_chain_errors",
    "measurement_id",
    "new_validator_keys",
    "onchain_task",
    "org_id",
    "read_events",
    "run_validator_network",
    "spec_participants",
    "spec_pins",
    "static_peer",
    "task_timeline",
    "usable_pins",
    "validator_node_command",
]
