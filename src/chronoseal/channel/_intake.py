"""The data plane between a party's gateway and the analysis runtime, over an attested channel.

Every message is one secure stream (HPKE-sealed key, AES-GCM frames, all-or-nothing), bound
to ``(task id, party, message id)``, except the acknowledgements: they are the frames of one
stream per connection (``acks``, opened after the welcome), each frame a whole message
``u64 index ‖ leaf`` that the gateway uses as soon as that frame authenticated (see
``SecureStreamReader``)::

    gateway                                   analysis runtime
    hello  {party, sig(org key)}  ──────────►  checks the party is a data provider of the task
                                               and the signature is by a key the chain
                                               registers for that party
           ◄──────────  welcome {task key, batches already held: [(index, salt)]}
    msg-i  "B" ‖ salt ‖ Arrow IPC  ─────────►  decodes, checks the schema, keeps it (memory)
           ◄──────────  acks frame: i ‖ leaf_i   (up to DEFAULT_WINDOW batches in flight)
    msg-n  "E" ‖ {count, root}  ────────────►  compares with its own root
           ◄──────────  acks final frame, then done {root}

An acknowledgement frame is authenticated under the ``acks`` stream's own key (sealed to this
gateway's attested HPKE key), with the task, the party and its frame index in the AAD; it
names its batch index and leaf, and the gateway checks both against the batch it sent. A
tampered, replayed, reordered or foreign acknowledgement fails like any frame; a stream cut
short leaves the gateway waiting for an acknowledgement it never accepts. One stream per
connection instead of one per batch saves an HPKE seal and open, a key schedule and three
writes per batch.

After training, a party fetches what the task releases to it on a fresh connection: the same
hello with ``want = "release"``, answered by ``"R" ‖ release`` or ``"X" ‖ {id, message}``
(nothing for this party, or not trained yet).

The hello signature binds the party's on-chain identity to *this* channel: it covers the task
id, the party and both attested certificates' fingerprints, so it cannot be replayed to
another runtime or by another gateway. A reconnecting gateway learns which batches the
runtime already holds and with which salts, recomputes those leaves from its own source
(so its commitment stays its own) and continues with the next batch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from chronoseal._decode import loads_json
from chronoseal.channel._commitment import SALT_LEN, BatchCommitment
from chronoseal.channel._framing import StreamContext, Suite
from chronoseal.channel._session import AttestedChannel, ChannelStreamReader
from chronoseal.channel._wire import U64
from chronoseal.errors import ChronosealError, PeerRefused, StreamIntegrityError

TASK_KEY_LEN = 32
#: Batches a gateway may send before it waits for the oldest acknowledgement: enough to keep
#: both ends busy, few enough that a restart re-sends little.
DEFAULT_WINDOW = 8
ANY_PARTY = "*"
_BATCH = b"B"
_END = b"E"
_RELEASE = b"R"
_REFUSED = b"X"
#: The stream id of a connection's acknowledgements.
ACKS = "acks"
_ACK_LEN = U64.size + 32
WANT_STREAM = "stream"
WANT_RELEASE = "release"
_HELLO_LABEL = b"chronoseal.intake.hello.v1"

#: Signs the hello digest with a key the chain registers for the party (gateway side).
PartySigner = Callable[[bytes], bytes]
#: Raises unless ``signature`` over ``digest`` is by a current key of ``party`` (runtime side).
PartyVerifier = Callable[[str, bytes, bytes], None]


def hello_digest(task_id: bytes, party: str, gateway_fp: bytes, runtime_fp: bytes) -> bytes:
    """What the party's key signs: this task, this party, these two attested endpoints."""
    return hashlib.sha256(
        _HELLO_LABEL
        + len(task_id).to_bytes(2, "big")
        + task_id
        + len(party.encode()).to_bytes(2, "big")
        + party.encode()
        + gateway_fp
        + runtime_fp
    ).digest()


def encode_batch(batch: pa.RecordBatch) -> bytes:
    """Arrow IPC stream bytes of one batch: deterministic for equal batches.

    Written into memory of exactly its size (a counting pass first), not into a buffer that
    grows by reallocating, which moved every byte again on each growth."""
    counted = pa.MockOutputStream()
    _write_stream(counted, batch)
    encoded = pa.allocate_buffer(counted.size())
    _write_stream(pa.FixedSizeBufferWriter(encoded), batch)
    return bytes(encoded.to_pybytes())


def _write_stream(sink: pa.NativeFile, batch: pa.RecordBatch) -> None:
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)


def decode_batch(payload: bytes) -> pa.RecordBatch:
    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise StreamIntegrityError(
            f"a batch is not valid Arrow IPC: {exc}", id="channel.intake.bad_batch"
        ) from exc
    batches = table.to_batches()
    if len(batches) != 1:
        raise StreamIntegrityError(
            f"a batch message must hold exactly one record batch, got {len(batches)}",
            id="channel.intake.bad_batch",
        )
    return batches[0]


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


#: A hello, welcome, end or refusal message is a few fields.
_MAX_MESSAGE = 1 << 20


def _unjson(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = loads_json(data, max_bytes=_MAX_MESSAGE, what=f"{what} message")
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamIntegrityError(
            f"malformed {what} message", id="channel.intake.bad_message"
        ) from exc
    if not isinstance(obj, dict):
        raise StreamIntegrityError(f"malformed {what} message", id="channel.intake.bad_message")
    return obj


def _one(chunks: tuple[bytes, ...], what: str) -> bytes:
    if len(chunks) != 1:
        raise StreamIntegrityError(
            f"a {what} message must be one chunk, got {len(chunks)}",
            id="channel.intake.bad_message",
        )
    return chunks[0]


@dataclass(frozen=True)
class Welcome:
    task_key: bytes
    held: list[tuple[int, bytes]]
    #: The runtime's leaf of each held batch: a resuming gateway checks its re-read against it.
    leaves: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class IntakeResult:
    """What the gateway sent, as both ends agreed on it."""

    batches: int
    rows: int
    payload_bytes: int
    root: bytes
    runtime_root: bytes

    @property
    def matched(self) -> bool:
        return hmac.compare_digest(self.root, self.runtime_root)


class GatewayIntake:
    """The gateway's end of the data plane for one (task, party)."""

    def __init__(
        self,
        channel: AttestedChannel,
        *,
        task_id: bytes,
        party: str,
        own_fingerprint: bytes,
        sign: PartySigner,
        window: int = DEFAULT_WINDOW,
        suite: Suite = "standard",
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        channel.use_suite(suite)
        self._ch = channel
        self._task = task_id
        self._party = party
        self._fp = own_fingerprint
        self._sign = sign
        self._window = window
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._acks: ChannelStreamReader | None = None
        self._held_leaves: list[bytes] = []
        self.commitment = BatchCommitment(task_id, party, suite=suite)

    def _ctx(self, stream: str) -> StreamContext:
        return StreamContext(self._task, self._party, stream)

    def close(self) -> None:
        self._ch.close()

    def __enter__(self) -> GatewayIntake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hello(self, want: str) -> None:
        digest = hello_digest(self._task, self._party, self._fp, self._ch.peer.fingerprint)
        body = {
            "party": self._party,
            "signature": self._sign(digest).hex(),
            "want": want,
            "window": self._window,
        }
        self._ch.send_stream(StreamContext(self._task, ANY_PARTY, "hello"), [_json(body)])

    def fetch_release(self) -> bytes:
        """Ask for what the task releases to this party; raises :class:`PeerRefused` with the
        runtime's refusal id when there is nothing (yet)."""
        self._hello(WANT_RELEASE)
        chunks = self._ch.receive_stream(self._ctx("release")).chunks
        if len(chunks) == 2 and chunks[0] == _RELEASE:
            return chunks[1]
        if len(chunks) == 2 and chunks[0] == _REFUSED:
            refusal = _unjson(chunks[1], "refusal")
            raise PeerRefused(
                str(refusal.get("message", "the runtime refused")),
                id=str(refusal.get("id", "analysis.release.refused")),
            )
        raise StreamIntegrityError("malformed release message", id="channel.intake.bad_message")

    def hello(self) -> Welcome:
        self._hello(WANT_STREAM)
        reply = _unjson(
            _one(self._ch.receive_stream(self._ctx("welcome")).chunks, "welcome"), "welcome"
        )
        try:
            key = bytes.fromhex(reply["task_key"])
            held = [(int(i), bytes.fromhex(s)) for i, s in reply["held"]]
            leaves = [bytes.fromhex(leaf) for leaf in reply["leaves"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise StreamIntegrityError(
                "malformed welcome", id="channel.intake.bad_message"
            ) from exc
        if (
            len(key) != TASK_KEY_LEN
            or [i for i, _ in held] != list(range(len(held)))
            or len(leaves) != len(held)
        ):
            raise StreamIntegrityError("malformed welcome", id="channel.intake.bad_message")
        self._held_leaves = leaves
        return Welcome(key, held, leaves)

    def replay(self, index: int, salt: bytes, payload: bytes) -> None:
        """Recompute the leaf of a batch the runtime already holds, from our own source.

        The gateway's commitment stays its own; a re-read that differs from what the runtime
        holds (the source changed since the stream began) is refused here, before anything
        more is sent, rather than left to the chain's comparison of the roots.
        """
        leaf = self.commitment.add(index, salt, payload)
        held = self._held_leaves[index] if index < len(self._held_leaves) else None
        if held is None or not hmac.compare_digest(held, leaf):
            raise StreamIntegrityError(
                f"batch {index}, read again from the source, differs from the batch the "
                "runtime holds: the source changed since the stream began (or yields fewer "
                "rows); abort the task and propose it again",
                id="channel.intake.resume_mismatch",
            )

    def send(self, payload: bytes) -> None:
        """Send the next batch; at most ``window`` batches are in flight unacknowledged."""
        index = len(self.commitment.leaves)
        salt = os.urandom(SALT_LEN)
        leaf = self.commitment.add(index, salt, payload)
        self._ch.send_stream(self._ctx(f"msg-{index}"), [_BATCH, salt, payload])
        self._unacked.append((index, leaf))
        if len(self._unacked) >= self._window:
            self._take_ack()

    def _ack_stream(self) -> ChannelStreamReader:
        if self._acks is None:
            self._acks = self._ch.open_reader(self._ctx(ACKS))
        return self._acks

    def _take_ack(self) -> None:
        index, leaf = self._unacked.popleft()
        ack = self._ack_stream().next_chunk()
        if ack is None or len(ack) != _ACK_LEN:
            raise StreamIntegrityError(
                f"the runtime's acknowledgement of batch {index} is missing or malformed",
                id="channel.intake.bad_message",
            )
        acked = int(U64.unpack(ack[: U64.size])[0])
        if acked != index or not hmac.compare_digest(ack[U64.size :], leaf):
            raise StreamIntegrityError(
                f"the runtime acknowledged batch {acked} with a leaf where batch {index} "
                "and its leaf were due",
                id="channel.intake.ack_mismatch",
            )

    def finish(self) -> bytes:
        """End the stream and check every acknowledgement still due; returns the runtime's
        root (the comparison that counts is the contract's). The end goes out before the last
        acknowledgements are awaited: a runtime that reads the next message while it accepts
        a batch acknowledges the last batch once it has read the end."""
        body = {"count": len(self.commitment.leaves), "root": self.commitment.root().hex()}
        self._ch.send_stream(self._ctx(f"msg-{len(self.commitment.leaves)}"), [_END, _json(body)])
        while self._unacked:
            self._take_ack()
        if self._ack_stream().next_chunk() is not None:
            raise StreamIntegrityError(
                "the runtime acknowledged more batches than were sent",
                id="channel.intake.bad_message",
            )
        reply = _unjson(_one(self._ch.receive_stream(self._ctx("done")).chunks, "done"), "done")
        try:
            return bytes.fromhex(reply["root"])
        except (KeyError, ValueError, TypeError) as exc:
            raise StreamIntegrityError("malformed done", id="channel.intake.bad_message") from exc


@dataclass
class PartyIntake:
    """What the runtime holds from one party: decoded batches and its own commitment."""

    task_id: bytes
    party: str
    expected_columns: list[str]
    salts: list[bytes] = field(default_factory=list)
    batches: list[pa.RecordBatch] = field(default_factory=list)
    complete: bool = False
    commitment: BatchCommitment = field(init=False)
    rows: int = 0
    payload_bytes: int = 0
    suite: Suite = "standard"

    def __post_init__(self) -> None:
        self.commitment = BatchCommitment(self.task_id, self.party, suite=self.suite)

    def accept(self, index: int, salt: bytes, payload: bytes) -> bytes:
        batch = decode_batch(payload)
        if batch.schema.names != self.expected_columns:
            raise StreamIntegrityError(
                f"batch {index} from {self.party} has columns {batch.schema.names}, "
                f"expected {self.expected_columns}",
                id="channel.intake.schema",
            )
        leaf = self.commitment.add(index, salt, payload)
        self.salts.append(salt)
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.payload_bytes += len(payload)
        return leaf

    def table(self) -> pa.Table:
        """Every batch received, dictionary-encoded columns (pseudonyms) as plain values
        (decoded batch by batch: their index widths may differ)."""
        if not self.batches:
            return pa.table({})
        return pa.Table.from_batches([_plain(b) for b in self.batches])


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def serve_intake(
    channel: AttestedChannel,
    *,
    task_id: bytes,
    own_fingerprint: bytes,
    task_key: bytes,
    intake_for: Callable[[str], PartyIntake],
    verify_party: PartyVerifier,
    on_batch: Callable[[PartyIntake], None] | None = None,
    release_for: Callable[[str], bytes] | None = None,
    on_released: Callable[[str], None] | None = None,
    suite: Suite = "standard",
) -> PartyIntake | None:
    """Run the runtime's end for one gateway connection; returns that party's intake.

    ``intake_for(party)`` returns the (possibly partly filled, after a reconnect) intake of a
    party the task names as a data provider, or raises :class:`PeerRefused`.
    ``verify_party`` checks the hello signature against the chain's key registry. Nothing
    from a party is accepted before both pass. ``suite`` is the task's ``crypto``: every
    stream of this connection is framed with it, and the intake's commitment uses its hash.
    """
    channel.use_suite(suite)
    hello = _unjson(
        _one(channel.receive_stream(StreamContext(task_id, ANY_PARTY, "hello")).chunks, "hello"),
        "hello",
    )
    party, signature = _hello_fields(hello)
    digest = hello_digest(task_id, party, channel.peer.fingerprint, own_fingerprint)
    if hello.get("want", WANT_STREAM) == WANT_RELEASE:
        verify_party(party, digest, signature)
        if (
            _answer_release(channel, StreamContext(task_id, party, "release"), party, release_for)
            and on_released is not None
        ):
            on_released(party)
        return None
    intake = intake_for(party)
    verify_party(party, digest, signature)

    def ctx(stream: str) -> StreamContext:
        return StreamContext(task_id, party, stream)

    welcome = {
        "task_key": task_key.hex(),
        "held": [[i, s.hex()] for i, s in enumerate(intake.salts)],
        "leaves": [leaf.hex() for leaf in intake.commitment.leaves],
    }
    channel.send_stream(ctx("welcome"), [_json(welcome)])
    acks = channel.open_writer(ctx(ACKS))

    def acknowledge(index: int, leaf: bytes) -> None:
        acks.write(U64.pack(index) + leaf)
        acks.flush()
        if on_batch is not None:
            on_batch(intake)

    # With two or more batches in flight, batch i is decoded and hashed on a helper thread
    # while batch i+1 is read and decrypted; its acknowledgement still goes out only once it
    # was accepted, and nothing after a refused batch is accepted. A gateway that waits for
    # each acknowledgement (window 1) is served one batch at a time: reading ahead would
    # wait for a batch it only sends after the acknowledgement.
    ahead = _read_ahead(hello)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chronoseal-intake") as worker:
        accepting: tuple[int, Future[bytes]] | None = None
        index = len(intake.salts)
        while True:
            chunks = channel.receive_stream(ctx(f"msg-{index}")).chunks
            if accepting is not None:
                acknowledge(accepting[0], accepting[1].result())
                accepting = None
            if chunks[:1] == (_END,):
                break
            if intake.complete:
                # A gateway restarted after its stream ended may only confirm it (to learn
                # the root again and post its commitment), never add to it.
                raise PeerRefused(
                    f"{party} already completed its stream", id="channel.intake.duplicate"
                )
            salt, payload = _batch_fields(chunks)
            if ahead:
                accepting = (index, worker.submit(intake.accept, index, salt, payload))
            else:
                acknowledge(index, intake.accept(index, salt, payload))
            index += 1
    end = _unjson(_one(chunks[1:], "end"), "end")
    if end.get("count") != len(intake.salts):
        raise StreamIntegrityError(
            f"{party} ended after {end.get('count')} batches; {len(intake.salts)} arrived",
            id="channel.stream.truncated",
        )
    intake.complete = True
    acks.finish()
    channel.send_stream(ctx("done"), [_json({"root": intake.commitment.root().hex()})])
    return intake


def _answer_release(
    channel: AttestedChannel,
    ctx: StreamContext,
    party: str,
    release_for: Callable[[str], bytes] | None,
) -> bool:
    """Send the party its release (True once it is sent) or the refusal (False)."""
    try:
        if release_for is None:
            raise PeerRefused("this runtime releases nothing", id="analysis.release.not_ready")
        payload = release_for(party)
    except ChronosealError as exc:
        channel.send_stream(ctx, [_REFUSED, _json({"id": exc.id, "message": exc.message})])
        return False
    channel.send_stream(ctx, [_RELEASE, payload])
    return True


def _read_ahead(hello: dict[str, Any]) -> bool:
    """Whether the gateway keeps two or more batches in flight (its hello says so; a hello
    without the field is a gateway that waits for each acknowledgement)."""
    window = hello.get("window", 1)
    return isinstance(window, int) and not isinstance(window, bool) and window >= 2


def _hello_fields(hello: dict[str, Any]) -> tuple[str, bytes]:
    try:
        party = hello["party"]
        signature = bytes.fromhex(hello["signature"])
    except (KeyError, ValueError, TypeError) as exc:
        raise PeerRefused("malformed hello", id="channel.intake.bad_message") from exc
    if not isinstance(party, str) or not party or party == ANY_PARTY:
        raise PeerRefused("malformed hello", id="channel.intake.bad_message")
    return party, signature


def _batch_fields(chunks: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    if len(chunks) != 3 or chunks[0] != _BATCH or len(chunks[1]) != SALT_LEN:
        raise StreamIntegrityError(
            "a batch message is 'B' ‖ salt ‖ Arrow IPC", id="channel.intake.bad_message"
        )
    return chunks[1], chunks[2]
