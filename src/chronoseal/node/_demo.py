"""The demo consortium in one process: real EVM, real contracts, each party acting for itself.

The task's life (DESIGN.md) as far as it is built: deploy, register measurements, propose,
let each party review the task with its own copy of the spec and approve it; then start the
analysis runtime (attested, recorded on chain) and one gateway per party, which verify it,
acknowledge it on chain and stream their desensitized data over real mutual TLS on
loopback; the runtime trains, back-tests and values each party, commits the model (Trained)
and every party fetches what the task releases to it, checked against the chain. Every
figure the report carries is read back from the chain or from what a party received.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.analysis import AnalysisProgress, AnalysisRuntime
from chronoseal.attest import Attester, installed_measurement
from chronoseal.audit import TaskAudit, audit_task
from chronoseal.errors import ChronosealError, LedgerError, ReviewRefused
from chronoseal.gateway import Gateway
from chronoseal.ledger import (
    ChainBackend,
    ChainComponent,
    ChainEvent,
    ChainStats,
    ChainTee,
    Consortium,
    EmbeddedChain,
    OrgSession,
    TaskState,
    chain_stats,
    read_events,
    spec_participants,
    spec_pins,
)
from chronoseal.prediction import (
    Answer,
    ForecastClient,
    PredictionRuntime,
    Receipt,
    party_signer,
    verify_receipt,
)
from chronoseal.spec import (
    Component,
    TaskSpec,
    resolve_measurements,
    task_id,
)
from chronoseal.trust import pinned_attester

from ._lifecycle import KNOCK_ONS, AnalysisAgent, GatewayAgent, PredictionAgent, Watch
from ._party import PartyAgent
from ._workers import analysis_compute, workers_json

if TYPE_CHECKING:
    from chronoseal.analysis import DaskCompute

    from ._config import ScenarioConfig, Stage

FUNDING_WEI = 10**20
#: How long the demo's agents wait for a state (their waits end at once when one fails),
#: and how often they read the chain: the embedded chain answers in a millisecond.
AGENT_TIMEOUT = 900.0
AGENT_POLL = 0.1

Log = Callable[[str], None]
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
    model_commitment: str | None = None
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_party: str = ""
    predictions: dict[str, Any] | None = None
    #: What each recipient was served (long format), for the report's forecast plot.
    forecasts: dict[str, Any] = field(default_factory=dict)
    #: A series holder's own newest observations and the forecast served after them.
    with_input: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: The re-verification of the task from the chain alone, run after the last stage.
    audit: TaskAudit | None = None
    #: Wall-clock seconds of each stage the run went through, in order.
    stages: dict[str, float] = field(default_factory=dict)
    #: The receipt of every request the parties made, each checked against the chain.
    receipts: list[Receipt] = field(default_factory=list)
    #: The analysis runtime's attested Dask workers (``workers_json``); empty without.
    workers: list[dict[str, Any]] = field(default_factory=list)

    def released(self, key: str) -> Any:
        """A released item as the parties received it (every recipient gets the same)."""
        return next((r[key] for _, r in sorted(self.releases.items()) if key in r), None)

    def analysis_json(self) -> dict[str, Any]:
        """The model, baseline and contributions: the values released to the parties."""
        out: dict[str, Any] = {}
        model = self.released("model")
        if model is not None:
            out["model"] = {
                "family": model["family"],
                "commitment": model["commitment"],
                "metrics": model["metrics"],
            }
        baseline = self.released("baseline")
        if baseline is not None:
            out["baseline"] = baseline
        contribution = self.released("contribution")
        if contribution is not None:
            out["contribution"] = contribution["delta_mase"]
            out["contribution_method"] = {
                k: contribution[k] for k in ("method", "reference", "coalitions", "note")
            }
            if "standard_error" in contribution:
                out["contribution_standard_error"] = contribution["standard_error"]
        cost = self.released("cost")
        if cost is not None:
            out["cost"] = cost
        if self.releases:
            out["releases"] = {p: sorted(set(r) - _ENVELOPE) for p, r in self.releases.items()}
        return out

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
            **self.analysis_json(),
            **({"predictions": self.predictions} if self.predictions is not None else {}),
            **({"audit": self.audit_json()} if self.audit is not None else {}),
            **({"workers": self.workers} if self.workers else {}),
            "stages_s": {k: round(v, 3) for k, v in self.stages.items()},
        }

    def audit_json(self) -> dict[str, Any]:
        assert self.audit is not None
        return {
            **self.audit.summary_json(),
            "verdicts": {c.id: c.verdict for c in self.audit.checks},
            "receipts_checked": self.audit.receipts_checked,
        }


_ENVELOPE = {"task_id", "party", "nonce"}


@dataclass
class ServedForecasts:
    """What the serving stage did: the JSON summary and each recipient's forecast."""

    summary: dict[str, Any] = field(default_factory=dict)
    forecasts: dict[str, Any] = field(default_factory=dict)
    #: A series holder's forecast from its own newest observations (and those rows).
    with_input: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)


class DemoConsortium:
    """Keys, sessions and the deployed contract of an in-process consortium."""

    def __init__(
        self,
        scenario: ScenarioConfig,
        log: Log,
        chain: ChainBackend | None = None,
        progress: StreamProgress | None = None,
        analysis_progress: AnalysisProgress | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.scenario = scenario
        #: Where the gateways keep their state (None: a directory removed after the run).
        self.state_dir = state_dir
        self.log = log
        self.progress = progress
        self.analysis_progress = analysis_progress
        self.chain = chain if chain is not None else EmbeddedChain()
        self.spec = resolve_measurements(scenario.spec, installed_measurement)
        self.task_id = task_id(self.spec)
        self._deployer: LocalAccount = Account.create()
        self._keys: dict[str, LocalAccount] = {m: Account.create() for m in scenario.members}
        self._components: dict[str, str] = {}
        self.stages: dict[str, float] = {}
        #: The one-process runtime's Dask workers; or what a separate runtime reported.
        self.runtime_workers: DaskCompute | None = None
        self.workers_reported: list[dict[str, Any]] = []
        self._since = time.monotonic()
        #: The agents' work once they ran: the analysis agent (its runtime) and the gateways.
        self.analysis: AnalysisAgent | None = None
        self.gateways: list[Gateway] = []
        self.served: ServedForecasts | None = None
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

    def name_component(self, address: str, label: str) -> None:
        """How the timeline names a component's chain address."""
        self._components[address] = label

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

    def mark(self, stage: str) -> None:
        """The stage just finished: its wall-clock time goes into the report."""
        now = time.monotonic()
        self.stages[stage] = now - self._since
        self._since = now

    def run(self, until: Stage = "serving") -> DemoReport:
        tid = self.task_id
        self.propose()
        self.review_and_approve(self.spec, tid)
        self.mark("approve")
        parties: list[PartyReport] = []
        releases: dict[str, dict[str, Any]] = {}
        self.served = None
        if until != "approved":
            parties, releases = self.stream(
                train=until in ("trained", "serving"), serve=until == "serving"
            )
        return self.report(parties, releases)

    def report(self, parties: list[PartyReport], releases: dict[str, dict[str, Any]]) -> DemoReport:
        """What the chain says now, what the parties received, and the audit from the chain."""
        tid = self.task_id
        view = self.consortium.task(tid)
        events = read_events(self.consortium)
        audit = self.audit(events)
        self.mark("audit")
        return DemoReport(
            chain=chain_stats(self.chain),
            contract=self.consortium.address,
            task_id=tid,
            state=view.state.name.capitalize(),
            participants=view.participants,
            approvals=view.approvals,
            approved_by=view.approved_by,
            events=[_entry(self, e) for e in events],
            parties=parties,
            model_commitment=(
                "0x" + view.model_commitment.hex() if view.model_commitment is not None else None
            ),
            releases=releases,
            target_party=self.spec.target_dataset().party,
            predictions=self.served.summary if self.served is not None else None,
            forecasts=self.served.forecasts if self.served is not None else {},
            with_input=self.served.with_input if self.served is not None else {},
            audit=audit,
            tee=self.runtime.attester.tee if self.runtime is not None else pinned_tees(self.spec),
            stages=dict(self.stages),
            receipts=self.served.receipts if self.served is not None else [],
            workers=workers_json(self.worker_records(), events),
        )

    def worker_records(self) -> list[dict[str, Any]]:
        """What the analysis runtime recorded of its Dask workers (none without workers)."""
        if self.runtime_workers is not None:
            return self.runtime_workers.to_json()
        return self.workers_reported

    def audit(self, events: list[ChainEvent]) -> TaskAudit:
        """What any member or auditor gets from ``chronoseal audit``: the task re-verified
        from the chain's history alone, with the receipts the parties were given."""
        receipts = self.served.receipts if self.served is not None else []
        audit = audit_task(self.consortium, self.task_id, events=events, receipts=receipts)
        passed = sum(c.verdict == "pass" for c in audit.checks)
        if audit.verified:
            self.log(
                f"audit from the chain alone: {passed} of {len(audit.checks)} checks passed, "
                f"none failed ({len(events)} events replayed, {len(receipts)} receipts)"
            )
        else:
            self.log(
                "audit from the chain alone FAILED: "
                + ", ".join(f"[{c.id}] {c.detail}" for c in audit.failures)
            )
        return audit

    def _component_key(self, label: str) -> LocalAccount:
        """A fresh funded chain key for a component, named ``label`` in the timeline."""
        key: LocalAccount = Account.create()
        self.chain.fund(key.address, FUNDING_WEI)
        self._components[key.address] = label
        return key

    def start_runtime(self, attester: Attester | None = None) -> AnalysisRuntime:
        """An analysis runtime with a fresh funded chain key, attested and serving."""
        runtime_key = self._component_key("analysis runtime")
        runtime = AnalysisRuntime(
            self.consortium,
            self.spec,
            attester=attester or pinned_attester(self.spec, Component.ANALYSIS),
            chain_key=runtime_key.key,
            compute=analysis_compute(self.spec, self.scenario.workers),
        )
        self.runtime_workers = runtime.compute
        runtime.start()
        return runtime

    @property
    def runtime(self) -> AnalysisRuntime | None:
        """The analysis runtime the agent started (stopped once the run is over)."""
        return self.analysis.runtime if self.analysis is not None else None

    def start_prediction(self) -> PredictionRuntime:
        """A prediction runtime with a fresh funded chain key, attested and serving."""
        key = self._component_key("prediction runtime")
        runtime = PredictionRuntime(
            self.consortium,
            self.spec,
            attester=pinned_attester(self.spec, Component.PREDICTION),
            chain_key=key.key,
        )
        runtime.start()
        return runtime

    def stream(
        self, train: bool = True, serve: bool = False
    ) -> tuple[list[PartyReport], dict[str, dict[str, Any]]]:
        """Run the analysis agent and every party's gateway agent (and, ``serve``, the
        prediction agent) — the agents ``chronoseal run`` starts as processes — as threads
        on this chain: they stream, (``train``) train and fetch each party's release, and
        (``serve``) hand the model over and feed it; then every party asks for forecasts."""
        spec = self.spec
        crew = _Crew()

        def watch(who: str) -> Watch:
            """The agent's wait on this chain; its log lines say who it is."""
            return Watch(
                self.consortium, spec, AGENT_TIMEOUT, lambda message: self.log(f"{who}: {message}"),
                stop=crew.stop, poll=AGENT_POLL,
            )  # fmt: skip

        prediction = None
        if serve:
            prediction = PredictionAgent(
                watch("prediction runtime"), self.start_prediction, serve_for=AGENT_TIMEOUT
            )
        self.analysis = AnalysisAgent(
            watch("analysis runtime"),
            self.start_runtime,
            progress=self.analysis_progress,
            train=train,
            prediction=_address_of(prediction, "handover"),
        )
        where: AbstractContextManager[str] = (
            nullcontext(str(self.state_dir))
            if self.state_dir is not None
            else tempfile.TemporaryDirectory(prefix="chronoseal-demo-")
        )
        with where as state:
            self.gateways = [self.gateway(org, Path(state)) for org in spec.data_providers()]
            agents = [
                GatewayAgent(
                    watch(f"{gw.name} gateway"),
                    gw,
                    self.analysis.address,
                    progress=self._progress_of(gw),
                    fetch=train,
                    feeds=_address_of(prediction, "feeds"),
                )
                for gw in self.gateways
            ]
            with crew:
                done = [crew.start(self.analysis.run), *(crew.start(a.run) for a in agents)]
                if prediction is not None:
                    crew.start(prediction.run)
                crew.until(self.analysis.streamed, *(a.streamed for a in agents))
                self._end_bars(agents)
                self.mark("stream")
                if train:
                    crew.until(self.analysis.released, *(a.fetched for a in agents))
                    self.mark("train")
                crew.until(*done)
                if prediction is not None:
                    crew.until(prediction.serving)
                    assert prediction.runtime is not None
                    served = self.ask(prediction.runtime)
                    crew.finish()
                    self.served = self.summarise(served, prediction)
                    self.mark("serve")
        out = []
        for r in (a.report for a in agents):
            assert r is not None
            gateway_side, runtime_side = self.consortium.commitments(self.task_id, r.party)
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
        return out, {a.gateway.name: a.release for a in agents if a.fetched.is_set()}

    def _end_bars(self, agents: list[GatewayAgent]) -> None:
        """Each stream's bar ends at the rows it sent (the source's row count, the bar's
        first total, includes rows outside the training window)."""
        for agent in agents:
            report = agent.report
            if self.progress is not None and report is not None and not report.earlier:
                self.progress(agent.gateway.name, report.rows_sent, report.rows_sent)

    def ask(self, prediction: PredictionRuntime) -> ServedForecasts:
        """Serving (claims 1, 5): every party asks for forecasts through its gateway (only
        the recipients are served), every request is audited in Merkle batches on chain,
        and every party checks its receipts against the chain."""
        spec = self.spec
        prediction.wait_feeds({ds.party for ds in spec.feed_datasets()}, timeout=30)
        served = ServedForecasts()
        answers: dict[str, list[Answer]] = {}
        for gw in self.gateways:
            client = self._client(gw.name)
            with client:
                client.open(prediction.address("forecasts"))
                answer = client.forecast()
                again = client.forecast(request_id=answer.request_id)  # a replay
                answers[gw.name] = [answer, again]
                for a in (answer, again):
                    if a.forecast is not None:
                        served.forecasts[gw.name] = a.forecast
                        self.log(
                            f"{gw.name} was served {len(a.forecast)} forecast rows "
                            f"(request {a.request_id[:8]}…)"
                        )
                    else:
                        self.log(f"{gw.name} was refused: [{a.refused}] {a.message}")
                answers[gw.name] += self._ask_with_input(client, gw, served)
        prediction.audit.flush()
        for gw in self.gateways:
            client = self._client(gw.name)
            with client:
                client.open(prediction.address("forecasts"))
                for a in answers[gw.name]:
                    receipt = client.receipt(a.audit_seq)
                    verify_receipt(receipt, self.consortium)
                    served.receipts.append(receipt)
        return served

    def summarise(self, served: ServedForecasts, prediction: PredictionAgent) -> ServedForecasts:
        """The serving stage's figures, once the prediction runtime posted its last batch."""
        assert prediction.runtime is not None
        stats = prediction.runtime.stats
        view = self.consortium.task(self.task_id)
        verified = len(served.receipts)
        served.summary = {
            "served": stats.served,
            "refused": stats.refused,
            "refusals": dict(sorted(stats.refusals.items())),
            "audit_batches": view.audit_batches,
            "audited": view.audited_predictions,
            "audit_verified": verified,
            "audit_lost": len(prediction.lost),
            "with_input": len(served.with_input),
        }
        self.log(
            f"{stats.served} forecasts served, {stats.refused} refused; "
            f"{view.audited_predictions} audit leaves in {view.audit_batches} "
            f"batch{'es' if view.audit_batches != 1 else ''} on chain; "
            f"{verified} receipts verified against the chain"
        )
        return served

    def _ask_with_input(
        self, client: ForecastClient, gw: Gateway, served: ServedForecasts
    ) -> list[Answer]:
        """A recipient holding series sends its own newest observations (the first half of
        the horizon after the training window, desensitized by its client): forecast for
        the rest of the horizon, which the feeds cover, and for the whole horizon, which
        they do not — refused as stale rather than forecast from missing covariates."""
        spec = self.spec
        holders = {d.party for d in spec.series_datasets()}
        if gw.name not in spec.release.forecasts.to or gw.name not in holders:
            return []
        h = spec.model.horizon
        periods = max(1, h // 2)
        rows = gw.rows_after_window(periods)
        if not rows.num_rows:
            self.log(f"{gw.name} holds no rows after the training window to send with a request")
            return []
        answers = []
        sent = f"its newest {rows.num_rows} rows ({periods} period{'s' if periods != 1 else ''})"
        for horizon in (h - periods, h) if h > periods else (h,):
            answer = client.forecast(observations=rows, horizon=horizon)
            answers.append(answer)
            if answer.forecast is None:
                self.log(
                    f"{gw.name} with {sent}, {horizon} periods ahead: refused "
                    f"[{answer.refused}] {answer.message}"
                )
                if answer.refused != "prediction.feed.stale":
                    break  # the observations themselves are refused: a longer ask is too
                continue
            dataset = gw.dataset()
            observed = pd.DataFrame(
                {
                    "ds": rows.column(dataset.time_column).to_pandas(),
                    "y": rows.column(spec.model.target.column).to_pandas(),
                }
            )
            served.with_input[gw.name] = (observed, answer.forecast)
            self.log(
                f"{gw.name} sent {sent}, desensitized, and was served "
                f"{len(answer.forecast)} forecast rows starting after them"
            )
        return answers

    def _client(self, org: str) -> ForecastClient:
        """``org``'s forecast client, through its gateway identity and registered key."""
        return ForecastClient(
            self.consortium,
            self.spec,
            party=org,
            sign=self._signer(org),
            attester=pinned_attester(self.spec, Component.GATEWAY),
        )

    def _signer(self, org: str) -> Callable[[bytes], bytes]:
        return party_signer(bytes(self._keys[org].key))

    def gateway(self, org: str, state: Path) -> Gateway:
        """``org``'s gateway for the task, acting with ``org``'s registered key."""
        return Gateway(
            self.consortium,
            self.scenario.parties[org],
            self.spec,
            config_dir=self.scenario.party_dirs[org],
            attester=pinned_attester(self.spec, Component.GATEWAY),
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
        """Each party's own reviewer (the agent ``chronoseal party serve`` runs) reads the
        proposal from the chain, checks it against its own spec copy and config, and approves
        (one by a signature the proposer relays) or refuses and aborts."""
        relayer = self.consortium.as_account(self._keys[self.scenario.proposer].key)
        for participant in spec.participants:
            org = participant.org
            agent = PartyAgent(
                self.consortium,
                self.scenario.parties[org],
                lambda: {tid: spec},
                self._keys[org],
                log=lambda message, event="agent.info": None,
                relay=relayer if org in self.scenario.relayed_approvals else None,
            )
            decision = agent.decisions.get("0x" + tid.hex())
            for made in agent.step():
                decision = made
            if decision is None or decision.action != "approved":
                problems = list(decision.problems) if decision else []
                raise ReviewRefused(org, problems or [("review.not_approved", "no approval")])
            how = (
                f"EIP-712 signature relayed by {self.scenario.proposer}"
                if org in self.scenario.relayed_approvals
                else "transaction"
            )
            self.log(f"{org} reviewed the task and approved it ({how})")


def pinned_tees(spec: TaskSpec) -> str:
    """The TEEs the task's pins name (what its runtimes run in), for a banner or summary."""
    return ", ".join(sorted({str(pin.tee) for pin in spec.measurements.pins().values()}))


def _address_of(agent: PredictionAgent | None, which: str) -> Callable[[], tuple[str, int]] | None:
    return None if agent is None else lambda: agent.address(which)


class _Crew:
    """The demo's agents, one thread each. The first to fail stops the others (their waits
    end with ``node.stopped``); the run then raises the cause: the first failure, by agent
    (analysis, gateways, prediction), that is not another's knock-on."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures: list[tuple[int, BaseException]] = []

    def start(self, run: Callable[[], object]) -> threading.Event:
        """Run ``run`` in a thread; the event is set when it returns."""
        done = threading.Event()
        rank = len(self._threads)

        def body() -> None:
            try:
                run()
            except BaseException as exc:  # handed to the demo's thread, raised there
                self._failures.append((rank, exc))
                self.stop.set()
            else:
                done.set()

        thread = threading.Thread(target=body, name=f"chronoseal-agent-{rank}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return done

    def until(self, *events: threading.Event) -> None:
        """Until every event is set; an agent's failure raises its cause at once."""
        while not all(e.is_set() for e in events):
            if self.stop.is_set():
                self.finish()
                raise LedgerError("the demo's agents were stopped", id="node.stopped")
            events[0].wait(0.05)

    def finish(self) -> None:
        """Stop every agent, wait for them all, and raise the cause if one failed."""
        self.stop.set()
        for thread in self._threads:
            thread.join()
        if self._failures:
            ranked = sorted(self._failures, key=lambda f: f[0])
            cause = next((e for _, e in ranked if not _knock_on(e)), ranked[0][1])
            raise cause

    def __enter__(self) -> _Crew:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.finish()
        else:  # the demo's own failure: stop the agents, keep that error
            self.stop.set()
            for thread in self._threads:
                thread.join()


def _knock_on(exc: BaseException) -> bool:
    return isinstance(exc, ChronosealError) and exc.id in KNOCK_ONS


def run_demo(
    scenario: ScenarioConfig,
    *,
    log: Log,
    chain: ChainBackend | None = None,
    progress: StreamProgress | None = None,
    analysis_progress: AnalysisProgress | None = None,
    until: Stage = "serving",
) -> DemoReport:
    """Run the task up to ``until`` (as far as it is built); return what the chain says.

    ``chain`` defaults to a fresh embedded chain; pass one to inspect it afterwards.
    """
    return DemoConsortium(scenario, log, chain, progress, analysis_progress).run(until)


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
    if key == "org" and isinstance(value, str) and int(value, 16) == 0:
        return "—"
    if key == "org" and isinstance(value, str):
        return world.consortium.org_name(bytes.fromhex(value.removeprefix("0x")))
    if key in {"to_state", "from_state"}:
        return TaskState(value).name.capitalize()
    if key == "kind" and isinstance(value, int) and value in {k.value for k in ChainComponent}:
        return ChainComponent(value).name.lower()
    if key == "tee" and isinstance(value, int):
        return ChainTee(value).name.lower().replace("_", "-")
    return value
