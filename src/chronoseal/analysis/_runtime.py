"""The analysis runtime (claim 1): attest on chain, take the task's streams, train, release.

At start the runtime makes its RA-TLS identity bound to a recent block hash, posts the
attestation record for the task (evidence hash, TLS certificate fingerprint) and serves the
attested channel. A gateway is accepted only when its evidence appraises as a gateway whose
measurement the task pins and the chain approves, *and* it proves, with a key the chain
registers for its party, that it speaks for a data provider of this task. Received batches
stay in memory; when a party's stream completes the runtime posts its own commitment, and
the contract compares it with the gateway's.

Once every commitment matched on chain, :meth:`AnalysisRuntime.analyse` joins the tables,
back-tests, values each party, seals the model bundle (kept in memory only) and posts its
commitment with the release digest (→ Trained). A refusal aborts the task on chain with its
id and releases nothing; a disputed commitment releases nothing either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from eth_account import Account
from eth_account.messages import encode_defunct

from chronoseal.attest import (
    Attester,
)
from chronoseal.channel import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_VALIDITY,
    TASK_KEY_LEN,
    ChannelServer,
    PartyIntake,
    RaTlsIdentity,
    StreamContext,
    certificate_appraiser,
    serve_intake,
)
from chronoseal.errors import AnalysisError, ChronosealError, LedgerError, PeerRefused
from chronoseal.ledger import (
    ComponentSession,
    Consortium,
    RecentBlocks,
    TaskState,
)
from chronoseal.model import ReleaseSet, commitment, seal
from chronoseal.spec import Component, TaskSpec, Tee, task_id
from chronoseal.trust import REATTEST_BLOCKS, RuntimeIdentity, TaskTrust

from ._analyse import JOINT, AnalysisResult, Progress, analyse
from ._join import join_tables
from ._pool import PoolFactory, warm_up
from ._release import build_releases

if TYPE_CHECKING:  # distributed is imported only by a runtime that has workers
    from ._dask import DaskCompute, WorkerRecord

log = logging.getLogger("chronoseal.analysis")


def expected_columns(spec: TaskSpec, party: str) -> list[str]:
    """The columns a party's desensitized batches carry: every column its policy keeps."""
    (dataset,) = spec.datasets_of(party)
    return [c for c in dataset.columns() if dataset.policy.columns[c].action != "drop"]


def verify_party_signature(consortium: Consortium) -> Callable[[str, bytes, bytes], None]:
    """The hello check: the signature must recover to a key the chain registers for ``party``."""

    def verify(party: str, digest: bytes, signature: bytes) -> None:
        try:
            signer = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
        except (ValueError, TypeError) as exc:
            raise PeerRefused(
                f"the hello signature for {party} is malformed", id="channel.intake.bad_signature"
            ) from exc
        if consortium.org_of_key(signer) != party:
            raise PeerRefused(
                f"the hello for {party} is signed by {signer}, which is not a key of {party}",
                id="channel.intake.not_party_key",
            )

    return verify


@dataclass
class IntakeState:
    """Per-party intake of one task; guarded by ``lock`` across connection threads."""

    spec: TaskSpec
    parties: dict[str, PartyIntake] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[ChronosealError] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class TrainedModel:
    """What the analysis produced: the sealed bundle (memory only), its commitment on chain,
    the releases and the full result (which never leaves the runtime)."""

    bundle: bytes
    commitment: bytes
    releases: ReleaseSet
    result: AnalysisResult


class AnalysisRuntime:
    """One task's analysis runtime: attested identity, on-chain record, channel server."""

    def __init__(
        self,
        consortium: Consortium,
        spec: TaskSpec,
        *,
        attester: Attester,
        chain_key: str | bytes,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        on_batch: Callable[[PartyIntake], None] | None = None,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        identity_validity: timedelta = DEFAULT_VALIDITY,
        reattest_blocks: int = REATTEST_BLOCKS,
        workers: int | None = None,
        compute: DaskCompute | None = None,
    ) -> None:
        self.consortium = consortium
        self._workers = workers
        #: Attested Dask workers the back-test runs on (started with the runtime).
        self.compute = compute
        self._compute_started: threading.Thread | None = None
        self._compute_error: ChronosealError | None = None
        self.spec = spec
        self.task_id = task_id(spec)
        self.attester = attester
        self.session: ComponentSession = consortium.as_component(chain_key)
        self.trust = TaskTrust(
            consortium,
            spec,
            Component.ANALYSIS,
            attester,
            chain_address=self.session.address,
            io_timeout=io_timeout,
        )
        self._listen = listen
        self._on_batch = on_batch
        self._task_key = os.urandom(TASK_KEY_LEN)
        self.state = IntakeState(spec)
        self._identity = RuntimeIdentity(
            self.trust, validity=identity_validity, reattest_blocks=reattest_blocks
        )
        self._server: ChannelServer | None = None
        self._socket: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.trained: TrainedModel | None = None
        self.refusal: ChronosealError | None = None
        self.released_to: set[str] = set()
        self._released = threading.Condition()

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            raise ChronosealError(
                "the runtime is not serving yet: call start()", id="analysis.not_started"
            )
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Attest, post the attestation for the task, and start accepting gateways."""
        view = self.consortium.task(self.task_id)
        if view.state is not TaskState.APPROVED:
            raise LedgerError(
                f"task 0x{self.task_id.hex()} is {view.state.name}, not APPROVED",
                id="analysis.task.not_approved",
            )
        blocks = RecentBlocks(self.consortium)
        self._identity.renew(blocks)
        self._identity.post(self.session)
        server = self._identity.server(Component.GATEWAY, blocks)
        self._server = server
        self._socket = socket.create_server(self._listen)
        self._socket.settimeout(0.2)
        accept = threading.Thread(target=self._accept_loop, args=(server,), daemon=True)
        accept.start()
        refresh = threading.Thread(target=self._refresh_loop, daemon=True)
        refresh.start()
        self._threads += [accept, refresh]
        if self.compute is not None:  # the workers attest and join while the streams arrive
            self._compute_started = threading.Thread(
                target=self._start_compute, args=(blocks,), name="analysis-workers", daemon=True
            )
            self._compute_started.start()
            return
        # The back-test's worker processes fork from a warm server: start it while the
        # parties' streams arrive.
        threading.Thread(target=warm_up, name="analysis-warm-up", daemon=True).start()

    @property
    def identity(self) -> RaTlsIdentity | None:
        """The identity new sessions get (None before start())."""
        return self._identity.current

    def _start_compute(self, blocks: RecentBlocks) -> None:
        """Start the Dask workers; each is appraised as the task's pinned, on-chain approved
        ``analysis_worker`` before it learns where the scheduler is."""
        from ._dask import CLUSTER_VALIDITY

        assert self.compute is not None
        try:
            if self.spec.measurements.analysis_worker is None:
                raise AnalysisError(
                    "the task pins no measurements.analysis_worker: its analysis runs in the "
                    "runtime's TEE only, not on workers",
                    id="analysis.worker.not_pinned",
                )
            self.compute.start(
                self.trust.identity(blocks, validity=CLUSTER_VALIDITY),
                certificate_appraiser(
                    self.trust.appraiser(Component.ANALYSIS_WORKER),
                    Component.ANALYSIS_WORKER,
                    blocks,
                ),
                blocks.latest(),
                chain_address=self.session.address,
            )
        except ChronosealError as exc:
            log.warning("analysis workers: %s", exc)
            self._compute_error = exc

    def reattest(self) -> bool:
        """Re-attest once the identity is half its validity old or ``reattest_blocks``
        behind (the parties' freshness window), so that a release fetched after a training
        of hours still meets a valid, fresh identity: new sessions get the new identity,
        open ones keep theirs. Parties then check the task's binding of the runtime's chain
        key, which the fresh evidence carries; so it starts once the task binds the runtime
        (Running), never while gateways acknowledge its posted evidence. Returns whether it
        re-attested."""
        if not self._identity.due():
            return False
        if self.consortium.task_state(self.task_id) is TaskState.APPROVED:
            return False  # the gateways acknowledge the posted evidence: keep it until bound
        self._identity.renew()
        log.info("re-attested: fresh evidence for new sessions")
        return True

    def _refresh_loop(self) -> None:
        while not self._stop.wait(min(1.0, self._identity.validity.total_seconds() / 8)):
            try:
                self.reattest()
            except ChronosealError as exc:
                log.warning("re-attestation failed (retried): %s", exc)

    def _accept_loop(self, server: ChannelServer) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(server, conn), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _intake_for(self, party: str) -> PartyIntake:
        if party not in self.spec.data_providers():
            raise PeerRefused(
                f"{party!r} is not a data provider of this task", id="channel.intake.not_provider"
            )
        with self.state.lock:
            if party not in self.state.parties:
                self.state.parties[party] = PartyIntake(
                    self.task_id,
                    party,
                    expected_columns(self.spec, party),
                    suite=self.spec.task.crypto,
                )
            return self.state.parties[party]

    def _serve(self, server: ChannelServer, conn: socket.socket) -> None:
        assert self.identity is not None
        try:
            with server.accept(conn) as channel:
                intake = serve_intake(
                    channel,
                    task_id=self.task_id,
                    own_fingerprint=channel.local_fingerprint,
                    task_key=self._task_key,
                    intake_for=self._intake_for,
                    verify_party=verify_party_signature(self.consortium),
                    on_batch=self._on_batch,
                    release_for=self._release_for,
                    on_released=self._released_to_party,
                    suite=self.spec.task.crypto,
                )
            if intake is None:
                return
            with self.state.lock:
                first = intake.party not in self.state.committed
            if first:  # a gateway confirming a finished stream after a restart posts nothing
                self.session.post_runtime_commitment(
                    self.task_id, intake.party, intake.commitment.root()
                )
            with self.state.lock:
                self.state.committed.add(intake.party)
            log.info("%s: %d batches received, commitment posted", intake.party, len(intake.salts))
        except ChronosealError as exc:
            log.warning("refused a gateway connection: %s", exc)
            with self.state.lock:
                self.state.errors.append(exc)
        finally:
            with self.state.lock:
                if set(self.spec.data_providers()) <= self.state.committed:
                    self.state.done.set()

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> bool:
        """Block until every data provider's stream arrived and its commitment is on chain.

        Watches the chain meanwhile: when a party aborts the task (its gateway could not send
        its data) the wait ends at once with that cause, not at the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.state.done.wait(poll):
            state = self.consortium.task_state(self.task_id)
            if state in (TaskState.ABORTED, TaskState.DISPUTED):
                raise AnalysisError(
                    f"the task was {state.name.lower()} on chain while the runtime waited for "
                    "the parties' streams; nothing is trained",
                    id=(
                        "analysis.task.aborted"
                        if state is TaskState.ABORTED
                        else "analysis.task.disputed"
                    ),
                )
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def _release_for(self, party: str) -> bytes:
        if self.trained is None:
            if self.refusal is not None:
                raise AnalysisError(
                    f"the task was refused ({self.refusal.id}); nothing is released",
                    id=self.refusal.id,
                )
            raise AnalysisError("the model is not trained yet", id="analysis.release.not_ready")
        if self.spec.participant(party) is None:
            raise PeerRefused(f"{party} is not a participant", id="analysis.release.not_party")
        return self.trained.releases.for_party(party)

    def _released_to_party(self, party: str) -> None:
        """Counted only once the release is sent: the process may exit right after."""
        with self._released:
            self.released_to.add(party)
            self._released.notify_all()

    def wait_released(self, timeout: float) -> bool:
        """Block until every party the task releases something to has fetched it."""
        if self.trained is None:
            return False
        wanted = set(self.trained.releases.documents)
        with self._released:
            return self._released.wait_for(lambda: wanted <= self.released_to, timeout)

    def _await_matched(self, timeout: float = 60.0) -> None:
        """Train only on data both ends agreed on: every commitment matched on chain."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.consortium.task(self.task_id)
            if view.state is TaskState.DISPUTED:
                raise AnalysisError(
                    "a party's commitment does not match the runtime's: the task is Disputed "
                    "on chain and nothing is trained or released",
                    id="analysis.commitment.disputed",
                )
            if view.state is not TaskState.RUNNING:
                raise AnalysisError(
                    f"the task is {view.state.name}, not RUNNING", id="analysis.task.not_running"
                )
            if view.matched_commitments == view.providers:
                return
            if time.monotonic() > deadline:
                raise AnalysisError(
                    f"{view.matched_commitments} of {view.providers} commitments matched "
                    f"after {timeout:.0f} s",
                    id="analysis.commitment.pending",
                )
            time.sleep(0.05)

    def analyse(self, progress: Progress | None = None) -> TrainedModel:
        """Join, back-test, value, seal and commit (→ Trained); on a refusal abort the task
        on chain with the refusal id and re-raise. Nothing is released before Trained."""
        self._await_matched()
        started = time.perf_counter()
        tables = {party: intake.table() for party, intake in self.state.parties.items()}
        try:
            executor = self._executor()
            panel = join_tables(self.spec, tables)
            joined = time.perf_counter() - started
            result = analyse(self.spec, panel, progress, workers=self._workers, executor=executor)
        except AnalysisError as exc:
            self.refusal = exc
            log.warning("analysis refused: %s", exc)
            self.session.abort_as_component(self.task_id, exc.id)
            raise
        started = time.perf_counter()
        bundle = seal(result.fitted, task_id=self.task_id, name=JOINT)
        digest = commitment(bundle)
        if result.cost is not None:
            result.cost.phases["join"] = joined
            result.cost.phases["seal"] = time.perf_counter() - started
        releases = build_releases(self.spec, result, task_id=self.task_id, model_commitment=digest)
        self.session.post_model_commitment(self.task_id, digest, releases.digest)
        self.trained = TrainedModel(bundle, digest, releases, result)
        log.info(
            "model committed: %s, bundle %d bytes, %d fits on %d worker(s)",
            result.family,
            len(bundle),
            result.fits,
            result.cost.workers if result.cost is not None else 1,
        )
        return self.trained

    def _executor(self) -> PoolFactory | None:
        """The Dask workers' pool once they all attested and joined (or why they did not)."""
        if self.compute is None:
            return None
        assert self._compute_started is not None
        self._compute_started.join()
        if self._compute_error is not None:
            raise self._compute_error
        self._post_workers()
        self.compute.on_admitted = self._post_worker
        return self.compute.pool

    def _post_workers(self) -> None:
        """Post each admitted worker's attestation for the task (kind ``analysis_worker``,
        sent by this bound runtime, whose chain key the worker's evidence binds) before the
        worker receives the panel: the contract checks the measurement is pinned and
        approved, and the audit sees which TEEs held the data."""
        assert self.compute is not None
        for record in self.compute.admitted:
            self._post_worker(record)

    def _post_worker(self, record: WorkerRecord) -> None:
        """One worker's attestation (a replacement's too, before it learns the scheduler)."""
        if record.posted or record.measurement is None:
            return
        self.session.post_attestation(
            self.task_id,
            Component.ANALYSIS_WORKER,
            Tee(record.tee),
            record.measurement,
            record.evidence_hash,
            record.fingerprint,
        )
        record.posted = True

    def hand_over(self, prediction: tuple[str, int]) -> str:
        """Give the sealed model (and the task key) to the attested prediction runtime
        serving hand-over at ``prediction``: appraise it as the pinned prediction code,
        find its own record on chain, acknowledge it there, send the bundle HPKE-sealed to
        its attested key. Returns its chain address."""
        trained = self.trained
        if trained is None:
            raise AnalysisError("there is no trained model to hand over", id="analysis.not_trained")
        channel, _ = self.trust.connect(prediction, Component.PREDICTION)
        with channel:
            peer = channel.peer
            if peer.chain_address is None:
                raise PeerRefused(
                    "the prediction runtime's evidence binds no chain address",
                    id="analysis.handover.unbound",
                )
            evidence = hashlib.sha256(peer.evidence.to_bytes()).digest()
            record = self.consortium.attestation(self.task_id, evidence, peer.chain_address)
            if record is None or record.tls_key != peer.fingerprint:
                raise PeerRefused(
                    f"{peer.chain_address} has posted no attestation with this evidence and "
                    "certificate for the task",
                    id="analysis.handover.not_attested",
                )
            self.session.acknowledge_prediction(self.task_id, evidence, peer.chain_address)
            channel.send_stream(
                StreamContext(self.task_id, "*", "model"), [trained.bundle, self._task_key]
            )
            channel.receive_stream(StreamContext(self.task_id, "*", "handover-done"))
        log.info("model handed over to %s", peer.chain_address)
        return peer.chain_address

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; give connections in flight (a release being sent) ``grace`` s."""
        self._stop.set()
        if self._socket is not None:
            self._socket.close()
        deadline = time.monotonic() + grace
        if self.compute is not None:
            if self._compute_started is not None:
                self._compute_started.join(max(0.0, deadline - time.monotonic()))
            self.compute.close()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
