"""Components as long-running agents, each in its own process, coordinated only by the chain.

An agent loads its own configuration, decrypts its chain key from an encrypted keystore
(the passphrase comes from the environment, never from the command line or a file), attaches
to the consortium contract on a JSON-RPC node, and runs its part of the task's life (the
agents of :mod:`._lifecycle`, which the demo runs as threads). Nothing is shared between
agents but the chain and the attested channel.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.attest import Attester
from chronoseal.errors import (
    AnalysisError,
    ChainUnavailable,
    ConfigError,
    DataError,
    LedgerError,
)
from chronoseal.gateway import DEFAULT_BATCH_ROWS, Gateway, StreamReport
from chronoseal.ledger import (
    ChainComponent,
    Consortium,
    JsonRpcChain,
    TaskState,
)
from chronoseal.prediction import Receipt, party_signer, verify_receipt
from chronoseal.sources import ReadOrder, open_source
from chronoseal.spec import (
    Component,
    PartyConfig,
    TaskSpec,
    load_party_config,
    task_id,
)
from chronoseal.trust import pinned_attester

from ._health import Health, Log
from ._lifecycle import POLL_SECONDS, AnalysisAgent, GatewayAgent, PredictionAgent, Watch
from ._party import PartyAgent, load_task, spec_directory
from ._workers import ComputeOptions, analysis_compute

if TYPE_CHECKING:
    from chronoseal.analysis import AnalysisProgress, AnalysisRuntime
    from chronoseal.prediction import Answer, PredictionRuntime

PASSWORD_ENV = "CHRONOSEAL_KEY_PASSWORD"


def new_keystore(path: Path) -> str:
    """A fresh key in an encrypted keystore (eth keystore v3, scrypt); returns its address."""
    password = _password()
    account: LocalAccount = Account.create()
    doc = Account.encrypt(account.key, password)
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to overwrite a key", id="config.key.exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return str(account.address)


def load_key(path: Path) -> LocalAccount:
    """Decrypt a keystore with the passphrase from ``CHRONOSEAL_KEY_PASSWORD``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no keystore at {path}", id="config.key.missing") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a keystore: {exc}", id="config.key.invalid") from None
    try:
        key = Account.decrypt(doc, _password())
    except ValueError:
        raise ConfigError(
            f"cannot decrypt {path}: wrong passphrase in {PASSWORD_ENV}?", id="config.key.decrypt"
        ) from None
    account: LocalAccount = Account.from_key(key)
    return account


def _password() -> str:
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise ConfigError(
            f"set {PASSWORD_ENV} to the keystore passphrase (it is never taken from the "
            "command line, where other users could read it)",
            id="config.key.no_password",
        )
    return password


ATTACH_WAIT_SECONDS = 60.0


def attach(chain_url: str, contract: str, *, wait: float = ATTACH_WAIT_SECONDS) -> Consortium:
    """The consortium on a node that may still be starting (or restarting): retried for
    ``wait`` seconds before ``ledger.chain.unavailable``; any other refusal at once."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return Consortium.at(JsonRpcChain(chain_url), contract)
        except ChainUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_SECONDS)


def party_config_of(party_name: str, path: Path, role: str) -> PartyConfig:
    """``path`` must be the config of ``party_name`` (a gateway or reviewer started with
    another party's config would act for the wrong org)."""
    party = load_party_config(path)
    if party.party.name != party_name:
        raise ConfigError(
            f"this {role} acts for {party_name}, but {path} is the config of {party.party.name}",
            id="config.party.mismatch",
        )
    return party


def org_key(
    consortium: Consortium, party: str, key_path: Path | None, key: LocalAccount | None = None
) -> LocalAccount:
    """The party's chain key (``key``, or decrypted from ``key_path``), which the chain must
    register for ``party``."""
    if key is None:
        if key_path is None:
            raise ConfigError("no key given for " + party, id="config.key.missing")
        key = load_key(key_path)
    if consortium.org_of_key(key.address) != party:
        where = f" in {key_path}" if key_path is not None else ""
        raise ConfigError(
            f"the key{where} ({key.address}) is not registered on chain for {party}",
            id="config.key.not_registered",
        )
    return key


def serve_analysis(
    *,
    spec_path: Path,
    chain_url: str,
    contract: str,
    key_path: Path,
    listen: tuple[str, int],
    timeout: float,
    log: Callable[[str], None],
    progress: AnalysisProgress | None = None,
    io_timeout: float | None = 120.0,
    prediction: tuple[str, int] | None = None,
    health: Health | None = None,
    workers: int = 0,
    compute_options: ComputeOptions | None = None,
) -> AnalysisRuntime:
    """The analysis agent as a process: its spec, key and chain node from the command line
    (``prediction``: where the prediction runtime serves hand-over). ``workers``: the
    back-test runs on that many attested Dask workers (the task must pin their code), and on
    the remote ones of ``compute_options``."""
    from chronoseal.analysis import AnalysisRuntime  # the forecasting stack: only here

    spec, attester, consortium, key = _runtime_setup(
        spec_path, Component.ANALYSIS, chain_url, contract, key_path
    )
    remote = compute_options is not None and bool(compute_options.remote)
    if (workers or remote) and spec.measurements.analysis_worker is None:
        raise AnalysisError(
            f"{spec_path} pins no measurements.analysis_worker: the parties approved no "
            "worker code, so the analysis cannot run on workers",
            id="analysis.worker.not_pinned",
        )
    _abort_if_restarted(consortium, task_id(spec), key, log)

    def start() -> AnalysisRuntime:
        runtime = AnalysisRuntime(
            consortium,
            spec,
            attester=attester,
            chain_key=key.key,
            listen=listen,
            io_timeout=io_timeout,
            compute=analysis_compute(spec, workers, compute_options),
        )
        runtime.start()
        return runtime

    return AnalysisAgent(
        Watch(consortium, spec, timeout, log, health),
        start,
        progress=progress,
        prediction=(lambda: prediction) if prediction is not None else None,
    ).run()


def _runtime_setup(
    spec_path: Path, component: Component, chain_url: str, contract: str, key_path: Path
) -> tuple[TaskSpec, Attester, Consortium, LocalAccount]:
    """A runtime's task, attester, chain and key. The attester comes first: a host that
    cannot produce the pinned TEE's evidence says so before waiting for anything."""
    spec = load_task(spec_path)
    attester = pinned_attester(spec, component)
    return spec, attester, attach(chain_url, contract), load_key(key_path)


RESTART_REASON = "analysis.restart.state_lost"


def _abort_if_restarted(
    consortium: Consortium, tid: bytes, key: LocalAccount, log: Callable[[str], None]
) -> None:
    """A runtime restarted while the task binds it (Running, or Trained before the model
    was handed over) lost what it held in its TEE's memory — the parties' data, the sealed
    model — and cannot finish: it aborts the task on chain with a reason id instead of
    leaving it to hang until its deadline."""
    try:
        view = consortium.task(tid)
    except LedgerError as exc:
        if exc.id == "ledger.task.unknown":
            return
        raise
    if view.state not in (TaskState.RUNNING, TaskState.TRAINED) or view.prediction is not None:
        return
    if not view.binds(ChainComponent.ANALYSIS, key.address):
        return
    consortium.as_component(key.key).abort_as_component(tid, RESTART_REASON)
    log(
        f"this runtime was restarted while task 0x{tid.hex()} was {view.state.name.title()}: "
        f"what it held in memory is gone, so it aborted the task on chain ({RESTART_REASON})"
    )
    raise AnalysisError(
        f"restarted while the task was {view.state.name.title()}: aborted on chain",
        id=RESTART_REASON,
    )


def serve_gateway(
    *,
    party_name: str,
    party_config: Path,
    spec_path: Path,
    chain_url: str,
    contract: str,
    key_path: Path,
    runtime: tuple[str, int],
    state_dir: Path,
    timeout: float,
    log: Callable[[str], None],
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int, int], None] | None = None,
    prediction: tuple[str, int] | None = None,
    health: Health | None = None,
) -> tuple[StreamReport, dict[str, Any]]:
    """The gateway agent as a process: its party config, spec, key and chain node from the
    command line (``prediction``: the prediction runtime's hand-over; feeds on the next port)."""
    party = party_config_of(party_name, party_config, "gateway")
    spec = load_task(spec_path)
    attester = pinned_attester(spec, Component.GATEWAY)
    consortium = attach(chain_url, contract)
    key = org_key(consortium, party_name, key_path)
    gateway = Gateway(
        consortium,
        party,
        spec,
        config_dir=party_config.parent,
        attester=attester,
        org_key=key,
        state_dir=state_dir,
        batch_rows=batch_rows,
    )
    feeds = None if prediction is None else (prediction[0], prediction[1] + 1)
    return GatewayAgent(
        Watch(consortium, spec, timeout, log, health),
        gateway,
        lambda: runtime,
        progress=progress,
        feeds=(lambda: feeds) if feeds is not None else None,
    ).run()


def serve_prediction(
    *,
    spec_path: Path,
    chain_url: str,
    contract: str,
    key_path: Path,
    listen: tuple[str, int],
    timeout: float,
    serve_for: float,
    log: Callable[[str], None],
    audit_max_age: float = 5.0,
    health: Health | None = None,
    state_dir: Path | None = None,
    recheck_interval: float = 5.0,
) -> PredictionRuntime:
    """The prediction agent as a process (hand-over on ``listen``'s port, feeds on the
    next, forecasts on the one after); SIGTERM ends its serving."""
    from chronoseal.prediction import PredictionRuntime  # the forecasting stack: only here

    spec, attester, consortium, key = _runtime_setup(
        spec_path, Component.PREDICTION, chain_url, contract, key_path
    )

    def start() -> PredictionRuntime:
        runtime = PredictionRuntime(
            consortium,
            spec,
            attester=attester,
            chain_key=key.key,
            listen=listen,
            audit_max_age=audit_max_age,
            state_dir=state_dir,
            recheck_interval=recheck_interval,
        )
        runtime.start()
        return runtime

    stop = threading.Event()
    agent = PredictionAgent(
        Watch(consortium, spec, timeout, log, health, stop), start, serve_for=serve_for
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return agent.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def query_forecast(
    *,
    spec_path: Path,
    chain_url: str,
    contract: str,
    key_path: Path | None,
    party: str,
    prediction: tuple[str, int],
    series: list[str],
    receipt_timeout: float = 60.0,
    key: LocalAccount | None = None,
    observations: str | Path | None = None,
    horizon: int | None = None,
) -> tuple[Answer, Receipt]:
    """One forecast request through the party's gateway identity, and its audit receipt
    once on chain (checked against the chain before it is returned). ``key`` stands in for
    the keystore when the caller holds the key already; ``observations`` (a CSV or Parquet
    file, or a source URL) are the party's own rows since the training window."""
    from chronoseal.prediction import ForecastClient

    spec = load_task(spec_path)
    rows = read_observations(spec, party, observations) if observations is not None else None
    attester = pinned_attester(spec, Component.GATEWAY)
    consortium = attach(chain_url, contract)
    key = org_key(consortium, party, key_path, key)
    sign = party_signer(bytes(key.key))
    with ForecastClient(consortium, spec, party=party, sign=sign, attester=attester) as client:
        client.open(prediction)
        answer = client.forecast(series or None, observations=rows, horizon=horizon)
        receipt = client.receipt(answer.audit_seq, timeout=receipt_timeout)
    verify_receipt(receipt, consortium)
    return answer, receipt


def read_observations(spec: TaskSpec, party: str, location: str | Path) -> pa.Table:
    """A party's newest observations, read as its gateway reads its source (a ``.csv`` or
    ``.parquet`` path, or a source URL), in stored order: the runtime checks the order."""
    from chronoseal.prediction import MAX_INPUT_ROWS, input_dataset

    dataset = input_dataset(spec, party)
    text = str(location)
    path = Path(text)
    if path.suffix in (".csv", ".parquet") and not text.startswith(("csv:", "parquet:")):
        if not path.is_file():
            raise ConfigError(f"no observations file {path}", id="config.file.missing")
        text = f"{path.suffix[1:]}:{path.resolve()}"
    source = open_source(text, base_dir=Path.cwd())
    source.check(dataset)
    order: ReadOrder = "stored" if source.stored_order_reproducible else "sorted"
    batches = []
    rows = 0
    for batch in source.batches(dataset.columns(), order=order):
        rows += batch.num_rows
        if rows > MAX_INPUT_ROWS:
            raise DataError(
                f"{location} holds more than {MAX_INPUT_ROWS} rows: send the observations since "
                "the training window, not a history",
                id="prediction.input.too_large",
            )
        batches.append(batch)
    if not batches:
        raise DataError(f"{location} holds no rows", id="prediction.input.empty")
    return pa.Table.from_batches(batches)


def serve_party(
    *,
    party_name: str,
    party_config: Path,
    specs: Path,
    chain_url: str,
    contract: str,
    key_path: Path,
    state_dir: Path,
    log: Log,
    health: Health | None = None,
    serve_for: float | None = None,
    poll: float = 2.0,
    stop: threading.Event | None = None,
    relay_key_path: Path | None = None,
) -> PartyAgent:
    """Watch the chain for tasks that name this party; review each against the specs in
    ``specs`` (a file or a directory of them) and approve or refuse it; keep watch over the
    tasks it approved. Runs ``serve_for`` seconds (None: until SIGTERM or ``stop``). With
    ``relay_key_path``, approvals are EIP-712 signatures that account submits (and pays for)."""
    party = party_config_of(party_name, party_config, "party agent")
    consortium = attach(chain_url, contract)
    key = org_key(consortium, party_name, key_path)
    relay = None
    if relay_key_path is not None:
        relay = consortium.as_account(load_key(relay_key_path).key)
    agent = PartyAgent(
        consortium,
        party,
        spec_directory(specs, log),
        key,
        log=log,
        state_dir=state_dir,
        relay=relay,
        health=health,
    )
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    end = None if serve_for is None else time.monotonic() + serve_for
    log(f"watching the chain for tasks that name {party_name}", event="party.watching")
    down = False
    try:
        while not stop.is_set():
            try:
                agent.step()
                if down:
                    log("the chain node answers again", event="agent.chain.back")
                down = False
            except ChainUnavailable as exc:
                if not down:
                    log(f"the chain node is unreachable: retrying ({exc.message})", event=exc.id)
                    if health is not None:
                        health.set_ready(False, exc.id)
                down = True
            if health is not None:
                health.beat()
            if end is not None and time.monotonic() >= end:
                break
            stop.wait(poll if end is None else min(poll, max(0.0, end - time.monotonic())))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return agent
