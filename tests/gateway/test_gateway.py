"""The gateway refuses before any data moves, and the refusal is visible (error id, chain).

Each test builds a real consortium on the embedded chain from a copy of the bundled
scenario, edited to provoke one refusal.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import SimulatedAttester
from chronoseal.errors import ChronosealError, PeerRefused
from chronoseal.ledger import TaskState, read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
from chronoseal.spec import Component


def _world(tmp_path: Path, edit: Callable[[Path], None] | None = None) -> DemoConsortium:
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    if edit is not None:
        edit(root)
    world = DemoConsortium(load_scenario(root / "scenario.toml"), lambda _: None)
    world.propose()
    return world


def _approve_all(world: DemoConsortium) -> None:
    world.review_and_approve(world.spec, world.task_id)


def _events(world: DemoConsortium, name: str) -> list[object]:
    return [e for e in read_events(world.consortium) if e.name == name]


def _refused(world: DemoConsortium, org: str, runtime: tuple[str, int], tmp: Path) -> str:
    with pytest.raises(ChronosealError) as info:
        world.gateway(org, tmp / "state").run(runtime)
    return info.value.id


def test_task_not_approved_is_refused_before_anything(tmp_path: Path) -> None:
    world = _world(tmp_path)
    assert _refused(world, "weather", ("127.0.0.1", 9), tmp_path) == "review.task.state"
    assert world.consortium.task_state(world.task_id) is TaskState.PROPOSED


def test_runtime_not_attested_on_chain(tmp_path: Path) -> None:
    world = _world(tmp_path)
    _approve_all(world)
    assert _refused(world, "transit", ("127.0.0.1", 9), tmp_path) == "gateway.runtime.not_attested"


def test_runtime_running_unpinned_code_is_refused_and_not_acknowledged(tmp_path: Path) -> None:
    world = _world(tmp_path)
    _approve_all(world)
    rogue = SimulatedAttester(Component.ANALYSIS, measurement=b"\x66" * 32)
    runtime = world.start_runtime(attester=rogue)
    try:
        error = _refused(world, "transit", runtime.address, tmp_path)
    finally:
        runtime.stop()
    assert error == "channel.peer.evidence_refused"
    assert _events(world, "AttestationAcknowledged") == []
    assert all(not i.batches for i in runtime.state.parties.values())


class _Thief:
    """A front-runner: it copies each attestation record the runtime is about to post (the
    evidence hash and TLS key are in the pending transaction) and posts it first."""

    def __init__(self, world: DemoConsortium, *, block_genuine: bool) -> None:
        account = Account.create()
        world.chain.fund(account.address, 10**20)
        self.session = world.consortium.as_component(account.key)
        self.block_genuine = block_genuine

    def attach(self, runtime: AnalysisRuntime) -> None:
        genuine = runtime.session.post_attestation

        def post(*args: Any) -> Any:
            receipt = self.session.post_attestation(*args)
            return receipt if self.block_genuine else genuine(*args)

        runtime.session.post_attestation = post  # type: ignore[method-assign]


class _FrontRun(DemoConsortium):
    thief: _Thief

    def start_runtime(self, attester: Any = None) -> AnalysisRuntime:
        runtime_key: LocalAccount = Account.create()
        self.chain.fund(runtime_key.address, 10**20)
        runtime = AnalysisRuntime(
            self.consortium,
            self.spec,
            attester=attester or SimulatedAttester(Component.ANALYSIS),
            chain_key=runtime_key.key,
        )
        self.thief.attach(runtime)
        runtime.start()
        return runtime


def _front_run(tmp_path: Path, *, block_genuine: bool) -> _FrontRun:
    root = tmp_path / "scenario"
    shutil.copytree(bundled_scenario().parent, root)
    world = _FrontRun(load_scenario(root / "scenario.toml"), lambda _: None)
    world.thief = _Thief(world, block_genuine=block_genuine)
    world.propose()
    _approve_all(world)
    return world


def test_a_copied_attestation_record_cannot_be_acknowledged(tmp_path: Path) -> None:
    """Only the thief's copy is on chain: the runtime's evidence binds the runtime's own chain
    address, so no gateway finds a record it may acknowledge."""
    world = _front_run(tmp_path, block_genuine=True)
    runtime = world.start_runtime()
    try:
        error = _refused(world, "events", runtime.address, tmp_path)
    finally:
        runtime.stop()
    assert error == "gateway.runtime.not_attested"
    assert _events(world, "AttestationAcknowledged") == []


def test_a_front_runner_neither_blocks_nor_becomes_the_runtime(tmp_path: Path) -> None:
    world = _front_run(tmp_path, block_genuine=False)
    reports, _ = world.stream(train=False)
    assert all(r.commitment_matched for r in reports)
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.RUNNING
    posted = {e.args["component"] for e in _events(world, "AttestationPosted")}  # type: ignore[attr-defined]
    assert len(posted) == 2 and world.thief.session.address in posted
    assert view.analysis is not None and view.analysis != world.thief.session.address


def _drop_source_column(root: Path) -> None:
    table = pq.read_table(root / "data" / "events.parquet").drop_columns(["cubs_home"])
    pq.write_table(table, root / "data" / "events.parquet")


def test_missing_column_in_the_source_is_refused_before_sending(tmp_path: Path) -> None:
    world = _world(tmp_path, _drop_source_column)
    _approve_all(world)
    runtime = world.start_runtime()
    try:
        error = _refused(world, "events", runtime.address, tmp_path)
    finally:
        runtime.stop()
    assert error == "data.column.missing"
    assert _events(world, "AttestationAcknowledged") == []


def _laplace(root: Path, rule: str, party: str, source: str, budget: float) -> None:
    """The task noises one column (``rule`` was its rule) with Laplace, epsilon 0.5, and the
    party has ``budget`` epsilon for ``source``."""
    task = root / "task.toml"
    column = rule.split(" ", 1)[0]
    task.write_text(
        task.read_text().replace(
            rule, f'{column} = {{ action = "laplace", sensitivity = 1.0, epsilon = 0.5 }}'
        )
    )
    config = root / "parties" / f"{party}.toml"
    text = config.read_text().replace(
        f'{column} = ["keep", "round"]', f'{column} = ["keep", "round", "laplace"]'
    )
    config.write_text(text + f"\n[budgets.{source}]\nepsilon = {budget}\n")


def _noisy_ridership(root: Path) -> None:
    _laplace(root, 'rides = { action = "round", digits = 3 }', "transit", "ridership", 0.25)


def test_exhausted_privacy_budget_is_refused_before_sending(tmp_path: Path) -> None:
    world = _world(tmp_path, _noisy_ridership)
    _approve_all(world)
    runtime = world.start_runtime()
    try:
        error = _refused(world, "transit", runtime.address, tmp_path)
    finally:
        runtime.stop()
    assert error == "data.budget.exhausted"
    assert not (tmp_path / "state" / "privacy-budget.json").exists()
    assert _events(world, "AttestationAcknowledged") == []


def test_full_stream_matches_on_chain_and_runs(tmp_path: Path) -> None:
    world = _world(tmp_path)
    _approve_all(world)
    reports, releases = world.stream(train=False)
    assert releases == {}
    assert {r.name for r in reports} == {"transit", "weather", "events"}
    assert all(r.commitment_matched for r in reports)
    assert all(r.rows_sent == 5684 for r in reports)
    assert world.consortium.task_state(world.task_id) is TaskState.RUNNING
    assert len(_events(world, "CommitmentMatched")) == 3


def _noisy_weather(root: Path) -> None:
    _laplace(root, 'temp = { action = "round", digits = 1 }', "weather", "daily_weather", 1.0)


def test_every_feed_after_the_first_is_charged_as_a_fresh_release(tmp_path: Path) -> None:
    """A noisy feed draws fresh noise for the rows after the window: once is covered by the
    task's charge (those rows were never released), every later feed of the task is another
    release of the same rows and spends again, refused before anything is sent."""
    world = _world(tmp_path, _noisy_weather)
    _approve_all(world)
    gateway = world.gateway("weather", tmp_path / "state")
    ledger = tmp_path / "state" / "weather" / "privacy-budget.json"
    outcomes = []
    for _ in range(3):
        with pytest.raises(ChronosealError) as info:
            gateway.send_feed(("127.0.0.1", 9))  # nobody listens: each attempt fails after
        outcomes.append(info.value.id)  # its charge, and is counted (errs towards spending)
    assert outcomes[0] != "data.budget.exhausted" and outcomes[1] != "data.budget.exhausted"
    assert outcomes[2] == "data.budget.exhausted"
    charges = json.loads(ledger.read_text())["sources"]["daily_weather"]
    assert sorted(c["epsilon"] for c in charges.values()) == [0.5, 0.5]


class _Cut(Exception):
    """The connection to the runtime drops mid-stream (the gateway's process is stopped)."""


def _reattesting_runtime(world: DemoConsortium) -> AnalysisRuntime:
    """The task's runtime, re-attesting at every new block once the task binds it."""
    key: LocalAccount = Account.create()
    world.chain.fund(key.address, 10**20)
    runtime = AnalysisRuntime(
        world.consortium,
        world.spec,
        attester=SimulatedAttester(Component.ANALYSIS),
        chain_key=key.key,
        reattest_blocks=1,
    )
    runtime.start()
    return runtime


def test_a_gateway_resumes_on_a_re_attested_runtime_against_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    """transit's stream is cut after its first batch; the runtime then re-attests (fresh
    evidence, the same chain key). The restarted gateway resumes on the new identity: its
    evidence appraises, binds the chain key the task binds, and the binding is the record
    this party acknowledged on chain — and the stream's commitment matches."""
    world = _world(tmp_path)
    _approve_all(world)
    runtime = _reattesting_runtime(world)
    other = world.start_runtime()  # the same pinned code, attested for the task, never bound
    try:
        assert runtime.identity is not None
        acknowledged = runtime.identity.fingerprint

        def cut(rows: int, sent: int) -> None:
            raise _Cut

        gateways = {org: world.gateway(org, tmp_path / "state") for org in ("weather", "events")}
        transit = world.gateway("transit", tmp_path / "state")
        transit.batch_rows = 1024
        with ThreadPoolExecutor(3) as pool:
            done = [pool.submit(g.run, runtime.address) for g in gateways.values()]
            stopped = pool.submit(transit.run, runtime.address, cut)
            assert all(f.result().rows_sent == 5684 for f in done)
            with pytest.raises(_Cut):
                stopped.result()
        assert world.consortium.task_state(world.task_id) is TaskState.RUNNING
        assert len(runtime.state.parties["transit"].batches) == 1
        deadline = time.monotonic() + 30
        while runtime.identity.fingerprint == acknowledged:
            assert time.monotonic() < deadline, "the runtime never re-attested"
            world.chain.fund(Account.create().address, 1)  # a new block
            runtime.reattest()
        resumed = world.gateway("transit", tmp_path / "state")
        resumed.batch_rows = 1024
        with pytest.raises(PeerRefused) as refused:  # fresh, pinned, but another chain key
            resumed.run(other.address)
        assert refused.value.id == "gateway.runtime.not_on_chain"
        assert not other.state.parties
        report = resumed.run(runtime.address)
        assert runtime.wait(timeout=30)
    finally:
        runtime.stop()
        other.stop()
    assert report.rows_sent == 5684 and report.bytes_sent > 0
    ours, theirs = world.consortium.commitments(world.task_id, "transit")
    assert ours is not None and ours == theirs == report.commitment
    assert len(_events(world, "CommitmentMatched")) == 3
