"""The prediction runtime (claims 1, 5): take the sealed model over, take feature feeds,
serve forecasts to the task's recipients, and audit every request at constant chain cost.

Once the task is Trained the runtime attests (RA-TLS identity bound to a recent block and to
its chain address) and posts its attestation. It serves three attested channels, each in its
own module: **hand-over** (analysis runtime → here, :mod:`._handover`), **feeds** (gateway →
here, :mod:`._feeds`) and **forecasts** (a party's client → here, :mod:`._serving`). This
module composes them: one identity, re-attested as it ages, one audit log, one sealed store,
and the restart that takes all of it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
from eth_account import Account

from chronoseal.attest import Attester, sealing_key
from chronoseal.channel import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_VALIDITY,
    AttestedChannel,
    ChannelServer,
    RaTlsIdentity,
)
from chronoseal.errors import ChronosealError, LedgerError, PeerRefused
from chronoseal.ledger import (
    ChainComponent,
    ChainTee,
    ComponentSession,
    Consortium,
    RecentBlocks,
    TaskState,
    TaskView,
    read_events,
)
from chronoseal.model import LoadedModel
from chronoseal.spec import Component, TaskSpec, task_id
from chronoseal.trust import TaskTrust

from ._audit import AuditLeaf, AuditLog, audit_root_poster
from ._feeds import Feeds
from ._handover import Handover
from ._sealed import SealedStore
from ._serving import Serving, ServingStats
from ._wire import PartyVerifier, party_key_verifier

log = logging.getLogger("chronoseal.prediction")


REATTEST_BLOCKS = 32
"""Re-attest after this many blocks: half the window clients accept evidence from."""


@dataclass(frozen=True)
class ResumeReport:
    """What a restarted runtime took back from its sealed state."""

    leaves: int
    pending: int
    feeds: int


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
        self._clock = clock
        self.identity: RaTlsIdentity | None = None
        self._sockets: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._servers: list[ChannelServer] = []
        self._reattest_blocks = reattest_blocks
        self._identity_block = 0
        self._validity = identity_validity
        self._identity_at = 0.0
        self.resumed: ResumeReport | None = None
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
        verify = verify_party or party_key_verifier(consortium)
        self._handover = Handover(consortium, self.task_id, self.session, store)
        self._feeds = Feeds(
            spec, self.task_id, self.audit, verify_party=verify, clock=clock, store=store
        )
        self._serving = Serving(
            consortium,
            spec,
            self.task_id,
            self.audit,
            self._handover,
            self._feeds,
            verify_party=verify,
            clock=clock,
            recheck_interval=recheck_interval,
            stop=self._stop,
        )

    @property
    def model(self) -> LoadedModel | None:
        """The model taken over, once its hash matched the chain's commitment."""
        return self._handover.model

    @property
    def refusal(self) -> ChronosealError | None:
        """Why the hand-over was refused (the task is then Disputed), if it was."""
        return self._handover.refusal

    @property
    def feeds(self) -> dict[str, pd.DataFrame]:
        """The newest feed frame of each feed dataset, by dataset name."""
        return self._feeds.frames

    @property
    def feed_epochs(self) -> dict[str, int]:
        """The newest feed epoch of each feed dataset, by dataset name."""
        return self._feeds.epochs

    @property
    def stats(self) -> ServingStats:
        return self._serving.stats

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
            ChainComponent.PREDICTION, self.session.address
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
                ChainComponent.PREDICTION,
                ChainTee.of(self.attester.tee),
                pins[Component.PREDICTION].digest,
                hashlib.sha256(self.identity.evidence.to_bytes()).digest(),
                self.identity.fingerprint,
            )
        # A party asks for forecasts through its gateway (its code, its pinned measurement).
        servers: dict[str, tuple[Component, Callable[[AttestedChannel], None]]] = {
            "handover": (Component.ANALYSIS, self._handover.serve),
            "feeds": (Component.GATEWAY, self._serve_feed),
            "forecasts": (Component.GATEWAY, self._serving.serve),
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
        self._feeds.wait(parties, timeout)

    def wait_serving(self, timeout: float) -> bool:
        """Until the model is taken over and the task is Serving (or a refusal)."""
        if not self._handover.ready.wait(timeout):
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
        if not self._handover.ready.is_set():
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

    # ------------------------------------------------------------------ feeds and restart

    def _serve_feed(self, channel: AttestedChannel) -> None:
        """A feed is desensitized under the task key, so it waits for the hand-over."""
        handover = self._handover
        if not handover.ready.wait(30) or handover.task_key is None:
            raise PeerRefused("no model is taken over yet", id="prediction.feed.not_ready")
        self._feeds.serve(channel, handover.task_key)

    def _resume(self, view: TaskView) -> None:
        """The model, task key, feeds and audit journal back from sealed state; the bundle's
        hash is checked against the chain's model commitment before anything is parsed."""
        model, task_key = self._handover.unseal(view)
        store = self._store
        assert store is not None  # unseal refuses a runtime without sealed state
        feeds = self._feeds.restore(store)
        journal = [AuditLeaf.from_json(json.loads(r)) for r in store.records("audit")]
        batches = [
            (int(e.args["batch"]), bytes.fromhex(str(e.args["root"])[2:]), int(e.args["count"]))
            for e in read_events(self.consortium)
            if e.name == "AuditRootPosted" and e.args.get("task_id") == "0x" + self.task_id.hex()
        ]
        pending = self.audit.restore(journal, batches)
        self._feeds.refuse_rolled_back(journal)
        self._handover.hold(model, task_key)
        self.resumed = ResumeReport(leaves=len(journal), pending=pending, feeds=feeds)
        self._runtime_leaf("prediction.runtime.restarted")
        log.info(
            "restarted: model re-checked and reloaded, %d feeds, %d journaled audit leaves "
            "(%d not yet on chain, posted next)",
            feeds,
            len(journal),
            pending,
        )
        self._handover.ready.set()
