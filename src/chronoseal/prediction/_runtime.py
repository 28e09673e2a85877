"""The prediction runtime (claims 1, 5): take the sealed model over, take feature feeds,
serve forecasts to the task's recipients, and audit every request at constant chain cost.

Once the task is Trained the runtime attests (RA-TLS identity bound to a recent block and to
its chain address) and posts its attestation. It serves three attested channels:

- **hand-over** (analysis runtime → here): the peer must be the analysis runtime the chain
  binds to the task; it sends the model bundle and the task key, HPKE-sealed to this
  runtime's attested key. The bundle's SHA-256 is checked against the on-chain model
  commitment *before* anything in it is parsed; then this runtime posts its own commitment
  (equal → Serving, different → Disputed).
- **feeds** (gateway → here): each provider of future-known covariates sends its rows after
  the training window, under the same policy, framing and commitment as training; the
  root of each feed epoch becomes an audit leaf.
- **forecasts** (a party's client → here): a request signed by a key the chain registers for
  the party; only the parties ``[release] forecasts.to`` names are served, within their
  query budget and rate; every answer and every refusal is an audit leaf, batched into one
  ``post_audit_root`` per batch, and the requester gets a receipt it checks on chain.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from eth_account import Account

from chronoseal.attest import Attester, sealing_key
from chronoseal.channel import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_VALIDITY,
    AttestedChannel,
    ChannelServer,
    PartyIntake,
    RaTlsIdentity,
    StreamContext,
    serve_intake,
)
from chronoseal.errors import ChronosealError, LedgerError, ModelError, PeerRefused
from chronoseal.ledger import (
    ComponentKind,
    ComponentSession,
    Consortium,
    OnChainMeasurements,
    RecentBlocks,
    TaskState,
    TaskView,
    component_kind,
    read_events,
    tee_type,
)
from chronoseal.model import (
    DS,
    ID,
    Grid,
    LoadedModel,
    LocalTimeError,
    TimeRangeError,
    ZoneTimeError,
    as_float,
    combine_repeated,
    commitment,
    open_bundle,
    to_utc,
)
from chronoseal.spec import Component, Dataset, TaskSpec, task_id
from chronoseal.trust import TaskTrust

from ._audit import SERVED, AuditLeaf, AuditLog, audit_root_poster
from ._input import MAX_INPUT_BYTES, input_dataset, observation_rows
from ._sealed import SealedStateError, SealedStore
from ._wire import (
    INPUT_KEY,
    MODEL_STREAM,
    REQUEST_STREAM,
    RESPONSE_STREAM,
    PartyVerifier,
    decode_request,
    encode_json,
    party_key_verifier,
    request_digest,
    signing_digest,
)

log = logging.getLogger("chronoseal.prediction")


_MAX_SUBSETS = 256


@dataclass
class _Forecast:
    """One model call's forecast (all series) and, per set of series asked for, its rows
    and their Arrow IPC encoding, made once."""

    frame: pd.DataFrame
    epochs: dict[str, int]
    subsets: dict[tuple[str, ...], tuple[pd.DataFrame, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subset(self, series: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, int], bytes]:
        with self.lock:
            hit = self.subsets.get(series)
            if hit is None:
                if len(self.subsets) >= _MAX_SUBSETS:
                    self.subsets.clear()  # many distinct asks: keep memory bounded
                rows = self.frame[self.frame[ID].isin(series)].reset_index(drop=True)
                hit = self.subsets[series] = (rows, _ipc(rows))
        return hit[0], dict(self.epochs), hit[1]


@dataclass
class _Usage:
    queries: int = 0
    recent: deque[float] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)


REATTEST_BLOCKS = 32
"""Re-attest after this many blocks: half the window clients accept evidence from."""


@dataclass(frozen=True)
class ResumeReport:
    """What a restarted runtime took back from its sealed state."""

    leaves: int
    pending: int
    feeds: int


@dataclass
class ServingStats:
    served: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


class PredictionRuntime:
    """One task's prediction runtime: attested identity, on-chain record, three servers."""

    def __init__(
        self,
        consortium: Consortium,
        spec: TaskSpec,
        *,
        attester: Attester,
        chain_key: str | bytes,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        audit_max_leaves: int = 64,
        audit_max_age: float = 5.0,
        verify_party: PartyVerifier | None = None,
        clock: Callable[[], float] = time.time,
        recheck_interval: float = 5.0,
        state_dir: Path | None = None,
        reattest_blocks: int = REATTEST_BLOCKS,
        audit_retain_leaves: int = 1_000_000,
        identity_validity: timedelta = DEFAULT_VALIDITY,
    ) -> None:
        self.consortium = consortium
        self.spec = spec
        self.task_id = task_id(spec)
        self.attester = attester
        self.session: ComponentSession = consortium.as_component(chain_key)
        self.trust = TaskTrust(
            consortium,
            spec,
            Component.PREDICTION,
            attester,
            chain_address=self.session.address,
            io_timeout=io_timeout,
        )
        self._listen = listen
        self._verify_party = verify_party or party_key_verifier(consortium)
        self._verify_lock = threading.Lock()
        self._clock = clock
        self.identity: RaTlsIdentity | None = None
        self.model: LoadedModel | None = None
        self._task_key: bytes | None = None
        self._sockets: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.refusal: ChronosealError | None = None
        self.feeds: dict[str, pd.DataFrame] = {}
        self.feed_epochs: dict[str, int] = {}
        self._forecasts: dict[tuple[Any, int], _Forecast] = {}
        self._usage: dict[str, _Usage] = {}
        self._recheck = recheck_interval
        self._trust: dict[bytes, tuple[float, str | None]] = {}
        self._closing: set[bytes] = set()  # sessions whose last answer refused them as revoked
        self._servers: list[ChannelServer] = []
        self._reattest_blocks = reattest_blocks
        self._identity_block = 0
        self._validity = identity_validity
        self._identity_at = 0.0
        self.resumed: ResumeReport | None = None
        self.stats = ServingStats()
        self._store: SealedStore | None = None
        if state_dir is not None:
            pin = spec.measurements.pins()[Component.PREDICTION]
            key = sealing_key(
                attester.tee,
                component_key=bytes(Account.from_key(chain_key).key),
                measurement=pin.digest,
                purpose=self.task_id,
            )
            self._store = SealedStore(state_dir, key, self.task_id)
        store = self._store
        self.audit = AuditLog(
            self.task_id,
            audit_root_poster(self.session, self.task_id),
            max_leaves=audit_max_leaves,
            max_age=audit_max_age,
            journal=(lambda leaf: store.append("audit", leaf.encoded())) if store else None,
            retain_leaves=audit_retain_leaves,
        )

    # ------------------------------------------------------------------ start and stop

    def address(self, which: str) -> tuple[str, int]:
        """Where ``handover``, ``feeds`` or ``forecasts`` is served."""
        sock = self._sockets.get(which)
        if sock is None:
            raise ChronosealError(
                "the prediction runtime is not serving yet: call start()",
                id="prediction.not_started",
            )
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Attest, post the attestation for the task (it must be Trained), and serve — or,
        restarted while the task is Serving and binds this runtime's chain key, take the
        model back from sealed state (its hash re-checked against the chain first)."""
        view = self.consortium.task(self.task_id)
        restarted = view.state is TaskState.SERVING and view.binds(
            ComponentKind.PREDICTION, self.session.address
        )
        if view.state is not TaskState.TRAINED and not restarted:
            raise LedgerError(
                f"task 0x{self.task_id.hex()} is {view.state.name}, not TRAINED",
                id="prediction.task.not_trained",
            )
        blocks = RecentBlocks(self.consortium)
        self._new_identity(blocks)
        assert self.identity is not None
        pins = self.spec.measurements.pins()
        if restarted:
            self._resume(view)
        else:
            self.session.post_attestation(
                self.task_id,
                component_kind(Component.PREDICTION),
                tee_type(self.attester.tee),
                pins[Component.PREDICTION].digest,
                hashlib.sha256(self.identity.evidence.to_bytes()).digest(),
                self.identity.fingerprint,
            )
        # A party asks for forecasts through its gateway (its code, its pinned measurement).
        servers: dict[str, tuple[Component, Callable[[AttestedChannel], None]]] = {
            "handover": (Component.ANALYSIS, self._serve_handover),
            "feeds": (Component.GATEWAY, self._serve_feed),
            "forecasts": (Component.GATEWAY, self._serve_forecasts),
        }
        for name, (peer, handler) in servers.items():
            server = self.trust.server(self.identity, peer, blocks)
            self._servers.append(server)
            host, base = self._listen
            # hand-over on the port given, feeds on the next, forecasts on the one after
            port = base + list(servers).index(name) if base else 0
            sock = socket.create_server((host, port))
            sock.settimeout(0.2)
            self._sockets[name] = sock
            thread = threading.Thread(
                target=self._accept_loop, args=(sock, server, handler), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        flusher = threading.Thread(target=self._flush_loop, daemon=True)
        flusher.start()
        self._threads.append(flusher)

    def stop(self, grace: float = 5.0) -> list[AuditLeaf]:
        """Stop serving, post the last audit batch; return leaves that could not be posted
        (visibly lost, never silently)."""
        self._stop.set()
        for sock in self._sockets.values():
            sock.close()
        deadline = time.monotonic() + grace
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self.audit.flush()
        except ChronosealError as exc:
            log.warning("the last audit batch could not be posted: %s", exc)
        lost = self.audit.unposted()
        if lost:
            log.warning("%d audit leaves were not posted on chain", len(lost))
        return lost

    def wait_feeds(self, parties: set[str], timeout: float) -> None:
        """Until a feed epoch from each of ``parties`` is held (a gateway's ``finish`` returns
        a moment before the runtime has the feed's table in place)."""
        names = {ds.name for ds in self.spec.feed_datasets() if ds.party in parties}
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if names <= set(self.feeds):
                    return
            if time.monotonic() > deadline:
                raise LedgerError(
                    f"no feed from {', '.join(sorted(names - set(self.feeds)))} arrived",
                    id="prediction.feed.missing",
                )
            time.sleep(0.05)

    def wait_serving(self, timeout: float) -> bool:
        """Until the model is taken over and the task is Serving (or a refusal)."""
        if not self._ready.wait(timeout):
            return False
        return self.refusal is None

    def _accept_loop(
        self,
        sock: socket.socket,
        server: ChannelServer,
        handler: Callable[[AttestedChannel], None],
    ) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(
                target=self._serve_one, args=(server, conn, handler), daemon=True
            )
            worker.start()
            self._threads.append(worker)

    def _serve_one(
        self,
        server: ChannelServer,
        conn: socket.socket,
        handler: Callable[[AttestedChannel], None],
    ) -> None:
        try:
            with server.accept(conn) as channel:
                handler(channel)
        except ChronosealError as exc:
            log.warning("prediction runtime refused a connection: %s", exc)

    def _new_identity(self, blocks: RecentBlocks) -> None:
        """Fresh evidence bound to the newest block and this runtime's chain key."""
        self.identity = self.trust.identity(blocks, validity=self._validity)
        self._identity_block = self.consortium.chain.block_number()
        self._identity_at = time.monotonic()

    def _reattest(self) -> None:
        """Re-attest before the evidence ages out of the clients' freshness window (the
        last blocks): new sessions get the new identity, open ones keep theirs; the
        refreshed evidence's hash goes into the audit log, so it reaches the chain. On a
        quiet chain it re-attests at half the certificate's validity all the same."""
        if not self._ready.is_set():
            return  # until hand-over, the analysis runtime looks for the evidence posted
        aged = time.monotonic() - self._identity_at >= self._validity.total_seconds() / 2
        behind = self.consortium.chain.block_number() - self._identity_block
        if not aged and behind < self._reattest_blocks:
            return
        self._new_identity(RecentBlocks(self.consortium))
        assert self.identity is not None
        for server in self._servers:
            server.rotate(self.identity)
        self._runtime_leaf("prediction.attestation.refreshed")
        log.info("re-attested: fresh evidence for new sessions")

    def _runtime_leaf(self, outcome: str) -> None:
        assert self.identity is not None
        self.audit.append(
            AuditLeaf(
                task_id=self.task_id,
                requester=self.session.address,
                request_digest=hashlib.sha256(self.identity.evidence.to_bytes()).digest(),
                outcome=outcome,
                response_digest=None,
                feed_epochs={},
                at_us=int(self._clock() * 1e6),
            )
        )

    def _flush_loop(self) -> None:
        checked = time.monotonic()
        while not self._stop.wait(0.2):
            if time.monotonic() - checked >= 1.0:
                checked = time.monotonic()
                try:
                    self._reattest()
                except ChronosealError as exc:
                    log.warning("re-attestation failed (retried): %s", exc)
            if self.audit.due():
                try:
                    self.audit.flush()
                except ChronosealError as exc:
                    log.warning("audit batch not posted yet (kept, retried): %s", exc)

    # ------------------------------------------------------------------ hand-over

    def _resume(self, view: TaskView) -> None:
        """The model, task key, feeds and audit journal back from sealed state; the bundle's
        hash is checked against the chain's model commitment before anything is parsed."""
        store = self._store
        if store is None:
            raise LedgerError(
                "the task is Serving and binds this runtime's key, but the runtime has no "
                "sealed state to take the model back from (start it with its --state-dir)",
                id="prediction.restart.no_state",
            )
        bundle, task_key = store.get("model"), store.get("task-key")
        if bundle is None or task_key is None or view.model_commitment is None:
            raise LedgerError(
                f"no sealed model in {store.directory}", id="prediction.restart.no_state"
            )
        model = open_bundle(bundle, view.model_commitment)  # hash first, parse only then
        feeds = 0
        for ds in self.spec.feed_datasets():
            sealed = store.get(f"feed-{ds.name}")
            if sealed is not None:
                self.feed_epochs[ds.name] = int.from_bytes(sealed[:8], "big")
                self.feeds[ds.name] = pa.ipc.open_stream(sealed[8:]).read_all().to_pandas()
                feeds += 1
        journal = [AuditLeaf.from_json(json.loads(r)) for r in store.records("audit")]
        batches = [
            (int(e.args["batch"]), bytes.fromhex(str(e.args["root"])[2:]), int(e.args["count"]))
            for e in read_events(self.consortium)
            if e.name == "AuditRootPosted" and e.args.get("task_id") == "0x" + self.task_id.hex()
        ]
        pending = self.audit.restore(journal, batches)
        self._refuse_rolled_back_feeds(journal)
        with self._lock:
            self.model, self._task_key = model, task_key
        self.resumed = ResumeReport(leaves=len(journal), pending=pending, feeds=feeds)
        self._runtime_leaf("prediction.runtime.restarted")
        log.info(
            "restarted: model re-checked and reloaded, %d feeds, %d journaled audit leaves "
            "(%d not yet on chain, posted next)",
            feeds,
            len(journal),
            pending,
        )
        self._ready.set()

    def _refuse_rolled_back_feeds(self, journal: list[AuditLeaf]) -> None:
        """Every feed epoch is an audit leaf, journaled before it is posted and checked
        against the chain's roots on restore: a sealed feed older than the newest epoch the
        journal holds was copied back by the host (a crash between sealing a feed and
        journaling it leaves the feed one epoch *ahead*, which is fine)."""
        newest: dict[str, int] = {}
        for leaf in journal:
            if leaf.outcome == "feed.received":
                for name, epoch in leaf.feed_epochs.items():
                    newest[name] = max(newest.get(name, -1), int(epoch))
        for name, epoch in sorted(newest.items()):
            sealed = self.feed_epochs.get(name)
            if sealed is None or sealed < epoch:
                raise SealedStateError(
                    f"the sealed feed {name!r} is "
                    f"{'missing' if sealed is None else f'at epoch {sealed}'}, but the audit "
                    f"log (anchored on chain) records epoch {epoch}: older sealed state was put "
                    "back; restore the newest state directory",
                    id="prediction.sealed.rolled_back",
                )

    def _serve_handover(self, channel: AttestedChannel) -> None:
        view = self.consortium.task(self.task_id)
        peer = channel.peer
        # Fresh evidence (appraised as the pinned analysis code) binding the chain address
        # the task is bound to: the bound runtime, re-attested for this connection.
        if not view.binds(ComponentKind.ANALYSIS, peer.chain_address):
            raise PeerRefused(
                "the peer is not the analysis runtime the chain binds to this task",
                id="prediction.handover.not_bound",
            )
        chunks = channel.receive_stream(
            StreamContext(self.task_id, "*", MODEL_STREAM), max_stream_bytes=1 << 31
        ).chunks
        if len(chunks) != 2:
            raise PeerRefused("malformed model hand-over", id="prediction.handover.malformed")
        bundle, task_key = chunks
        expected = view.model_commitment
        if expected is None:
            raise LedgerError("no model is committed on chain", id="prediction.task.not_trained")
        try:
            model = open_bundle(bundle, expected)  # hash first, parse only then
        except ModelError as exc:
            self.refusal = exc
            # What we received, on chain: a different bundle disputes the task.
            self.session.post_prediction_model_commitment(self.task_id, commitment(bundle))
            self._ready.set()
            raise
        with self._lock:
            self.model = model
            self._task_key = task_key
        if self._store is not None:  # sealed before the chain says Serving
            self._store.put("model", bundle)
            self._store.put("task-key", task_key)
        self.session.post_prediction_model_commitment(self.task_id, commitment(bundle))
        channel.send_stream(StreamContext(self.task_id, "*", "handover-done"), [b"ok"])
        log.info("model taken over (%d bytes); task Serving", len(bundle))
        self._ready.set()

    # ------------------------------------------------------------------ feeds

    def _serve_feed(self, channel: AttestedChannel) -> None:
        if not self._ready.wait(30) or self._task_key is None:
            raise PeerRefused("no model is taken over yet", id="prediction.feed.not_ready")
        assert self.identity is not None
        names = {ds.party: ds for ds in self.spec.feed_datasets()}

        def intake_for(party: str) -> PartyIntake:
            ds = names.get(party)
            if ds is None:
                raise PeerRefused(
                    f"{party!r} provides no feed this model needs", id="prediction.feed.not_needed"
                )
            if any(ds.released(c) and c in self.spec.join.on for c in ds.entity_columns):
                raise PeerRefused(
                    f"the {ds.name} feed is keyed by entity as well as time; such feeds are not "
                    "served yet, so forecasts needing it are refused rather than mis-aligned",
                    id="prediction.feed.keyed",
                )
            return PartyIntake(
                self.task_id, party, ds.released_columns(), suite=self.spec.task.crypto
            )

        intake = serve_intake(
            channel,
            task_id=self.task_id,
            own_fingerprint=channel.local_fingerprint,
            task_key=self._task_key,
            intake_for=intake_for,
            verify_party=self._verify_party,
            suite=self.spec.task.crypto,
        )
        if intake is None:
            return
        table = intake.table()
        ds = names[intake.party]
        try:
            frame = _feed_frame(self.spec, ds, table)
        except PeerRefused as exc:  # the epoch is not taken: audited, and said in the log
            self.audit.append(
                AuditLeaf(
                    task_id=self.task_id,
                    requester=intake.party,
                    request_digest=intake.commitment.root(),
                    outcome=exc.id,
                    response_digest=None,
                    feed_epochs={},
                    at_us=int(self._clock() * 1e6),
                )
            )
            raise
        with self._lock:
            epoch = self.feed_epochs.get(ds.name, -1) + 1
            self.feed_epochs[ds.name] = epoch
            self.feeds[ds.name] = frame
        if self._store is not None:
            self._store.put(f"feed-{ds.name}", epoch.to_bytes(8, "big") + _ipc(frame))
        self.audit.append(
            AuditLeaf(
                task_id=self.task_id,
                requester=intake.party,
                request_digest=intake.commitment.root(),
                outcome="feed.received",
                response_digest=None,
                feed_epochs={ds.name: epoch},
                at_us=int(self._clock() * 1e6),
            )
        )
        log.info("feed %s epoch %d: %d rows", ds.name, epoch, len(frame))

    # ------------------------------------------------------------------ forecasts

    def _serve_forecasts(self, channel: AttestedChannel) -> None:
        assert self.identity is not None
        while not self._stop.is_set():
            try:
                raw = channel.receive_stream(StreamContext(self.task_id, "*", REQUEST_STREAM))
            except ChronosealError:
                return  # the client closed the channel (or broke it): nothing to answer
            body, extra = (raw.chunks[0], raw.chunks[1:]) if raw.chunks else (b"", ())
            reply = self._answer(channel, body, extra)
            channel.send_stream(StreamContext(self.task_id, "*", RESPONSE_STREAM), reply)
            with self._lock:
                if channel.peer.fingerprint in self._closing:
                    self._closing.discard(channel.peer.fingerprint)
                    return  # refused as revoked, and audited: this session is over

    def _answer(
        self, channel: AttestedChannel, body: bytes, extra: tuple[bytes, ...] = ()
    ) -> list[bytes]:
        """One request → [json header, Arrow IPC forecast or nothing]; every outcome audited.
        ``extra`` is the requester's observations (Arrow IPC), when it sent any."""
        assert self.identity is not None
        digest = request_digest(body)
        party = ""
        epochs: dict[str, int] = {}
        try:
            request = decode_request(body)
            party = str(request.get("party", ""))
            signature = bytes.fromhex(str(request.get("signature", "")))
            signed = signing_digest(
                self.task_id, party, channel.peer.fingerprint, channel.local_fingerprint, request
            )
            with self._verify_lock:
                self._verify_party(party, signed, signature)
            revoked = self._revoked(channel)
            if revoked is not None:
                with self._lock:
                    self._closing.add(channel.peer.fingerprint)
                raise PeerRefused(revoked, id="prediction.measurement.revoked")
            if request.get("want") == "receipt":
                return [encode_json(self._receipt_answer(party, request.get("seq")))]
            self._admit(party, str(request.get("request_id", "")))
            if request.get("want") == INPUT_KEY:
                return [encode_json(self._input_key(party, digest))]
            # Hashed and decoded only for an admitted recipient, within its rate.
            observations = _observations(request, extra)
            frame, epochs, payload = self._forecast(party, request, observations)
            with self._lock:
                self._usage[party].queries += 1  # the budget counts forecasts served
        except (ChronosealError, ValueError) as exc:
            refusal = exc.id if isinstance(exc, ChronosealError) else "prediction.request.malformed"
            message = exc.message if isinstance(exc, ChronosealError) else str(exc)
            seq = self._record(party, digest, refusal, None, epochs)
            with self._lock:
                self.stats.refused += 1
                self.stats.refusals[refusal] = self.stats.refusals.get(refusal, 0) + 1
            return [encode_json({"refused": refusal, "message": message, "audit_seq": seq})]
        seq = self._record(party, digest, SERVED, hashlib.sha256(payload).digest(), epochs)
        with self._lock:
            self.stats.served += 1
        return [encode_json({"served": True, "audit_seq": seq, "rows": len(frame)}), payload]

    def _input_key(self, party: str, digest: bytes) -> dict[str, Any]:
        """The task key, to a series holder's gateway (as the training welcome gives it), so
        that its observations are desensitized exactly as its training rows were."""
        input_dataset(self.spec, party)
        if self._task_key is None:
            raise PeerRefused("no model is taken over yet", id="prediction.model.not_ready")
        seq = self._record(party, digest, INPUT_KEY, None, {})
        return {"task_key": self._task_key.hex(), "audit_seq": seq}

    def _revoked(self, channel: AttestedChannel) -> str | None:
        """Why this session may no longer be served — the chain revoked this runtime's
        measurement or the one the client attested with — re-read at most every
        ``recheck_interval`` seconds; None while both are usable."""
        key = channel.peer.fingerprint
        now = time.monotonic()
        with self._lock:
            cached = self._trust.get(key)
        if cached is not None and now - cached[0] < self._recheck:
            return cached[1]
        source = OnChainMeasurements(self.consortium)
        mine = self.spec.measurements.pins()[Component.PREDICTION]
        peer = channel.peer
        why = None
        if not source.is_usable(Component.PREDICTION.value, mine.tee, mine.digest):
            why = "this prediction runtime's measurement is no longer approved on chain"
        elif peer.appraisal.measurement is None or not source.is_usable(
            Component.GATEWAY.value, peer.evidence.tee, peer.appraisal.measurement
        ):
            why = "the measurement this client attested with is no longer approved on chain"
        with self._lock:
            self._trust[key] = (now, why)
        return why

    def _receipt_answer(self, party: str, seq: object) -> dict[str, Any]:
        """A requester's receipt, once its batch is on chain; only to the requester."""
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < self.audit.leaves:
            raise PeerRefused("no such audit record", id="prediction.receipt.unknown")
        receipt = self.audit.receipt(seq)
        if receipt is None:
            return {"pending": True}
        if receipt.leaf.requester != party:
            raise PeerRefused(
                "a receipt goes only to its requester", id="prediction.receipt.not_yours"
            )
        return {"receipt": receipt.to_json()}

    def _record(
        self,
        party: str,
        digest: bytes,
        outcome: str,
        response: bytes | None,
        epochs: dict[str, int],
    ) -> int:
        return self.audit.append(
            AuditLeaf(
                task_id=self.task_id,
                requester=party,
                request_digest=digest,
                outcome=outcome,
                response_digest=response,
                feed_epochs=epochs,
                at_us=int(self._clock() * 1e6),
            )
        )

    def _admit(self, party: str, request_id: str) -> None:
        """Recipient, fresh request id, within the query budget (forecasts served) and the
        rate (every request counts)."""
        limits = self.spec.release.forecasts
        if party not in limits.to:
            raise PeerRefused(
                f"{party!r} is not a recipient of this task's forecasts",
                id="prediction.request.not_recipient",
            )
        if not request_id or len(request_id) > 128:
            raise PeerRefused("a request needs a request_id", id="prediction.request.malformed")
        now = time.monotonic()
        with self._lock:
            usage = self._usage.setdefault(party, _Usage())
            if request_id in usage.seen:
                raise PeerRefused(
                    f"request {request_id!r} from {party} was already answered",
                    id="prediction.request.replayed",
                )
            if limits.max_queries is not None and usage.queries >= limits.max_queries:
                raise PeerRefused(
                    f"{party} has used its {limits.max_queries} forecast queries",
                    id="prediction.request.over_budget",
                )
            while usage.recent and now - usage.recent[0] > 60:
                usage.recent.popleft()
            if limits.per_minute is not None and len(usage.recent) >= limits.per_minute:
                raise PeerRefused(
                    f"{party} asked more than {limits.per_minute} times in a minute",
                    id="prediction.request.rate_limited",
                )
            usage.seen.add(request_id)
            usage.recent.append(now)

    def _forecast(
        self, party: str, request: dict[str, Any], observations: pa.Table | None = None
    ) -> tuple[pd.DataFrame, dict[str, int], bytes]:
        """The forecast of the series asked for, the feed epochs it used, as Arrow IPC."""
        model = self.model
        if model is None:
            raise PeerRefused("no model is taken over yet", id="prediction.model.not_ready")
        known = model.series
        if self.spec.join.kind == "horizontal":
            # Each party's series are its own (ids scoped "party/..."): a recipient is served
            # the forecasts of its own series only, never another party's.
            known = [s for s in known if s.startswith(f"{party}/")]
        asked = request.get("series") or known
        if not isinstance(asked, list) or not all(isinstance(s, str) for s in asked):
            raise PeerRefused("series must be a list of ids", id="prediction.request.malformed")
        unknown = sorted(set(asked) - set(known))
        if unknown:
            raise PeerRefused(
                f"the model knows no series {', '.join(unknown[:5])}",
                id="prediction.request.unknown_series",
            )
        h = self._horizon(request)
        level = self.spec.evaluation.level
        if observations is not None:
            # The requester's newest rows extend the history for this request only: its
            # forecast starts after them, and nothing of them stays for anyone else's.
            with self._lock:
                feeds = dict(self.feeds)
            rows = observation_rows(self.spec, party, observations, model, feeds)
            extended = model.with_observations(rows)
            future, epochs = self._future(extended, h)
            frame = extended.predict(h, future=future, level=level)
            frame = frame[frame[ID].isin(asked)].reset_index(drop=True)
            return frame, epochs, _ipc(frame)
        # The forecast depends only on the model and the feed epochs it uses: one model call
        # (and one staleness check) per new epoch set and horizon, and one encoding per set
        # of series asked for, however many requests.
        with self._lock:
            key = (tuple(sorted(self.feed_epochs.items())), h)
            cached = self._forecasts.get(key)
        if cached is None:
            future, epochs = self._future(model, h)
            cached = _Forecast(model.predict(h, future=future, level=level), epochs)
            with self._lock:
                self._forecasts = {key: cached}
        return cached.subset(tuple(sorted(set(asked))))

    def _horizon(self, request: dict[str, Any]) -> int:
        """Periods asked for: the task's horizon unless a shorter one is asked."""
        most = self.spec.model.horizon
        h = request.get("horizon", most)
        if not isinstance(h, int) or isinstance(h, bool) or not 1 <= h <= most:
            raise PeerRefused(
                f"horizon must be a whole number from 1 to the task's {most}",
                id="prediction.request.horizon",
            )
        return h

    def _future(self, model: LoadedModel, h: int) -> tuple[pd.DataFrame | None, dict[str, int]]:
        """The future-known covariates for the next ``h`` periods of every series, from the
        feeds; a feed that does not cover them is a refusal, never a silent gap."""
        wanted = list(model.recipe.future_known)
        if not wanted:
            return None, {}
        last = model.history.groupby(ID, sort=True)[DS].max()
        grid = pd.tseries.frequencies.to_offset(model.recipe.freq)
        future = pd.DataFrame(
            [
                (uid, t)
                for uid, end in last.items()
                for t in pd.date_range(end, periods=h + 1, freq=grid)[1:]
            ],
            columns=[ID, DS],
        )
        epochs: dict[str, int] = {}
        with self._lock:
            feeds = dict(self.feeds)
            epochs_now = dict(self.feed_epochs)
        for ds in self.spec.feed_datasets():
            columns = [f"{ds.name}__{c}" for c in ds.value_columns if f"{ds.name}__{c}" in wanted]
            if not columns:
                continue
            feed = feeds.get(ds.name)
            if feed is None:
                raise PeerRefused(
                    f"no feed from {ds.party} ({ds.name}) has arrived",
                    id="prediction.feed.missing",
                )
            merged = future[[DS]].drop_duplicates().merge(feed, on=DS, how="left")
            gaps = int(merged[columns].isna().any(axis=1).sum())
            if gaps:
                raise PeerRefused(
                    f"the {ds.name} feed does not cover {gaps} of the next {h} periods "
                    "(stale or incomplete); nothing is forecast from missing inputs",
                    id="prediction.feed.stale",
                )
            future = future.merge(feed[[DS, *columns]], on=DS, how="left")
            epochs[ds.name] = epochs_now[ds.name]
        missing = [c for c in wanted if c not in future.columns]
        if missing:
            raise PeerRefused(f"no feed carries {', '.join(missing)}", id="prediction.feed.missing")
        return future, epochs


def _feed_frame(spec: TaskSpec, ds: Dataset, table: pa.Table) -> pd.DataFrame:
    """A feed as the model's covariate columns by time (``dataset__column``), its times
    normalised as the join normalised the training rows (UTC, ``join.naive_timezone``, the
    model's grid under ``join.off_grid``) and repeated times combined by ``join.duplicates``
    — a feed read any other way would line covariates up with the wrong periods. A feed
    with no rows is an epoch too (forecasts that need it are then refused as stale)."""
    columns = [f"{ds.name}__{c}" for c in ds.value_columns if ds.released(c)]
    if ds.time_column not in table.column_names or not table.num_rows:
        return pd.DataFrame({DS: pd.Series([], dtype="datetime64[ns]")}).assign(
            **{c: pd.Series([], dtype="float64") for c in columns}
        )
    column = table.column(ds.time_column)
    grid = Grid.parse(spec.target_dataset().effective_frequency())
    try:
        times = to_utc(column, spec.join.naive_timezone, grid.alias)
    except (TimeRangeError, LocalTimeError, ZoneTimeError) as exc:
        raise PeerRefused(f"the {ds.name} feed: {exc}", id="prediction.feed.time") from None
    if int(times.isna().sum()):
        raise PeerRefused(f"the {ds.name} feed has rows without a time", id="prediction.feed.time")
    snapped = grid.snap(times)
    if spec.join.off_grid == "refuse" and bool((snapped != times).any()):
        raise PeerRefused(
            f"the {ds.name} feed has times off the model's {grid.alias!r} grid",
            id="prediction.feed.off_grid",
        )
    frame = pd.DataFrame({DS: snapped.to_numpy()})
    for c in ds.value_columns:
        if ds.released(c) and c in table.column_names:
            frame[f"{ds.name}__{c}"] = as_float(pd.Series(table.column(c).to_pandas())).to_numpy()
    repeated = int(frame.duplicated(DS).sum())
    if repeated:
        rule = spec.join.duplicates
        if rule == "refuse":
            raise PeerRefused(
                f"the {ds.name} feed repeats {repeated} times (join.duplicates = 'refuse')",
                id="prediction.feed.duplicate_keys",
            )
        frame = combine_repeated(frame, [DS], rule)
    return frame.sort_values(DS).reset_index(drop=True)


def _observations(request: dict[str, Any], extra: tuple[bytes, ...]) -> pa.Table | None:
    """The observations a request carries: one Arrow IPC chunk whose SHA-256 and row count
    the signed request states (so the signature covers them), or None."""
    declared = request.get("input")
    if declared is None and not extra:
        return None
    if not isinstance(declared, dict) or len(extra) != 1:
        raise PeerRefused(
            "observations travel as one chunk the request declares", id="prediction.input.malformed"
        )
    data = extra[0]
    if len(data) > MAX_INPUT_BYTES:
        raise PeerRefused(
            f"the observations are {len(data)} bytes; at most {MAX_INPUT_BYTES} are taken",
            id="prediction.input.too_large",
        )
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), str(declared.get("sha256", ""))):
        raise PeerRefused(
            "the observations do not hash to what the signed request states",
            id="prediction.input.digest",
        )
    try:
        table = pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise PeerRefused(
            "the observations are not Arrow IPC", id="prediction.input.malformed"
        ) from exc
    if table.num_rows != declared.get("rows"):
        raise PeerRefused(
            "the observations hold another number of rows than the request states",
            id="prediction.input.malformed",
        )
    return table


def _ipc(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
