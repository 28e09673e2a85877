"""Serving (a party's client → prediction runtime): forecasts to the task's recipients.

A request is signed by a key the chain registers for the party; only the parties
``[release] forecasts.to`` names are served, within their query budget and rate; every
answer and every refusal is an audit leaf, batched into one ``post_audit_root`` per batch,
and the requester gets a receipt it checks on chain. A session whose measurement (or this
runtime's) the chain revoked is refused and closed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from chronoseal.channel import AttestedChannel, StreamContext
from chronoseal.errors import ChronosealError, PeerRefused
from chronoseal.ledger import Consortium, OnChainMeasurements
from chronoseal.model import ID
from chronoseal.spec import Component, TaskSpec

from ._audit import SERVED, AuditLeaf, AuditLog
from ._feeds import Feeds, frame_ipc
from ._handover import Handover
from ._input import MAX_INPUT_BYTES, input_dataset, observation_rows
from ._wire import (
    INPUT_KEY,
    REQUEST_STREAM,
    RESPONSE_STREAM,
    PartyVerifier,
    decode_request,
    encode_json,
    request_digest,
    signing_digest,
)

_MAX_SUBSETS = 256


@dataclass
class ServingStats:
    served: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


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
                hit = self.subsets[series] = (rows, frame_ipc(rows))
        return hit[0], dict(self.epochs), hit[1]


@dataclass
class _Usage:
    queries: int = 0
    recent: deque[float] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)


class Serving:
    """Answers one task's forecast requests from the model the hand-over holds."""

    def __init__(
        self,
        consortium: Consortium,
        spec: TaskSpec,
        task_id: bytes,
        audit: AuditLog,
        handover: Handover,
        feeds: Feeds,
        *,
        verify_party: PartyVerifier,
        clock: Callable[[], float],
        recheck_interval: float,
        stop: threading.Event,
    ) -> None:
        self.consortium = consortium
        self.spec = spec
        self.task_id = task_id
        self.audit = audit
        self._handover = handover
        self._feeds = feeds
        self._verify_party = verify_party
        self._verify_lock = threading.Lock()
        self._clock = clock
        self._recheck = recheck_interval
        self._stop = stop
        self._lock = threading.Lock()
        self._forecasts: dict[tuple[Any, int], _Forecast] = {}
        self._usage: dict[str, _Usage] = {}
        self._trust: dict[bytes, tuple[float, str | None]] = {}
        self._closing: set[bytes] = set()  # sessions whose last answer refused them as revoked
        self.stats = ServingStats()

    def serve(self, channel: AttestedChannel) -> None:
        """Answer a client's requests until it closes the channel (or is refused as revoked)."""
        while not self._stop.is_set():
            try:
                raw = channel.receive_stream(StreamContext(self.task_id, "*", REQUEST_STREAM))
            except ChronosealError:
                return  # the client closed the channel (or broke it): nothing to answer
            body, extra = (raw.chunks[0], raw.chunks[1:]) if raw.chunks else (b"", ())
            reply = self.answer(channel, body, extra)
            channel.send_stream(StreamContext(self.task_id, "*", RESPONSE_STREAM), reply)
            with self._lock:
                if channel.peer.fingerprint in self._closing:
                    self._closing.discard(channel.peer.fingerprint)
                    return  # refused as revoked, and audited: this session is over

    def answer(
        self, channel: AttestedChannel, body: bytes, extra: tuple[bytes, ...] = ()
    ) -> list[bytes]:
        """One request → [json header, Arrow IPC forecast or nothing]; every outcome audited.
        ``extra`` is the requester's observations (Arrow IPC), when it sent any."""
        digest = request_digest(body)
        party = ""
        epochs: dict[str, int] = {}
        try:
            request = decode_request(body)
            party = str(request.get("party", ""))
            self._authenticate(channel, party, request)
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

    # ------------------------------------------------------------------ who may ask

    def _authenticate(self, channel: AttestedChannel, party: str, request: dict[str, Any]) -> None:
        """The request is signed by a key the chain registers for ``party``, bound to this
        session, and neither side's measurement is revoked since the session opened."""
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

    # ------------------------------------------------------------------ answers

    def _input_key(self, party: str, digest: bytes) -> dict[str, Any]:
        """The task key, to a series holder's gateway (as the training welcome gives it), so
        that its observations are desensitized exactly as its training rows were."""
        input_dataset(self.spec, party)
        task_key = self._handover.task_key
        if task_key is None:
            raise PeerRefused("no model is taken over yet", id="prediction.model.not_ready")
        seq = self._record(party, digest, INPUT_KEY, None, {})
        return {"task_key": task_key.hex(), "audit_seq": seq}

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

    def _forecast(
        self, party: str, request: dict[str, Any], observations: pa.Table | None = None
    ) -> tuple[pd.DataFrame, dict[str, int], bytes]:
        """The forecast of the series asked for, the feed epochs it used, as Arrow IPC."""
        model = self._handover.model
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
            feeds, _ = self._feeds.snapshot()
            rows = observation_rows(self.spec, party, observations, model, feeds)
            extended = model.with_observations(rows)
            future, epochs = self._feeds.future(extended, h)
            frame = extended.predict(h, future=future, level=level)
            frame = frame[frame[ID].isin(asked)].reset_index(drop=True)
            return frame, epochs, frame_ipc(frame)
        # The forecast depends only on the model and the feed epochs it uses: one model call
        # (and one staleness check) per new epoch set and horizon, and one encoding per set
        # of series asked for, however many requests.
        _, epochs_now = self._feeds.snapshot()
        key = (tuple(sorted(epochs_now.items())), h)
        with self._lock:
            cached = self._forecasts.get(key)
        if cached is None:
            future, epochs = self._feeds.future(model, h)
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
