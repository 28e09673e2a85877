"""The demo consortium in one process: real EVM, real contracts, each party acting for itself.

The task's life (DESIGN.md) as far as it is built: deploy, register measurements, propose,
let each party review the task with its own copy of the spec and approve it; then start the
analysis runtime (attested, recorded on chain) and one gateway per party, which verify it,
acknowledge it on chain and stream their desensitized data over real mutual TLS on
loopback. Every figure the report carries about the chain is read back from it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import Attester, SimulatedAttester, installed_measurement
from chronoseal.errors import LedgerError, ReviewRefused
from chronoseal.gateway import Gateway
from chronoseal.ledger import (
    ChainBackend,
    ChainEvent,
    ChainStats,
    ComponentKind,
    Consortium,
    EmbeddedChain,
    OrgSession,
    TaskState,
    TeeType,
    chain_stats,
    onchain_task,
    read_events,
    spec_participants,
    spec_pins,
    usable_pins,
)
from chronoseal.spec import (
    Component,
    TaskSpec,
    resolve_measurements,
    review_task,
    task_id,
)

from ._scenario import Scenario

FUNDING_WEI = 10**20

Log = Callable[[str], None]
Stage = Literal["approved", "running"]
StreamProgress = Callable[[str, int, int], None]
"""(party, rows sent so far, total rows or 0 when unknown) after every batch."""


@dataclass(frozen=True)
class TimelineEntry:
    block: int
    tx_hash: str
    actor: str
    event: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class PartyReport:
    name: str
    rows_sent: int
    bytes_sent: int
    commitment: str
    commitment_matched: bool


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
    parties: list[PartyReport] = field(default_factory=list)
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
            "parties": [
                {
                    "name": p.name,
                    "rows_sent": p.rows_sent,
                    "bytes_sent": p.bytes_sent,
                    "commitment": p.commitment,
                    "commitment_matched": p.commitment_matched,
                }
                for p in self.parties
            ],
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


class DemoConsortium:
    """Keys, sessions and the deployed contract of an in-process consortium."""

    def __init__(
        self,
        scenario: Scenario,
        log: Log,
        chain: ChainBackend | None = None,
        progress: StreamProgress | None = None,
    ) -> None:
        self.scenario = scenario
        self.log = log
        self.progress = progress
        self.chain = chain if chain is not None else EmbeddedChain()
        self.spec = resolve_measurements(scenario.spec, installed_measurement)
        self.task_id = task_id(self.spec)
        self._deployer: LocalAccount = Account.create()
        self._keys: dict[str, LocalAccount] = {m: Account.create() for m in scenario.members}
        self._components: dict[str, str] = {}
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
        if address in self._components:
            return self._components[address]
        return self.consortium.org_of_key(address) or address

    def register_measurements(self, spec: TaskSpec, proposer: str) -> None:
        """The proposer registers each pinned measurement; every other member approves it."""
        for kind, tee, digest in spec_pins(spec):
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

    def propose(self) -> None:
        """Register the pinned measurements and propose the task (by the scenario's proposer)."""
        spec, proposer = self.spec, self.scenario.proposer
        self.register_measurements(spec, proposer)
        deadline = int(spec.task.deadline.timestamp())
        self.org(proposer).propose_task(
            self.task_id, spec_participants(spec), spec_pins(spec), deadline
        )
        self.log(f"{proposer} proposed task 0x{self.task_id.hex()[:16]}… ({spec.task.name})")

    def run(self, until: Stage = "running") -> DemoReport:
        tid = self.task_id
        self.propose()
        self.review_and_approve(self.spec, tid)
        parties = self.stream() if until == "running" else []
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
            parties=parties,
        )

    def start_runtime(self, attester: Attester | None = None) -> AnalysisRuntime:
        """An analysis runtime with a fresh funded chain key, attested and serving."""
        runtime_key: LocalAccount = Account.create()
        self.chain.fund(runtime_key.address, FUNDING_WEI)
        self._components[runtime_key.address] = "analysis runtime"
        runtime = AnalysisRuntime(
            self.consortium,
            self.spec,
            attester=attester or SimulatedAttester(Component.ANALYSIS),
            chain_key=runtime_key.key,
        )
        runtime.start()
        return runtime

    def stream(self) -> list[PartyReport]:
        """Start the analysis runtime and every party's gateway; wait for all streams."""
        spec, tid = self.spec, self.task_id
        runtime = self.start_runtime()
        self.log(
            f"analysis runtime attested (simulated TEE) and recorded on chain; "
            f"serving mutual RA-TLS on {runtime.address[0]}:{runtime.address[1]}"
        )
        try:
            with tempfile.TemporaryDirectory(prefix="chronoseal-demo-") as state:
                gateways = [self.gateway(org, Path(state)) for org in spec.data_providers()]
                with ThreadPoolExecutor(len(gateways)) as pool:
                    futures = [
                        pool.submit(gw.run, runtime.address, self._progress_of(gw))
                        for gw in gateways
                    ]
                    reports = [f.result() for f in futures]
            if not runtime.wait(timeout=60):
                raise LedgerError(
                    "the runtime did not receive every stream", id="analysis.intake.incomplete"
                )
        finally:
            runtime.stop()
        out = []
        for r in reports:
            gateway_side, runtime_side = self.consortium.commitments(tid, r.party)
            matched = gateway_side is not None and gateway_side == runtime_side
            self.log(
                f"{r.party}: {r.rows_sent:,} rows, {r.bytes_sent:,} bytes sent; commitment "
                f"{'matched' if matched else 'NOT matched'} on chain"
            )
            out.append(
                PartyReport(
                    name=r.party,
                    rows_sent=r.rows_sent,
                    bytes_sent=r.bytes_sent,
                    commitment="0x" + (gateway_side or b"").hex(),
                    commitment_matched=matched,
                )
            )
        return out

    def gateway(self, org: str, state: Path) -> Gateway:
        """``org``'s gateway for the task, acting with ``org``'s registered key."""
        return Gateway(
            self.consortium,
            self.scenario.parties[org],
            self.spec,
            config_dir=self.scenario.party_dirs[org],
            attester=SimulatedAttester(Component.GATEWAY),
            org_key=self._keys[org],
            state_dir=state / org,
        )

    def _progress_of(self, gateway: Gateway) -> Callable[[int, int], None] | None:
        report = self.progress
        if report is None:
            return None
        total = gateway.planned_rows() or 0
        name = gateway.name
        report(name, 0, total)

        def on_batch(rows: int, _bytes: int) -> None:
            report(name, rows, total)

        return on_batch

    def review_and_approve(self, spec: TaskSpec, tid: bytes) -> None:
        """Each party checks the on-chain task against its own spec copy, then approves."""
        for participant in spec.participants:
            party = self.scenario.parties[participant.org]
            view = self.consortium.task(tid)
            problems = review_task(
                party, spec, onchain_task(view), usable_pins(self.consortium, view)
            )
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


def run_demo(
    scenario: Scenario,
    *,
    log: Log,
    chain: ChainBackend | None = None,
    progress: StreamProgress | None = None,
    until: Stage = "running",
) -> DemoReport:
    """Run the task up to ``until`` (as far as it is built); return what the chain says.

    ``chain`` defaults to a fresh embedded chain; pass one to inspect it afterwards.
    """
    return DemoConsortium(scenario, log, chain, progress).run(until)


def _entry(world: DemoConsortium, ev: ChainEvent) -> TimelineEntry:
    fields = {k: _field(world, k, v) for k, v in ev.args.items() if k != "actor"}
    for count in ("approvals", "acks"):
        if count in fields and "required" in fields:
            fields[count] = f"{fields[count]}/{fields.pop('required')}"
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
