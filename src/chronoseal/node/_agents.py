"""Components as long-running agents, each in its own process, coordinated only by the chain.

An agent loads its own configuration, decrypts its chain key from an encrypted keystore
(the passphrase comes from the environment, never from the command line or a file), attaches
to the consortium contract on a JSON-RPC node, waits for the task to reach the state it acts
in, and does its job. Nothing is shared between agents but the chain and the attested channel.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chronoseal.errors import (
    AnalysisError,
    ChainUnavailable,
    ChronosealError,
    ConfigError,
    DataError,
    LedgerError,
)
from chronoseal.gateway import (
    DEFAULT_BATCH_ROWS,
    Gateway,
    StreamReport,
    is_analysis_attestation,
)
from chronoseal.ledger import (
    ChainComponent,
    ChainEvent,
    Consortium,
    EventStream,
    JsonRpcChain,
    TaskState,
    read_events,
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
from ._party import PartyAgent, load_task, spec_directory

if TYPE_CHECKING:
    from chronoseal.analysis import AnalysisProgress, AnalysisRuntime
    from chronoseal.prediction import Answer, PredictionRuntime

PASSWORD_ENV = "CHRONOSEAL_KEY_PASSWORD"
POLL_SECONDS = 0.5


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


def wait_for(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    log: Callable[[str], None],
    health: Health | None = None,
) -> None:
    """Poll the chain until ``ready()``; refusals inside ``ready`` propagate at once, an
    unreachable node (restarting, say) is waited for within the same timeout."""
    log(f"waiting for {what}")
    deadline = time.monotonic() + timeout
    down: ChainUnavailable | None = None
    while True:
        try:
            done = ready()
        except ChainUnavailable as exc:
            if down is None:
                log(f"the chain node is unreachable ({exc.message}); retrying")
                if health is not None:
                    health.set_ready(False, exc.id)
            down, done = exc, False
        else:
            if down is not None:
                log("the chain node answers again")
                if health is not None:
                    health.set_ready(True)
            down = None
        if health is not None:
            health.beat()
        if done:
            return
        if time.monotonic() > deadline:
            if down is not None:
                raise down
            raise LedgerError(
                f"gave up waiting for {what} after {timeout:.0f} s", id="node.timeout"
            )
        time.sleep(POLL_SECONDS)


def _state_is(consortium: Consortium, spec: TaskSpec, *states: TaskState) -> Callable[[], bool]:
    tid = task_id(spec)

    def ready() -> bool:
        try:
            state = consortium.task_state(tid)
        except LedgerError:
            return False
        if state in (TaskState.ABORTED, TaskState.DISPUTED, TaskState.RETIRED):
            raise LedgerError(f"task 0x{tid.hex()} is {state.name}", id="node.task.final")
        return state in states

    return ready


def abort_reason(consortium: Consortium, tid: bytes) -> str | None:
    """The refusal id a runtime put on chain when it aborted the task, if one did."""
    for event in read_events(consortium):
        if event.name == "ComponentAborted" and event.args.get("task_id") == "0x" + tid.hex():
            return str(event.args.get("reason"))
    return None


def logged_progress(
    log: Callable[[str], None], clock: Callable[[], float] = time.monotonic
) -> AnalysisProgress:
    """The analysis progress as log lines: each stage's first step, every tenth of it, and
    its end, with the fits done, to do, and the time left at the pace so far."""
    started: dict[str, float] = {}
    said: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        now = clock()
        start = started.setdefault(stage, now)
        tenth = done * 10 // total if total else 10
        if done and said.get(stage) == tenth:
            return
        said[stage] = tenth
        if done == 0:
            log(f"analysis {stage}: {total} fits to run")
            return
        left = (now - start) / done * (total - done)
        log(f"analysis {stage}: {done}/{total} fits, about {left:.0f} s left")

    return report


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
) -> AnalysisRuntime:
    """Wait for the task to be Approved, attest, serve gateways until every stream is in,
    train and commit the model, serve each party its release, then (``prediction``: where
    the prediction runtime serves hand-over) hand the sealed model over."""
    from chronoseal.analysis import AnalysisRuntime  # the forecasting stack: only here

    spec = load_task(spec_path)
    # before waiting for anything: a host that cannot produce the pinned TEE's evidence says so
    attester = pinned_attester(spec, Component.ANALYSIS)
    consortium = attach(chain_url, contract)
    key = load_key(key_path)
    _abort_if_restarted(consortium, task_id(spec), key, log)
    wait_for(
        "the task to be approved",
        _state_is(consortium, spec, TaskState.APPROVED),
        timeout=timeout,
        log=log,
        health=health,
    )
    runtime = AnalysisRuntime(
        consortium,
        spec,
        attester=attester,
        chain_key=key.key,
        listen=listen,
        io_timeout=io_timeout,
    )
    runtime.start()
    host, port = runtime.address
    log(f"attested and recorded on chain; serving gateways on {host}:{port}")
    if health is not None:
        health.set_ready(True)
    try:
        if not runtime.wait(timeout):
            raise LedgerError(
                "not every data provider's stream arrived in time", id="analysis.intake.incomplete"
            )
        log("every stream is in and matched on chain: training")
        with _busy(health):
            trained = runtime.analyse(progress or logged_progress(log))
        log(
            f"model committed on chain (0x{trained.commitment.hex()}); serving releases to "
            f"{', '.join(sorted(trained.releases.documents))}"
        )
        if not runtime.wait_released(timeout):
            missing = set(trained.releases.documents) - runtime.released_to
            log(f"gave up waiting for {', '.join(sorted(missing))} to fetch their releases")
        if prediction is not None:
            events = EventStream(consortium)
            tid = runtime.task_id
            wait_for(
                "an attested prediction runtime",
                lambda: any(_is_prediction_attestation(e, tid) for e in events.poll()),
                timeout=timeout,
                log=log,
                health=health,
            )
            bound = runtime.hand_over(prediction)
            log(f"model handed over to the prediction runtime {bound}")
    finally:
        runtime.stop()
    return runtime


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


def _is_prediction_attestation(event: ChainEvent, tid: bytes) -> bool:
    return bool(
        event.name == "AttestationPosted"
        and event.args.get("task_id") == "0x" + tid.hex()
        and event.args.get("kind") == ChainComponent.PREDICTION
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
    """Wait until the task is Approved and a runtime attested for it, stream once (resuming
    after a restart), then wait for Trained and fetch (and check against the chain) what
    the task releases to us."""
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
    # Running too: a gateway restarted mid-stream resumes from what the runtime holds; and
    # Trained: one restarted after its commitment only fetches its release
    approved = _state_is(consortium, spec, TaskState.APPROVED, TaskState.RUNNING, TaskState.TRAINED)
    events = EventStream(consortium)  # read incrementally: each poll sees only new blocks
    attested = False

    def runtime_attested() -> bool:
        nonlocal attested
        attested = attested or any(
            is_analysis_attestation(e, gateway.task_id) for e in events.poll()
        )
        return attested and approved()

    wait_for(
        "an attested analysis runtime", runtime_attested, timeout=timeout, log=log, health=health
    )
    if consortium.task_state(gateway.task_id) is TaskState.TRAINED:
        report = gateway.committed_earlier()
        log("the task was trained while this gateway was down; its stream was committed")
    else:
        with _busy(health):
            report = gateway.run(runtime, progress)
    log("stream committed; waiting for the model to be trained")
    wait_for_trained(consortium, gateway.task_id, timeout=timeout, log=log, health=health)
    release = fetch_release_when_ready(gateway, runtime, timeout=timeout)
    if prediction is not None and party_name in {d.party for d in spec.feed_datasets()}:
        wait_for(
            "the task to be Serving",
            _state_is(consortium, spec, TaskState.SERVING),
            timeout=timeout,
            log=log,
            health=health,
        )
        host, port = prediction
        rows = gateway.send_feed((host, port + 1))
        log(f"fed the prediction runtime {rows} rows after the training window")
    return report, release


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
    """Wait for Trained, attest, take the model over from the bound analysis runtime
    (hand-over on ``listen``'s port, feeds on the next, forecasts on the one after), serve
    forecasts for ``serve_for`` seconds (or until SIGTERM), then post the last audit batch."""
    from chronoseal.prediction import PredictionRuntime  # the forecasting stack: only here

    spec = load_task(spec_path)
    attester = pinned_attester(spec, Component.PREDICTION)
    consortium = attach(chain_url, contract)
    key = load_key(key_path)
    wait_for(
        "the model to be trained",
        _state_is(consortium, spec, TaskState.TRAINED, TaskState.SERVING),
        timeout=timeout, log=log, health=health,
    )  # fmt: skip
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
    if runtime.resumed is not None:
        r = runtime.resumed
        log(
            f"restarted while Serving: took the model back from sealed state (hash re-checked "
            f"on chain), {r.feeds} feeds, {r.leaves} journaled audit leaves, {r.pending} of "
            "them not yet on chain (posted next)"
        )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        log(f"attested and recorded on chain; hand-over on {listen[0]}:{listen[1]}")
        if not runtime.wait_serving(timeout):
            raise runtime.refusal or LedgerError(
                "no analysis runtime handed the model over in time",
                id="prediction.handover.timeout",
            )
        host, port = runtime.address("forecasts")
        log(f"model taken over, task Serving; forecasts on {host}:{port}")
        if health is not None:
            health.set_ready(True)
        with _busy(health):
            stop.wait(serve_for)
    finally:
        signal.signal(signal.SIGTERM, previous)
        lost = runtime.stop()
        if lost:
            log(f"{len(lost)} audit records could not be posted on chain")
    return runtime


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


def fetch_release_when_ready(
    gateway: Gateway, runtime: tuple[str, int], *, timeout: float
) -> dict[str, Any]:
    """The party's release, once the runtime holds it: the chain's head says Trained as
    soon as the commitment is mined, the runtime counts it only ``confirmations`` blocks
    later (a Clique chain), so ``analysis.release.not_ready`` in between is waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return gateway.fetch_release(runtime)
        except ChronosealError as exc:
            if exc.id != "analysis.release.not_ready" or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def wait_for_trained(
    consortium: Consortium,
    tid: bytes,
    *,
    timeout: float,
    log: Callable[[str], None],
    health: Health | None = None,
) -> None:
    """Until the model is committed; an abort by the runtime surfaces with its reason id."""

    def trained() -> bool:
        state = consortium.task_state(tid)
        if state is TaskState.ABORTED:
            reason = abort_reason(consortium, tid)
            raise LedgerError(
                f"task 0x{tid.hex()} was aborted"
                + (f" by the analysis runtime: {reason}" if reason else ""),
                id=reason or "node.task.aborted",
            )
        if state in (TaskState.DISPUTED, TaskState.RETIRED):
            raise LedgerError(f"task 0x{tid.hex()} is {state.name}", id="node.task.final")
        return state in (TaskState.TRAINED, TaskState.SERVING)

    wait_for("the model to be trained", trained, timeout=timeout, log=log, health=health)


def _busy(health: Health | None) -> AbstractContextManager[None]:
    return health.busy() if health is not None else nullcontext()


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
