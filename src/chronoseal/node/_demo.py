"""The demo consortium in one process: real EVM, real contracts, each party acting for itself.

Stage 1 of the task's life (DESIGN.md): deploy, register measurements, propose, and let each
party review the task with its own copy of the spec and approve it. Every figure the report
carries is read back from the chain, never counted on the Python side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.attest import code_measurement
from chronoseal.errors import ReviewRefused
from chronoseal.ledger import (
    ChainBackend,
    ChainEvent,
    ChainStats,
    ComponentKind,
    Consortium,
    EmbeddedChain,
    OrgSession,
    Role,
    TaskState,
    TaskView,
    TeeType,
    chain_stats,
    read_events,
)
from chronoseal.spec import Component, TaskSpec, resolve_measurements, task_id

from ._review import OnChainTask, review_task
from ._scenario import Scenario

FUNDING_WEI = 10**20
TEE_TYPES = {
    "simulated": TeeType.SIMULATED,
    "sgx": TeeType.SGX,
    "tdx": TeeType.TDX,
    "sev-snp": TeeType.SEV_SNP,
    "csv": TeeType.CSV,
    "cca": TeeType.CCA,
}
KINDS = {
    Component.GATEWAY: ComponentKind.GATEWAY,
    Component.ANALYSIS: ComponentKind.ANALYSIS,
    Component.PREDICTION: ComponentKind.PREDICTION,
}
ROLE_BITS = {"data_provider": Role.DATA_PROVIDER, "result_recipient": Role.RESULT_RECIPIENT}

Log = Callable[[str], None]


@dataclass(frozen=True)
class TimelineEntry:
    block: int
    tx_hash: str
    actor: str
    event: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class DemoReport:
    chain: ChainStats
    contract: str
    task_id: bytes
    state: str
    participants: list[str]
    approvals: int
    approved_by: list[str]
    events: list[TimelineEntry] = field(default_factory=list)
    tee: str = "simulated"

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": {
                "kind": self.chain.kind,
                "chain_id": self.chain.chain_id,
                "blocks": self.chain.blocks,
                "transactions": self.chain.transactions,
                "gas_used": self.chain.gas_used,
                "contract": self.contract,
            },
            "task": {
                "id": "0x" + self.task_id.hex(),
                "state": self.state,
                "participants": self.participants,
                "approvals": self.approvals,
                "approved_by": self.approved_by,
            },
            "tee": self.tee,
            "events": [
                {
                    "block": e.block,
                    "tx": e.tx_hash,
                    "actor": e.actor,
                    "event": e.event,
                    "fields": e.fields,
                }
                for e in self.events
            ],
        }


def _resolver(component: Component, tee: str) -> bytes:
    return code_measurement(component.value)


def pins_of(spec: TaskSpec) -> list[tuple[ComponentKind, TeeType, bytes]]:
    return [(KINDS[c], TEE_TYPES[p.tee], p.digest) for c, p in spec.measurements.pins().items()]


def onchain_task(view: TaskView) -> OnChainTask:
    """The chain's record in the reviewer's vocabulary (names, role names, pin names)."""
    return OnChainTask(
        task_id=view.task_id,
        participants=[
            (name, frozenset(r for r, bit in ROLE_BITS.items() if view.roles[name] & bit))
            for name in view.participants
        ],
        pins=[
            (
                next(c.value for c, k in KINDS.items() if k == p.kind),
                next(t for t, v in TEE_TYPES.items() if v == p.tee),
                p.digest,
            )
            for p in view.measurements
        ],
        state=view.state.name.capitalize(),
    )


class DemoConsortium:
    """Keys, sessions and the deployed contract of an in-process consortium."""

    def __init__(self, scenario: Scenario, log: Log, chain: ChainBackend | None = None) -> None:
        self.scenario = scenario
        self.log = log
        self.chain = chain if chain is not None else EmbeddedChain()
        self._deployer: LocalAccount = Account.create()
        self._keys: dict[str, LocalAccount] = {m: Account.create() for m in scenario.members}
        for acct in [self._deployer, *self._keys.values()]:
            self.chain.fund(acct.address, FUNDING_WEI)
        self.consortium = Consortium.deploy(
            self.chain,
            self._deployer.key,
            [(m, self._keys[m].address) for m in scenario.members],
            simulated_tee_allowed=scenario.simulated_tee_allowed,
        )
        self.log(
            f"deployed the consortium contract at {self.consortium.address} with "
            f"{len(scenario.members)} founding members "
            f"(simulated TEE allowed: {self.consortium.simulated_tee_allowed()})"
        )

    def org(self, name: str) -> OrgSession:
        return self.consortium.as_org(name, self._keys[name].key)

    def actor_name(self, address: str) -> str:
        if address == self._deployer.address:
            return "deployer"
        return self.consortium.org_of_key(address) or address

    def register_measurements(self, spec: TaskSpec, proposer: str) -> None:
        """The proposer registers each pinned measurement; every other member approves it."""
        for kind, tee, digest in pins_of(spec):
            if self.consortium.measurement_usable(kind, tee, digest):
                continue
            self.org(proposer).propose_measurement(kind, tee, digest)
            for member in self.scenario.members:
                if member != proposer:
                    self.org(member).approve_measurement(kind, tee, digest)
            self.log(
                f"measurement {kind.name.lower()}/{tee.name.lower()} {digest.hex()[:16]}… "
                f"approved by all {len(self.scenario.members)} members"
            )

    def run(self) -> DemoReport:
        scenario = self.scenario
        spec = resolve_measurements(scenario.spec, _resolver)
        tid = task_id(spec)
        self.register_measurements(spec, scenario.proposer)
        roles = [
            (p.org, sum((ROLE_BITS[r.value] for r in p.roles), Role(0))) for p in spec.participants
        ]
        deadline = int(spec.task.deadline.timestamp())
        self.org(scenario.proposer).propose_task(tid, roles, pins_of(spec), deadline)
        self.log(f"{scenario.proposer} proposed task 0x{tid.hex()[:16]}… ({spec.task.name})")
        self.review_and_approve(spec, tid)
        view = self.consortium.task(tid)
        return DemoReport(
            chain=chain_stats(self.chain),
            contract=self.consortium.address,
            task_id=tid,
            state=view.state.name.capitalize(),
            participants=view.participants,
            approvals=view.approvals,
            approved_by=view.approved_by,
            events=[_entry(self, e) for e in read_events(self.consortium)],
        )

    def review_and_approve(self, spec: TaskSpec, tid: bytes) -> None:
        """Each party checks the on-chain task against its own spec copy, then approves."""
        for participant in spec.participants:
            party = self.scenario.parties[participant.org]
            view = self.consortium.task(tid)
            usable = [
                self.consortium.measurement_usable(p.kind, p.tee, p.digest)
                for p in view.measurements
            ]
            problems = review_task(party, spec, onchain_task(view), usable)
            session = self.org(participant.org)
            if problems:
                session.abort_task(tid)
                raise ReviewRefused(participant.org, [(p.id, p.message) for p in problems])
            if participant.org in self.scenario.relayed_approvals:
                signature = session.sign_task_approval(tid)
                self.org(self.scenario.proposer).relay_task_approval(
                    tid, participant.org, signature
                )
                how = f"EIP-712 signature relayed by {self.scenario.proposer}"
            else:
                session.approve_task(tid)
                how = "transaction"
            self.log(f"{participant.org} reviewed the task and approved it ({how})")


def run_demo(scenario: Scenario, *, log: Log, chain: ChainBackend | None = None) -> DemoReport:
    """Deploy, register, propose, review and approve; return what the chain says.

    ``chain`` defaults to a fresh embedded chain; pass one to inspect it afterwards.
    """
    return DemoConsortium(scenario, log, chain).run()


def _entry(world: DemoConsortium, ev: ChainEvent) -> TimelineEntry:
    fields = {k: _field(world, k, v) for k, v in ev.args.items() if k != "actor"}
    if "approvals" in fields and "required" in fields:
        fields["approvals"] = f"{fields['approvals']}/{fields.pop('required')}"
    return TimelineEntry(
        block=ev.block_number,
        tx_hash=ev.tx_hash,
        actor=world.actor_name(ev.actor),
        event=ev.name,
        fields=fields,
    )


def _field(world: DemoConsortium, key: str, value: Any) -> Any:
    if key == "org" and isinstance(value, str):
        return world.consortium.org_name(bytes.fromhex(value.removeprefix("0x")))
    if key in {"to_state", "from_state"}:
        return TaskState(value).name.capitalize()
    if key == "kind" and isinstance(value, int) and value in {k.value for k in ComponentKind}:
        return ComponentKind(value).name.lower()
    if key == "tee" and isinstance(value, int):
        return TeeType(value).name.lower().replace("_", "-")
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        return value[:10] + "…"
    return value
