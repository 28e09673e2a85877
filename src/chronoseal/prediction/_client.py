"""A party's forecast client: an attested channel to the task's bound prediction runtime,
requests signed with a key the chain registers for the party, receipts checked on chain."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from chronoseal.attest import Attester
from chronoseal.channel import (
    DEFAULT_IO_TIMEOUT,
    AttestedChannel,
    StreamContext,
)
from chronoseal.errors import DataError, LedgerError, PeerRefused
from chronoseal.ledger import ChainComponent, Consortium
from chronoseal.model import ZoneTimeError, apply_zone_rule
from chronoseal.privacy import Desensitizer, dataset_cost
from chronoseal.spec import Component, TaskSpec, task_id
from chronoseal.trust import TaskTrust

from ._audit import Receipt
from ._input import input_dataset
from ._wire import (
    INPUT_KEY,
    REQUEST_STREAM,
    RESPONSE_STREAM,
    decode_json,
    encode_json,
    signing_digest,
)

#: Requests a client may have in flight on one connection: enough to hide round trips,
#: few enough that the answers fit the socket buffers while it is still sending.
MAX_WINDOW = 64
#: Signs a 32-byte digest with a key the chain registers for the party.
Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Answer:
    """One request's outcome: a forecast (long format) or a refusal id; its audit number."""

    request_id: str
    audit_seq: int
    forecast: pd.DataFrame | None = None
    refused: str | None = None
    message: str = ""
    response_digest: bytes | None = None


class ForecastClient:
    """One party's forecast session with the task's prediction runtime, through its gateway
    identity (the code and measurement the task pins for gateways)."""

    def __init__(
        self,
        consortium: Consortium,
        spec: TaskSpec,
        *,
        party: str,
        sign: Signer,
        attester: Attester,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
    ) -> None:
        self.consortium = consortium
        self.spec = spec
        self.task_id = task_id(spec)
        self.party = party
        self._sign = sign
        self._trust = TaskTrust(
            consortium, spec, Component.GATEWAY, attester, io_timeout=io_timeout
        )
        self._channel: AttestedChannel | None = None
        self._own_fp = b""
        self._task_key: bytes | None = None

    def open(self, address: tuple[str, int]) -> None:
        """Connect, appraise the runtime, and check it is the one the chain binds."""
        channel, identity = self._trust.connect(address, Component.PREDICTION)
        # The evidence appraised just now (pinned code, approved, fresh) binds the chain key
        # the task binds: the bound runtime, attested for this session. It may be newer than
        # the record posted at hand-over: the runtime re-attests as blocks pass and after a
        # restart, and logs each refresh in its audit batches.
        view = self.consortium.task(self.task_id)
        peer = channel.peer
        if not view.binds(ChainComponent.PREDICTION, peer.chain_address):
            channel.close()
            raise PeerRefused(
                "this attested runtime is not the prediction runtime the chain binds to the task",
                id="prediction.runtime.not_on_chain",
            )
        self._channel = channel
        self._own_fp = identity.fingerprint

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> ForecastClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(
        self, request: dict[str, Any], extra: bytes | None = None
    ) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        self._send(request, extra)
        return self._receive()

    def _send(self, request: dict[str, Any], extra: bytes | None = None) -> None:
        channel = self._open_channel()
        body = dict(request, party=self.party)
        digest = signing_digest(
            self.task_id, self.party, self._own_fp, channel.peer.fingerprint, body
        )
        body["signature"] = self._sign(digest).hex()
        sent = [encode_json(body), *([extra] if extra is not None else [])]
        channel.send_stream(StreamContext(self.task_id, "*", REQUEST_STREAM), sent)

    def _receive(self) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        channel = self._open_channel()
        chunks = channel.receive_stream(StreamContext(self.task_id, "*", RESPONSE_STREAM)).chunks
        if not chunks:
            raise PeerRefused("empty answer", id="prediction.answer.malformed")
        return decode_json(chunks[0], "answer", id="prediction.answer.malformed"), chunks[1:]

    def _open_channel(self) -> AttestedChannel:
        if self._channel is None:
            raise LedgerError("open() the client first", id="prediction.client.closed")
        return self._channel

    def forecast(
        self,
        series: list[str] | None = None,
        request_id: str | None = None,
        *,
        observations: pa.Table | None = None,
        horizon: int | None = None,
    ) -> Answer:
        """Forecasts of the next horizon (all the model's series unless ``series``; fewer
        periods with ``horizon``). ``observations`` are this party's own rows since the
        training window, raw as its source holds them: they are desensitized here under the
        task's policy, as its training rows were, and the forecast starts after them."""
        rid = request_id or os.urandom(12).hex()
        request: dict[str, Any] = {"request_id": rid, "series": series or []}
        if horizon is not None:
            request["horizon"] = horizon
        extra = None
        if observations is not None:
            extra, rows = self._desensitized(observations)
            request["input"] = {"sha256": hashlib.sha256(extra).hexdigest(), "rows": rows}
        self._send(request, extra)
        return self._answer(rid)

    def pipelined(
        self,
        count: int,
        *,
        window: int = 16,
        series: list[str] | None = None,
        horizon: int | None = None,
        timings: list[float] | None = None,
    ) -> list[Answer]:
        """``count`` forecast requests with up to ``window`` in flight on this connection
        (the runtime answers them in order): what a busy client does instead of waiting
        out each round trip. With ``timings``, each request's seconds from send to answer
        are appended to it."""
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be from 1 to {MAX_WINDOW}")
        answers: list[Answer] = []
        pending: deque[tuple[str, float]] = deque()
        request: dict[str, Any] = {"series": series or []}
        if horizon is not None:
            request["horizon"] = horizon
        sent = 0
        while len(answers) < count:
            while sent < count and len(pending) < window:
                rid = os.urandom(12).hex()
                self._send(dict(request, request_id=rid))
                pending.append((rid, time.perf_counter()))
                sent += 1
            rid, at = pending.popleft()
            answers.append(self._answer(rid))
            if timings is not None:
                timings.append(time.perf_counter() - at)
        return answers

    def _answer(self, rid: str) -> Answer:
        header, rest = self._receive()
        seq = int(header.get("audit_seq", -1))
        if "refused" in header:
            return Answer(
                rid, seq, refused=str(header["refused"]), message=header.get("message", "")
            )
        if not rest:
            raise PeerRefused(
                "a served answer without a forecast", id="prediction.answer.malformed"
            )
        frame = pa.ipc.open_stream(io.BytesIO(rest[0])).read_all().to_pandas()
        return Answer(rid, seq, forecast=frame, response_digest=hashlib.sha256(rest[0]).digest())

    def _desensitized(self, observations: pa.Table) -> tuple[bytes, int]:
        """Our observations under the task's policy (the task key from the runtime, as the
        training welcome gives it), as Arrow IPC, and how many rows that is."""
        dataset = input_dataset(self.spec, self.party)
        policy = dataset.policy
        if dataset_cost(dataset).epsilon > 0 or policy.k_threshold is not None:
            raise DataError(
                f"the policy of {dataset.name!r} adds noise or suppresses rare entities; both "
                "are defined over the whole dataset and its privacy budget, not over a few new "
                "rows sent with each request, so observations of it cannot be sent",
                id="prediction.input.policy",
            )
        observations = _zoned(observations, dataset.time_column, dataset.frequency)
        if self._task_key is None:
            header, _ = self._ask({"want": INPUT_KEY, "request_id": os.urandom(12).hex()})
            if "refused" in header:
                raise PeerRefused(str(header.get("message", "")), id=str(header["refused"]))
            try:
                self._task_key = bytes.fromhex(str(header["task_key"]))
            except (KeyError, ValueError) as exc:
                raise PeerRefused(
                    "the runtime sent no task key", id="prediction.answer.malformed"
                ) from exc
        desensitizer = Desensitizer(dataset, task_key=self._task_key, task_id=self.task_id)
        batches = list(desensitizer.run(observations.to_batches))
        if not batches:
            raise DataError(
                "the observations hold no rows (or none the policy releases)",
                id="prediction.input.empty",
            )
        table = pa.Table.from_batches(batches)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue(), table.num_rows

    def receipt(self, seq: int, *, timeout: float = 30.0) -> Receipt:
        """The audit receipt of our request ``seq``, once its batch is on chain."""
        deadline = time.monotonic() + timeout
        while True:
            header, _ = self._ask({"want": "receipt", "seq": seq})
            if "receipt" in header:
                return Receipt.from_json(header["receipt"])
            if "refused" in header:
                raise PeerRefused(str(header.get("message", "")), id=str(header["refused"]))
            if time.monotonic() > deadline:
                raise LedgerError(
                    f"audit record {seq} is not on chain after {timeout:.0f} s",
                    id="prediction.receipt.pending",
                )
            time.sleep(0.2)


def _zoned(table: pa.Table, time: str, frequency: str) -> pa.Table:
    """Our observations' times under the zone rule the gateway applies to training rows
    (:func:`~chronoseal.model.apply_zone_rule`), before the policy shifts or buckets them:
    a local midnight on a grid of dates is its own date, whatever the zone."""
    if time not in table.column_names:
        return table  # the runtime names the missing column
    try:
        ruled = apply_zone_rule(table.column(time), frequency)
    except ZoneTimeError as exc:
        raise DataError(
            f"column {time!r}: {exc.message}",
            id="prediction.input.not_local_midnight",
            context={"column": time, "rows": exc.count},
        ) from None
    return table.set_column(table.schema.get_field_index(time), time, ruled)
