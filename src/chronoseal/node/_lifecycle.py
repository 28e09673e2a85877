"""Each component's part of the task's life, written once.

``chronoseal analysis serve``, ``gateway serve`` and ``predict serve`` run one agent each
in its own process (``chronoseal run --rpc``); the demo and :meth:`Scenario.run` run the
same agents as threads on one embedded chain. An agent waits on the chain for the state it
acts in and does its job; nothing else coordinates them. What an agent holds (its runtime,
its stream, its release) stays readable on it for whoever started it.

``stop`` ends an agent: every wait raises ``node.stopped`` at once (the demo sets it when
another agent failed, so nobody waits out a timeout for a task that cannot go on), and a
prediction runtime stops serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from chronoseal.errors import ChainUnavailable, ChronosealError, LedgerError
from chronoseal.gateway import Gateway, StreamReport, is_analysis_attestation
from chronoseal.ledger import (
    ChainComponent,
    ChainEvent,
    Consortium,
    EventStream,
    TaskState,
    read_events,
)
from chronoseal.spec import TaskSpec, task_id

from ._health import Health

if TYPE_CHECKING:
    from chronoseal.analysis import AnalysisProgress, AnalysisRuntime
    from chronoseal.prediction import AuditLeaf, PredictionRuntime

POLL_SECONDS = 0.5

Say = Callable[[str], None]
Address = Callable[[], tuple[str, int]]
T = TypeVar("T")

#: What an agent raises when another party's abort (or the run's own stop) ended it: a
#: knock-on, not a cause (the task left Approved under it, its acknowledgement reverted on
#: the aborted task, the analysis runtime it was connecting to stopped with the task, it
#: found the task ended while it waited for a later state, or the run stopped it).
KNOCK_ONS = (
    "gateway.task.not_running",
    "ledger.task.bad_state",
    "channel.transport.failed",
    "node.task.final",
    "node.task.aborted",
    "node.stopped",
    "analysis.task.aborted",
    "analysis.task.disputed",
)


def _stopped(what: str) -> LedgerError:
    return LedgerError(f"stopped while waiting for {what}", id="node.stopped")


def wait_for(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    log: Say,
    health: Health | None = None,
    stop: threading.Event | None = None,
    poll: float = POLL_SECONDS,
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
        if stop is None:
            time.sleep(poll)
        elif stop.wait(poll):
            raise _stopped(what)


def _within(
    what: str,
    done: Callable[[float], bool],
    *,
    timeout: float,
    stop: threading.Event | None,
    poll: float,
) -> bool:
    """``done(slice)`` (a runtime's own blocking wait) until true, the timeout, or stop."""
    deadline = time.monotonic() + timeout
    while not done(min(poll, max(0.0, deadline - time.monotonic()))):
        if stop is not None and stop.is_set():
            raise _stopped(what)
        if time.monotonic() >= deadline:
            return False
    return True


def state_is(consortium: Consortium, tid: bytes, *states: TaskState) -> Callable[[], bool]:
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


def is_trained(consortium: Consortium, tid: bytes) -> Callable[[], bool]:
    """The model is committed; an abort by the runtime surfaces with its reason id."""

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

    return trained


def logged_progress(log: Say, clock: Callable[[], float] = time.monotonic) -> AnalysisProgress:
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


def busy(health: Health | None) -> AbstractContextManager[None]:
    return health.busy() if health is not None else nullcontext()


def _is_prediction_attestation(event: ChainEvent, tid: bytes) -> bool:
    return bool(
        event.name == "AttestationPosted"
        and event.args.get("task_id") == "0x" + tid.hex()
        and event.args.get("kind") == ChainComponent.PREDICTION
    )


@dataclass(frozen=True)
class Watch:
    """How an agent follows the task on chain: the chain, the task, how long and how often
    it waits, where it logs, its health probes, and the event that stops it."""

    consortium: Consortium
    spec: TaskSpec
    timeout: float
    log: Say
    health: Health | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    poll: float = POLL_SECONDS

    @property
    def task_id(self) -> bytes:
        return task_id(self.spec)

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        wait_for(
            what,
            ready,
            timeout=self.timeout,
            log=self.log,
            health=self.health,
            stop=self.stop,
            poll=self.poll,
        )

    def retry(
        self, what: str, attempt: Callable[[], T], not_yet: Callable[[ChronosealError], bool]
    ) -> T:
        """``attempt`` until it succeeds, as long as what it raises is ``not_yet`` (nothing
        was done) and the agent's timeout has not passed; any other refusal stands."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return attempt()
            except ChronosealError as exc:
                if not not_yet(exc) or time.monotonic() > deadline or self.stop.is_set():
                    raise
                self.log(f"{what} is not ready yet ({exc.id}); trying again")
            self.stop.wait(max(self.poll, 0.5))

    def within(self, what: str, done: Callable[[float], bool], poll: float | None = None) -> bool:
        return _within(what, done, timeout=self.timeout, stop=self.stop, poll=poll or self.poll)

    def state_is(self, *states: TaskState) -> Callable[[], bool]:
        return state_is(self.consortium, self.task_id, *states)

    def ready(self) -> None:
        """The agent serves: its readiness probe says so."""
        if self.health is not None:
            self.health.set_ready(True)


class _Agent:
    """What every agent shares: its watch, and the moment its runtime serves."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.consortium = watch.consortium
        self.spec = watch.spec
        self.task_id = watch.task_id
        self.log = watch.log
        self.listening = threading.Event()

    def _listening(self, what: str) -> None:
        """Until the runtime serves: its attestation is on chain a moment before."""
        if not self.watch.within(what, self.listening.wait, poll=0.1):
            raise _stopped(what)


class AnalysisAgent(_Agent):
    """Wait for the task to be Approved, attest (``start``: the runtime, started), serve
    gateways until every stream is in, train and commit the model (``train``), serve each
    party its release, then (``prediction``: where the prediction runtime serves
    hand-over, asked once one attested on chain) hand the sealed model over."""

    def __init__(
        self,
        watch: Watch,
        start: Callable[[], AnalysisRuntime],
        *,
        progress: AnalysisProgress | None = None,
        train: bool = True,
        prediction: Address | None = None,
    ) -> None:
        super().__init__(watch)
        self._start = start
        self.progress = progress
        self.train = train
        self.prediction = prediction
        self.runtime: AnalysisRuntime | None = None
        self._address: tuple[str, int] | None = None
        self.streamed = threading.Event()
        self.released = threading.Event()

    def address(self) -> tuple[str, int]:
        """Where the runtime serves gateways (waits until it does)."""
        self._listening("the analysis runtime to serve")
        assert self._address is not None
        return self._address

    def run(self) -> AnalysisRuntime:
        self.watch.wait_for("the task to be approved", self.watch.state_is(TaskState.APPROVED))
        runtime = self.runtime = self._start()
        host, port = self._address = runtime.address
        self.listening.set()
        self.log(
            f"attested ({runtime.attester.tee} TEE) and recorded on chain; serving gateways "
            f"over mutual RA-TLS on {host}:{port}"
        )
        self.watch.ready()
        try:
            self._take_streams(runtime)
            if self.train:
                self._train(runtime)
                if self.prediction is not None:
                    self._hand_over(runtime, self.prediction)
        finally:
            runtime.stop()
        return runtime

    def _take_streams(self, runtime: AnalysisRuntime) -> None:
        what = "every data provider's stream"
        if not self.watch.within(what, runtime.wait):
            raise LedgerError(
                "not every data provider's stream arrived in time", id="analysis.intake.incomplete"
            )
        self.streamed.set()

    def _train(self, runtime: AnalysisRuntime) -> None:
        spec = self.spec
        self.log(
            f"every stream is in and matched on chain: joining the data and back-testing "
            f"{spec.model.family} ({spec.evaluation.windows} windows of {spec.model.horizon}) "
            "against single-party baselines"
        )
        with busy(self.watch.health):
            trained = runtime.analyse(self.progress or logged_progress(self.log))
        self.log(
            f"model bundle sealed ({len(trained.bundle):,} bytes); commitment "
            f"0x{trained.commitment.hex()} and release digest posted on chain (Trained); "
            f"serving releases to {', '.join(sorted(trained.releases.documents))}"
        )
        what = "every party to fetch its release"
        if not self.watch.within(what, runtime.wait_released):
            missing = set(trained.releases.documents) - runtime.released_to
            self.log(f"gave up waiting for {', '.join(sorted(missing))} to fetch their releases")
        self.released.set()

    def _hand_over(self, runtime: AnalysisRuntime, prediction: Address) -> None:
        events = EventStream(self.consortium)
        tid = self.task_id
        self.watch.wait_for(
            "an attested prediction runtime",
            lambda: any(_is_prediction_attestation(e, tid) for e in events.poll()),
        )
        # its attestation can be seen before its listener is up (a chain's confirmations):
        # a refused connection has sent nothing, so it is tried again
        bound = self.watch.retry(
            "the prediction runtime's hand-over port",
            lambda: runtime.hand_over(prediction()),
            lambda exc: isinstance(exc.__cause__, ConnectionRefusedError),
        )
        self.log(
            f"verified the prediction runtime {bound}, acknowledged it on chain and handed "
            "the sealed model over"
        )


class GatewayAgent(_Agent):
    """Wait until the task is Approved and a runtime attested for it, stream once (resuming
    after a restart), then (``fetch``) wait for Trained and fetch — and check against the
    chain — what the task releases to us; then (``feeds``: where the prediction runtime
    takes feeds) feed it once Serving, if the task feeds it our data."""

    def __init__(
        self,
        watch: Watch,
        gateway: Gateway,
        runtime: Address,
        *,
        progress: Callable[[int, int], None] | None = None,
        fetch: bool = True,
        feeds: Address | None = None,
    ) -> None:
        super().__init__(watch)
        self.gateway = gateway
        self.runtime = runtime
        self.progress = progress
        self.fetch = fetch
        self.feeds = feeds
        self.report: StreamReport | None = None
        self.release: dict[str, Any] = {}
        self.streamed = threading.Event()
        self.fetched = threading.Event()

    def run(self) -> tuple[StreamReport, dict[str, Any]]:
        gateway, consortium = self.gateway, self.consortium
        # Running too: a gateway restarted mid-stream resumes from what the runtime holds;
        # and Trained: one restarted after its commitment only fetches its release
        approved = self.watch.state_is(TaskState.APPROVED, TaskState.RUNNING, TaskState.TRAINED)
        events = EventStream(consortium)  # read incrementally: each poll sees only new blocks
        attested = False

        def runtime_attested() -> bool:
            nonlocal attested
            attested = attested or any(
                is_analysis_attestation(e, gateway.task_id) for e in events.poll()
            )
            return attested and approved()

        self.watch.wait_for("an attested analysis runtime", runtime_attested)
        runtime = self.runtime()
        if consortium.task_state(gateway.task_id) is TaskState.TRAINED:
            self.report = gateway.committed_earlier()
            self.log("the task was trained while this gateway was down; its stream was committed")
        else:
            with busy(self.watch.health):
                self.report = gateway.run(runtime, self.progress)
        self.streamed.set()
        self.log("stream committed")
        if not self.fetch:
            return self.report, self.release
        self.watch.wait_for("the model to be trained", is_trained(consortium, gateway.task_id))
        # the head says Trained once the commitment is mined; the runtime counts it only
        # ``confirmations`` blocks later (a Clique chain), so not_ready is waited out
        self.release = self.watch.retry(
            "the release",
            lambda: gateway.fetch_release(runtime),
            lambda exc: exc.id == "analysis.release.not_ready",
        )
        self.log(
            "fetched the release over the attested channel and checked it against the chain: "
            + ", ".join(sorted(set(self.release) - {"task_id", "party", "nonce"}))
        )
        self.fetched.set()
        if self.feeds is not None and gateway.name in {d.party for d in self.spec.feed_datasets()}:
            self.watch.wait_for("the task to be Serving", self.watch.state_is(TaskState.SERVING))
            rows = gateway.send_feed(self.feeds())
            self.log(f"fed the prediction runtime {rows} rows after the training window")
        return self.report, self.release


class PredictionAgent(_Agent):
    """Wait for Trained, attest (``start``: the runtime, started), take the model over from
    the bound analysis runtime, serve forecasts for ``serve_for`` seconds (or until
    ``stop``), then post the last audit batch."""

    def __init__(
        self, watch: Watch, start: Callable[[], PredictionRuntime], *, serve_for: float
    ) -> None:
        super().__init__(watch)
        self._start = start
        self.serve_for = serve_for
        self.runtime: PredictionRuntime | None = None
        self.serving = threading.Event()
        self.lost: list[AuditLeaf] = []

    def address(self, which: str) -> tuple[str, int]:
        """Where ``handover``, ``feeds`` or ``forecasts`` is served (waits until it is)."""
        self._listening("the prediction runtime to serve")
        assert self.runtime is not None
        return self.runtime.address(which)

    def run(self) -> PredictionRuntime:
        self.watch.wait_for(
            "the model to be trained", self.watch.state_is(TaskState.TRAINED, TaskState.SERVING)
        )
        runtime = self.runtime = self._start()
        self.listening.set()
        if runtime.resumed is not None:
            r = runtime.resumed
            self.log(
                f"restarted while Serving: took the model back from sealed state (hash "
                f"re-checked on chain), {r.feeds} feeds, {r.leaves} journaled audit leaves, "
                f"{r.pending} of them not yet on chain (posted next)"
            )
        try:
            host, port = runtime.address("handover")
            self.log(
                f"attested ({runtime.attester.tee} TEE) and recorded on chain; hand-over on "
                f"{host}:{port}"
            )
            taken = self.watch.within(
                "the model to be handed over",
                lambda s: runtime.wait_serving(s) or runtime.refusal is not None,
            )
            if not taken or runtime.refusal is not None:
                raise runtime.refusal or LedgerError(
                    "no analysis runtime handed the model over in time",
                    id="prediction.handover.timeout",
                )
            host, port = runtime.address("forecasts")
            self.log(
                "model taken over, its hash matched the commitment before loading; task "
                f"Serving; forecasts on {host}:{port}"
            )
            self.watch.ready()
            self.serving.set()
            with busy(self.watch.health):
                self.watch.stop.wait(self.serve_for)
        finally:
            self.lost = runtime.stop()
            if self.lost:
                self.log(f"{len(self.lost)} audit records could not be posted on chain")
        return runtime
