"""Shared ledger test world: a deployed consortium and helpers to drive tasks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.errors import ChainRevert
from chronoseal.ledger import (
    ChainBackend,
    ChainComponent,
    ChainRole,
    ChainTee,
    ComponentSession,
    Consortium,
    OrgSession,
    Session,
)

ETH = 10**18
ORGS = ("alpha", "beta", "gamma")
# alpha provides data and receives results, beta provides data, gamma only receives results.
PARTIES: tuple[tuple[str, ChainRole], ...] = (
    ("alpha", ChainRole.DATA_PROVIDER | ChainRole.RESULT_RECIPIENT),
    ("beta", ChainRole.DATA_PROVIDER),
    ("gamma", ChainRole.RESULT_RECIPIENT),
)
PROVIDERS = ("alpha", "beta")


def digest(label: str) -> bytes:
    """A deterministic 32-byte value for a label (measurements, commitments, evidence)."""
    return hashlib.sha256(label.encode()).digest()


@dataclass
class World:
    """A consortium of three founders with approved analysis/prediction measurements."""

    chain: ChainBackend
    consortium: Consortium
    keys: dict[str, LocalAccount]
    orgs: dict[str, OrgSession]
    outsider: Session
    analysis: ComponentSession
    prediction: ComponentSession
    m_analysis: bytes
    m_prediction: bytes
    counter: list[int] = field(default_factory=lambda: [0])
    ready: dict[str, bytes] = field(default_factory=dict)

    def funded(self) -> LocalAccount:
        account: LocalAccount = Account.create()
        self.chain.fund(account.address, 10 * ETH)
        return account

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def fresh_id(self, label: str = "task") -> bytes:
        self.counter[0] += 1
        return digest(f"{label}-{self.counter[0]}-{os.urandom(8).hex()}")

    def pins(self) -> list[tuple[ChainComponent, ChainTee, bytes]]:
        return [
            (ChainComponent.ANALYSIS, ChainTee.SIMULATED, self.m_analysis),
            (ChainComponent.PREDICTION, ChainTee.SIMULATED, self.m_prediction),
        ]

    def proposed_task(self, deadline_in: int = 30 * 86400) -> bytes:
        task_id = self.fresh_id()
        self.orgs["alpha"].propose_task(task_id, PARTIES, self.pins(), self.now() + deadline_in)
        return task_id

    def approved_task(self) -> bytes:
        task_id = self.proposed_task()
        for name in ORGS:
            self.orgs[name].approve_task(task_id)
        return task_id

    def attest_analysis(self, task_id: bytes) -> bytes:
        evidence = digest(f"evidence-analysis-{task_id.hex()}")
        self.analysis.post_attestation(
            task_id,
            ChainComponent.ANALYSIS,
            ChainTee.SIMULATED,
            self.m_analysis,
            evidence,
            digest("tls-analysis"),
        )
        return evidence

    def running_task(self) -> bytes:
        task_id = self.approved_task()
        evidence = self.attest_analysis(task_id)
        for name in PROVIDERS:
            self.orgs[name].acknowledge_attestation(task_id, evidence, self.analysis.address)
        return task_id

    def commit_data(self, task_id: bytes, party: str, runtime_label: str | None = None) -> None:
        self.orgs[party].post_gateway_commitment(task_id, digest(f"data-{party}"))
        self.analysis.post_runtime_commitment(
            task_id, party, digest(runtime_label or f"data-{party}")
        )

    def trained_task(self) -> bytes:
        task_id = self.running_task()
        for name in PROVIDERS:
            self.commit_data(task_id, name)
        self.analysis.post_model_commitment(task_id, digest("model"), digest("metrics"))
        return task_id

    def attest_prediction(self, task_id: bytes) -> bytes:
        evidence = digest(f"evidence-prediction-{task_id.hex()}")
        self.prediction.post_attestation(
            task_id,
            ChainComponent.PREDICTION,
            ChainTee.SIMULATED,
            self.m_prediction,
            evidence,
            digest("tls-prediction"),
        )
        return evidence

    def serving_task(self) -> bytes:
        task_id = self.trained_task()
        evidence = self.attest_prediction(task_id)
        self.analysis.acknowledge_prediction(task_id, evidence, self.prediction.address)
        self.prediction.post_prediction_model_commitment(task_id, digest("model"))
        return task_id

    def state(self, task_id: bytes) -> Any:
        """What a refusal must leave untouched: the task's record, members, flag, proposals.

        Raw contract reads (4 calls) rather than ``Consortium.task`` keep the many refusal
        checks fast on the embedded chain, where each call costs tens of milliseconds.
        """
        c = self.consortium
        return (
            c.call("tasks", task_id),
            c.call("member_list"),
            c.call("simulated_tee_allowed"),
            c.call("proposal_count"),
        )

    def refused(
        self, refusal_id: str, action: Callable[[], object], task_id: bytes | None = None
    ) -> None:
        """Assert ``action`` is refused with ``refusal_id`` and changes nothing on chain."""
        before = self.state(task_id or bytes(32))
        block_before = self.chain.block_number()
        with pytest.raises(ChainRevert) as info:
            action()
        assert info.value.id == refusal_id, info.value
        assert info.value.tx_hash is not None  # the refusal was mined, then replayed
        assert self.chain.block_number() == block_before + 1
        assert self.state(task_id or bytes(32)) == before


def build_world(chain: ChainBackend) -> World:
    deployer: LocalAccount = Account.create()
    keys: dict[str, LocalAccount] = {name: Account.create() for name in ORGS}
    extra = [Account.create() for _ in range(3)]
    for account in [deployer, *keys.values(), *extra]:
        chain.fund(account.address, 10 * ETH)
    consortium = Consortium.deploy(
        chain, deployer.key, [(n, keys[n].address) for n in ORGS], simulated_tee_allowed=True
    )
    orgs = {n: consortium.as_org(n, keys[n].key) for n in ORGS}
    m_analysis, m_prediction = digest("analysis-code"), digest("prediction-code")
    for kind, m in (
        (ChainComponent.ANALYSIS, m_analysis),
        (ChainComponent.PREDICTION, m_prediction),
    ):
        orgs["alpha"].propose_measurement(kind, ChainTee.SIMULATED, m)
        orgs["beta"].approve_measurement(kind, ChainTee.SIMULATED, m)
        orgs["gamma"].approve_measurement(kind, ChainTee.SIMULATED, m)
    world = World(
        chain=chain,
        consortium=consortium,
        keys=keys,
        orgs=orgs,
        outsider=consortium.as_account(extra[0].key),
        analysis=consortium.as_component(extra[1].key),
        prediction=consortium.as_component(extra[2].key),
        m_analysis=m_analysis,
        m_prediction=m_prediction,
    )
    # One task parked in each state, built once per backend; tests start from these and
    # the per-test snapshot rolls back whatever they did to them.
    world.ready = {
        "proposed": world.proposed_task(),
        "approved": world.approved_task(),
        "running": world.running_task(),
        "trained": world.trained_task(),
        "serving": world.serving_task(),
    }
    return world
