"""``chronoseal run SCENARIO --rpc URL[,URL...]``: the scenario with one OS process per
component and per party, coordinated only through the chain.

The runner founds the consortium (deploys the contract for the scenario's members, has
each register and approve the pinned measurements, proposes the task for the proposer) —
the one-off ceremony a real consortium does by hand — then only starts processes: a
``party serve`` per participant (each reviews and approves for itself), an ``analysis
serve``, a ``predict serve`` and a ``gateway serve`` per data provider. From then on it
reads the chain like anyone else, asks for each party's forecast with that party's key, and
ends with the audit from the chain alone. With several URLs (the members' validators, in
member order) each party's agent and gateway use that member's node first, the runtimes the
next ones. Each process writes JSON-lines logs under the
work directory; any process that fails stops the run with its last lines.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.errors import ChronosealError, LedgerError
from chronoseal.ledger import ChainBackend, JsonRpcChain, TaskState
from chronoseal.prediction import Answer, Receipt

from ._agents import PASSWORD_ENV, query_forecast
from ._demo import FUNDING_WEI, DemoConsortium, DemoReport, PartyReport, ServedForecasts
from ._lifecycle import KNOCK_ONS

if TYPE_CHECKING:
    from ._config import ScenarioConfig

Log = Callable[[str], None]
ANVIL_ENV = "CHRONOSEAL_ANVIL"


class RunError(ChronosealError):
    """A process of a multi-process run failed or did not finish in time."""

    default_id = "run.failed"


def find_anvil() -> str | None:
    """anvil from ``CHRONOSEAL_ANVIL``, a checkout's ``.cache`` (``scripts/anvil``), or PATH."""
    explicit = os.environ.get(ANVIL_ENV)
    if explicit:
        return explicit
    checkout = Path(__file__).resolve().parents[3]
    for candidate in sorted(
        checkout.glob(".cache/anvil/node_modules/@foundry-rs/anvil-*/bin/anvil")
    ):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("anvil")


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive TCP ports free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + n >= 65536:
            continue
        held = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RunError("no run of free ports on 127.0.0.1", id="run.ports")


@dataclass
class Anvil:
    """A local anvil node the run started (and stops), its state kept in a file."""

    proc: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, work: Path, timeout: float = 30.0, port: int | None = None) -> Anvil:
        """A node on 127.0.0.1 (``port`` or any free one) whose state is loaded from and
        written to ``work/anvil-state.json``, so a restart continues the same chain."""
        binary = find_anvil()
        if binary is None:
            raise RunError(
                f"--rpc anvil needs the anvil binary: install it with scripts/anvil (npm "
                f"@foundry-rs/anvil) or set {ANVIL_ENV}",
                id="run.anvil.missing",
            )
        port = port or free_ports(1)
        state = work / "anvil-state.json"
        proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--silent", "--state", str(state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                JsonRpcChain(url).close()
                return cls(proc, url)
            except LedgerError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RunError(f"anvil did not start on {url}", id="run.anvil.start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _knock_on(tail: str) -> bool:
    """A component's last log lines name a knock-on of another's failure (KNOCK_ONS)."""
    return any(k in tail for k in KNOCK_ONS)


@dataclass
class _Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    out: IO[bytes]

    def tail(self, n: int = 12) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


@dataclass
class _Fleet:
    """The run's processes: started, watched, stopped — never left behind."""

    work: Path
    env: dict[str, str]
    procs: dict[str, _Proc] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> _Proc:
        log_path = self.work / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "chronoseal", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = _Proc(name, proc, log_path, out)
        return self.procs[name]

    def _failed(self) -> list[_Proc]:
        return [p for p in self.procs.values() if p.proc.poll() not in (None, 0)]

    def check(self, settle: float = 3.0) -> None:
        """Any process that exited with an error ends the run, with its last log lines: the
        one whose own check refused, not a gateway stopped because that party aborted the
        task (``gateway.task.not_running``), which may exit a moment before it."""
        failed = self._failed()
        deadline = time.monotonic() + settle
        while failed and all(_knock_on(p.tail()) for p in failed):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
            failed = self._failed()
        if failed:
            p = next((p for p in failed if not _knock_on(p.tail())), failed[0])
            raise RunError(
                f"{p.name} exited with code {p.proc.poll()}; its last log lines:\n{p.tail()}",
                id="run.component.failed",
                context={"component": p.name, "log": str(p.log_path)},
            )

    def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(self.procs[n].proc.poll() is None for n in names):
            self.check()
            if time.monotonic() > deadline:
                late = [n for n in names if self.procs[n].proc.poll() is None]
                raise RunError(
                    f"{', '.join(late)} did not finish within {timeout:.0f} s",
                    id="run.timeout",
                )
            time.sleep(0.3)
        self.check()

    def stop(self, name: str, timeout: float = 60.0) -> int:
        p = self.procs[name]
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                p.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
        p.out.close()
        return int(p.proc.returncode)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name, timeout=10)


def _keystore(path: Path, account: LocalAccount, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(Account.encrypt(account.key, password), f)


def run_separate(
    scenario: ScenarioConfig,
    *,
    chain: ChainBackend,
    chain_url: str,
    work: Path,
    log: Log,
    timeout: float = 900.0,
) -> DemoReport:
    """The scenario through Serving with one process per component and per party."""
    world = DemoConsortium(scenario, log, chain)
    spec = world.spec
    password = secrets.token_urlsafe(24)
    env = {**os.environ, PASSWORD_ENV: password, "PYTHONUNBUFFERED": "1"}
    keys = work / "keys"
    accounts: dict[str, LocalAccount] = {}
    for name in [*scenario.members, "analysis", "prediction"]:
        account: LocalAccount = Account.create()
        _keystore(keys / f"{name}.json", account, password)
        chain.fund(account.address, FUNDING_WEI)
        accounts[name] = account
    for org in scenario.members:  # each party acts with its own rotated key
        world.org(org).add_key(accounts[org].address)
    world.name_component(accounts["analysis"].address, "analysis runtime")
    world.name_component(accounts["prediction"].address, "prediction runtime")
    urls = [u.strip() for u in chain_url.split(",") if u.strip()]

    def node_of(i: int) -> list[str]:
        """Process ``i``'s node first (party i -> member i's validator), the rest as
        fallbacks; with one URL every process shares it."""
        own = i % len(urls)
        ordered = ",".join(urls[own:] + urls[:own])
        return ["--chain", ordered, "--contract", world.consortium.address]

    party_index = {org: i for i, org in enumerate(scenario.members)}
    common = node_of(len(scenario.members))
    analysis_port = free_ports(1)
    prediction_port = free_ports(3)
    fleet = _Fleet(work, env)
    spec_dir = work / "specs"
    spec_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(scenario.spec_path, spec_dir / scenario.spec_path.name)
    json_logs = ["--log-format", "json"]
    try:
        for participant in spec.participants:
            org = participant.org
            relay = []  # as in one process: the proposer's account submits the signature
            if org in scenario.relayed_approvals:
                relay = ["--relay-key-file", str(keys / f"{scenario.proposer}.json")]
            fleet.start(
                f"party-{org}", "party", "serve", "--party", org,
                "--config", str(scenario.party_paths[org]), "--specs", str(spec_dir),
                *node_of(party_index[org]), "--key-file", str(keys / f"{org}.json"),
                "--state-dir", str(work / "state" / org), *relay, *json_logs,
            )  # fmt: skip
        world.propose()
        log(f"started {len(spec.participants)} party agents; each reviews and approves itself")
        fleet.start(
            "analysis", "analysis", "serve", "--spec", str(scenario.spec_path), *common,
            "--key-file", str(keys / "analysis.json"), "--listen", f"127.0.0.1:{analysis_port}",
            "--prediction", f"127.0.0.1:{prediction_port}", "--timeout", str(timeout),
            *json_logs, *_worker_args(scenario, work),
        )  # fmt: skip
        fleet.start(
            "prediction", "predict", "serve", "--spec", str(scenario.spec_path),
            *node_of(len(scenario.members) + 1),
            "--key-file", str(keys / "prediction.json"),
            "--listen", f"127.0.0.1:{prediction_port}", "--timeout", str(timeout),
            "--serve-for", str(timeout), "--audit-max-age", "1",
            "--state-dir", str(work / "state" / "prediction"), *json_logs,
        )  # fmt: skip
        gateways = []
        for org in spec.data_providers():
            name = f"gateway-{org}"
            gateways.append(name)
            fleet.start(
                name, "gateway", "serve", "--party", org,
                "--config", str(scenario.party_paths[org]), "--spec", str(scenario.spec_path),
                *node_of(party_index[org]), "--key-file", str(keys / f"{org}.json"),
                "--runtime", f"127.0.0.1:{analysis_port}",
                "--prediction", f"127.0.0.1:{prediction_port}",
                "--state-dir", str(work / "state" / org),
                "--summary-out", str(work / "out" / f"{org}.json"),
                "--timeout", str(timeout), *json_logs,
            )  # fmt: skip
        log(
            f"started the analysis runtime, the prediction runtime and {len(gateways)} "
            f"gateways as separate processes (logs in {work / 'logs'})"
        )
        world.mark("start")
        fleet.wait([*gateways, "analysis"], timeout)
        _wait_state(world, TaskState.SERVING, fleet, timeout)
        world.mark("approve, stream, train, hand over")
        log("every gateway streamed and got its release; the model was handed over (Serving)")
        served = _ask_everyone(world, scenario, accounts, chain_url, prediction_port + 2, log)
        fleet.stop("prediction")
        world.mark("serve")
        for participant in spec.participants:
            fleet.stop(f"party-{participant.org}")
        fleet.check()
        view = world.consortium.task(world.task_id)
        served.summary.update(
            {"audit_batches": view.audit_batches, "audited": view.audited_predictions}
        )
        world.served = served
        if scenario.workers:
            doc = json.loads((work / "out" / "analysis-workers.json").read_text("utf-8"))
            world.workers_reported = list(doc["workers"])
        parties, releases = _gateway_outputs(world, work)
        return world.report(parties, releases)
    finally:
        fleet.close()


def _worker_args(scenario: ScenarioConfig, work: Path) -> list[str]:
    """``analysis serve``'s Dask workers, and where it writes what it recorded of them."""
    if not scenario.workers:
        return []
    out = work / "out" / "analysis-workers.json"
    return ["--workers", str(scenario.workers), "--workers-out", str(out)]


def _wait_state(world: DemoConsortium, state: TaskState, fleet: _Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while world.consortium.task_state(world.task_id) is not state:
        fleet.check()
        if time.monotonic() > deadline:
            raise RunError(f"the task did not reach {state.name} in time", id="run.timeout")
        time.sleep(0.3)


def _ask_everyone(
    world: DemoConsortium,
    scenario: ScenarioConfig,
    accounts: dict[str, LocalAccount],
    chain_url: str,
    port: int,
    log: Log,
) -> ServedForecasts:
    """Each participant asks for the forecast with its own key: recipients are served, the
    others refused; every receipt is checked against the chain."""
    served = ServedForecasts()
    answers: list[Answer] = []
    receipts: list[Receipt] = []
    for participant in world.spec.participants:
        org = participant.org
        answer, receipt = query_forecast(
            spec_path=scenario.spec_path,
            chain_url=chain_url,
            contract=world.consortium.address,
            key_path=None,
            key=accounts[org],
            party=org,
            prediction=("127.0.0.1", port),
            series=[],
        )
        answers.append(answer)
        receipts.append(receipt)
        if answer.forecast is not None:
            served.forecasts[org] = answer.forecast
            log(f"{org} was served {len(answer.forecast)} forecast rows")
        else:
            log(f"{org} was refused: [{answer.refused}] {answer.message}")
    refusals: dict[str, int] = {}
    for a in answers:
        if a.refused:
            refusals[a.refused] = refusals.get(a.refused, 0) + 1
    served.receipts = receipts
    served.summary = {
        "served": sum(a.forecast is not None for a in answers),
        "refused": sum(a.refused is not None for a in answers),
        "refusals": dict(sorted(refusals.items())),
        "audit_verified": len(receipts),
        "audit_lost": 0,
    }
    return served


def _gateway_outputs(
    world: DemoConsortium, work: Path
) -> tuple[list[PartyReport], dict[str, dict[str, Any]]]:
    parties, releases = [], {}
    for org in world.spec.data_providers():
        doc = json.loads((work / "out" / f"{org}.json").read_text(encoding="utf-8"))
        stream = doc["stream"]
        gateway_side, runtime_side = world.consortium.commitments(world.task_id, org)
        parties.append(
            PartyReport(
                name=org,
                rows_sent=int(stream["rows_sent"]),
                bytes_sent=int(stream["bytes_sent"]),
                commitment=str(stream["commitment"]),
                commitment_matched=gateway_side is not None and gateway_side == runtime_side,
            )
        )
        releases[org] = doc["release"]
    return parties, releases
