"""Hand-over (analysis runtime → prediction runtime): the sealed model and the task key.

The peer must be the analysis runtime the chain binds to the task; it sends the model bundle
and the task key, HPKE-sealed to this runtime's attested key. The bundle's SHA-256 is checked
against the on-chain model commitment *before* anything in it is parsed; then this runtime
posts its own commitment (equal → Serving, different → Disputed). A restarted runtime takes
the same model back from its sealed state, checked against the chain the same way.
"""

from __future__ import annotations

import logging
import threading

from chronoseal.channel import AttestedChannel, StreamContext
from chronoseal.errors import ChronosealError, LedgerError, ModelError, PeerRefused
from chronoseal.ledger import ChainComponent, ComponentSession, Consortium, TaskView
from chronoseal.model import LoadedModel, commitment, open_bundle

from ._sealed import SealedStore
from ._wire import MODEL_STREAM

log = logging.getLogger("chronoseal.prediction")


class Handover:
    """The model and task key this runtime holds, once checked against the chain."""

    def __init__(
        self,
        consortium: Consortium,
        task_id: bytes,
        session: ComponentSession,
        store: SealedStore | None,
    ) -> None:
        self.consortium = consortium
        self.task_id = task_id
        self.session = session
        self._store = store
        self._lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.task_key: bytes | None = None
        self.refusal: ChronosealError | None = None
        #: Set once the model is taken over (or the hand-over refused: see ``refusal``).
        self.ready = threading.Event()

    def serve(self, channel: AttestedChannel) -> None:
        """Take the model over from the analysis runtime the chain binds to the task."""
        view = self.consortium.task(self.task_id)
        peer = channel.peer
        # Fresh evidence (appraised as the pinned analysis code) binding the chain address
        # the task is bound to: the bound runtime, re-attested for this connection.
        if not view.binds(ChainComponent.ANALYSIS, peer.chain_address):
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
            self.ready.set()
            raise
        self.hold(model, task_key)
        if self._store is not None:  # sealed before the chain says Serving
            self._store.put("model", bundle)
            self._store.put("task-key", task_key)
        self.session.post_prediction_model_commitment(self.task_id, commitment(bundle))
        channel.send_stream(StreamContext(self.task_id, "*", "handover-done"), [b"ok"])
        log.info("model taken over (%d bytes); task Serving", len(bundle))
        self.ready.set()

    def unseal(self, view: TaskView) -> tuple[LoadedModel, bytes]:
        """The model and task key back from sealed state (a restart while Serving); the
        bundle's hash is checked against the chain's model commitment before it is parsed."""
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
        return open_bundle(bundle, view.model_commitment), task_key  # hash first, then parse

    def hold(self, model: LoadedModel, task_key: bytes) -> None:
        with self._lock:
            self.model = model
            self.task_key = task_key
