"""A consortium on the embedded chain with a task in each interesting state, for the explorer.

Built directly with the ledger client (real contract on py-evm): three founders, approved
analysis and prediction measurements plus one revoked, one executed and one open governance
proposal, a Serving task (one approval relayed by EIP-712 signature, audit batches posted),
a Disputed task (one party's runtime commitment differs) and a task still Proposed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.ledger import (
    ChainBackend,
    ChainComponent,
    ChainRole,
    ChainTee,
    ComponentSession,
    Consortium,
    OrgSession,
)

ETH = 10**18
ORGS = ("alpha", "beta", "gamma")
PARTIES = (
    ("alpha", ChainRole.DATA_PROVIDER | ChainRole.RESULT_RECIPIENT),
    ("beta", ChainRole.DATA_PROVIDER),
    ("gamma", ChainRole.RESULT_RECIPIENT),
)
PROVIDERS = ("alpha", "beta")


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass
class ExplorerWorld:
    chain: ChainBackend
    consortium: Consortium
    orgs: dict[str, OrgSession]
    relayer: OrgSession
    analysis: ComponentSession
    prediction: ComponentSession
    tasks: dict[str, bytes] = field(default_factory=dict)
    counter: int = 0

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def pins(self) -> list[tuple[ChainComponent, ChainTee, bytes]]:
        return [
            (ChainComponent.ANALYSIS, ChainTee.SIMULATED, digest("analysis-code")),
            (ChainComponent.PREDICTION, ChainTee.SIMULATED, digest("prediction-code")),
        ]

    def propose(self) -> bytes:
        self.counter += 1
        task_id = digest(f"explorer-task-{self.counter}")
        self.orgs["alpha"].propose_task(task_id, PARTIES, self.pins(), self.now() + 30 * 86400)
        return task_id

    def approve(self, task_id: bytes) -> None:
        self.orgs["alpha"].approve_task(task_id)
        signature = self.orgs["beta"].sign_task_approval(task_id)
        self.relayer.relay_task_approval(task_id, "beta", signature)
        self.orgs["gamma"].approve_task(task_id)

    def run(self, task_id: bytes) -> None:
        self.approve(task_id)
        evidence = digest(f"evidence-analysis-{task_id.hex()}")
        self.analysis.post_attestation(
            task_id,
            ChainComponent.ANALYSIS,
            ChainTee.SIMULATED,
            digest("analysis-code"),
            evidence,
            digest("tls-analysis"),
        )
        for name in PROVIDERS:
            self.orgs[name].acknowledge_attestation(task_id, evidence, self.analysis.address)

    def commit(self, task_id: bytes, party: str, runtime_label: str | None = None) -> None:
        self.orgs[party].post_gateway_commitment(task_id, digest(f"data-{party}"))
        self.analysis.post_runtime_commitment(
            task_id, party, digest(runtime_label or f"data-{party}")
        )

    def serve(self, task_id: bytes, batches: int) -> None:
        self.run(task_id)
        for name in PROVIDERS:
            self.commit(task_id, name)
        self.analysis.post_model_commitment(task_id, digest("model"), digest("metrics"))
        evidence = digest(f"evidence-prediction-{task_id.hex()}")
        self.prediction.post_attestation(
            task_id,
            ChainComponent.PREDICTION,
            ChainTee.SIMULATED,
            digest("prediction-code"),
            evidence,
            digest("tls-prediction"),
        )
        self.analysis.acknowledge_prediction(task_id, evidence, self.prediction.address)
        self.prediction.post_prediction_model_commitment(task_id, digest("model"))
        for batch in range(batches):
            self.audit_root(task_id, batch)

    def audit_root(self, task_id: bytes, batch: int, count: int = 3) -> None:
        self.prediction.post_audit_root(task_id, digest(f"root-{batch}"), count)


def build_explorer_world(chain: ChainBackend, *, batches: int = 2) -> ExplorerWorld:
    deployer: LocalAccount = Account.create()
    keys = {name: Account.create() for name in (*ORGS, "delta")}
    extra = [Account.create() for _ in range(2)]
    for account in [deployer, *keys.values(), *extra]:
        chain.fund(account.address, 10 * ETH)
    consortium = Consortium.deploy(
        chain, deployer.key, [(n, keys[n].address) for n in ORGS], simulated_tee_allowed=True
    )
    orgs = {n: consortium.as_org(n, keys[n].key) for n in ORGS}
    for kind, label in (
        (ChainComponent.ANALYSIS, "analysis-code"),
        (ChainComponent.PREDICTION, "prediction-code"),
    ):
        orgs["alpha"].propose_measurement(kind, ChainTee.SIMULATED, digest(label))
        orgs["beta"].approve_measurement(kind, ChainTee.SIMULATED, digest(label))
        orgs["gamma"].approve_measurement(kind, ChainTee.SIMULATED, digest(label))
    # a gateway measurement proposed, approved by one more member, then revoked by gamma
    orgs["beta"].propose_measurement(ChainComponent.GATEWAY, ChainTee.SGX, digest("old-gateway"))
    orgs["alpha"].approve_measurement(ChainComponent.GATEWAY, ChainTee.SGX, digest("old-gateway"))
    orgs["gamma"].revoke_measurement(ChainComponent.GATEWAY, ChainTee.SGX, digest("old-gateway"))
    world = ExplorerWorld(
        chain=chain,
        consortium=consortium,
        orgs=orgs,
        relayer=orgs["gamma"],
        analysis=consortium.as_component(extra[0].key),
        prediction=consortium.as_component(extra[1].key),
    )
    serving = world.propose()
    world.serve(serving, batches)
    disputed = world.propose()
    world.run(disputed)
    world.commit(disputed, "alpha")
    world.commit(disputed, "beta", runtime_label="tampered-beta")
    world.tasks = {"serving": serving, "disputed": disputed, "proposed": world.propose()}
    # governance: delta joins (executed), then an open proposal to forbid simulation
    pid = orgs["alpha"].propose_member("delta", keys["delta"].address)
    orgs["beta"].approve_proposal(pid)
    orgs["gamma"].approve_proposal(pid)
    orgs["beta"].propose_simulated_tee_allowed(False)
    return world
