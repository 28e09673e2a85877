"""Gateway → runtime data plane: commitments agree, strangers are refused, restarts resume."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pytest
from channel_support import appraiser, identity, serve_once
from cryptography.hazmat.primitives import hashes
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.channel import (
    AttestedChannel,
    ChannelServer,
    GatewayIntake,
    PartyIntake,
    RaTlsIdentity,
    StreamContext,
    connect,
    encode_batch,
    serve_intake,
)
from chronoseal.channel._commitment import BatchCommitment, merkle_root
from chronoseal.channel._wire import U64
from chronoseal.errors import ChronosealError, PeerRefused, StreamIntegrityError
from chronoseal.spec import Component

TASK = bytes(range(32))
NONCE = bytes.fromhex("6b1f" * 16)
PARTY_KEY = Account.create()
STRANGER = Account.create()


def _batch(i: int, rows: int = 100) -> pa.RecordBatch:
    return pa.record_batch(
        {"date": pa.array(range(i * rows, (i + 1) * rows)), "y": pa.array([float(i)] * rows)}
    )


def _sign(key: LocalAccount) -> Callable[[bytes], bytes]:
    def sign(digest: bytes) -> bytes:
        return bytes(Account.sign_message(encode_defunct(primitive=digest), key.key).signature)

    return sign


def _verify(party: str, digest: bytes, signature: bytes) -> None:
    signer = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    if party != "transit" or signer != PARTY_KEY.address:
        raise PeerRefused("not the party's key", id="channel.intake.not_party_key")


class Runtime:
    def __init__(self) -> None:
        self.identity = identity(Component.ANALYSIS)
        self.server = ChannelServer(
            self.identity,
            appraiser=appraiser(),
            peer_component=Component.GATEWAY,
            fresh_nonces={NONCE},
        )
        self.intakes: dict[str, PartyIntake] = {}
        self.key = os.urandom(32)

    def intake_for(self, party: str) -> PartyIntake:
        if party != "transit":
            raise PeerRefused(f"{party} is not a provider", id="channel.intake.not_provider")
        return self.intakes.setdefault(party, PartyIntake(TASK, party, ["date", "y"]))

    def handle(self, conn: socket.socket) -> PartyIntake:
        with self.server.accept(conn) as channel:
            return serve_intake(
                channel,
                task_id=TASK,
                own_fingerprint=self.identity.fingerprint,
                task_key=self.key,
                intake_for=self.intake_for,
                verify_party=_verify,
            )


def _gateway(
    address: tuple[str, int],
    gw: RaTlsIdentity,
    party: str,
    key: LocalAccount,
    window: int = 8,
) -> GatewayIntake:
    channel = connect(
        address,
        gw,
        appraiser=appraiser(),
        peer_component=Component.ANALYSIS,
        fresh_nonces={NONCE},
    )
    return GatewayIntake(
        channel,
        task_id=TASK,
        party=party,
        own_fingerprint=gw.fingerprint,
        sign=_sign(key),
        window=window,
    )


def test_stream_commitments_match_and_batches_arrive() -> None:
    runtime = Runtime()
    with serve_once(runtime.handle) as (address, result):
        with _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY) as intake:
            welcome = intake.hello()
            assert welcome.task_key == runtime.key and welcome.held == []
            for i in range(3):
                intake.send(encode_batch(_batch(i)))
            runtime_root = intake.finish()
        received = result.result(timeout=10)
    assert runtime_root == intake.commitment.root() == received.commitment.root()
    assert received.complete and received.rows == 300
    assert received.table().column("y").to_pylist()[-1] == 2.0


@pytest.mark.parametrize(
    ("party", "key", "error_id"),
    [
        ("transit", STRANGER, "channel.intake.not_party_key"),
        ("events", PARTY_KEY, "channel.intake.not_provider"),
    ],
)
def test_gateway_that_cannot_prove_its_party_sends_nothing(
    party: str, key: LocalAccount, error_id: str
) -> None:
    runtime = Runtime()
    with serve_once(runtime.handle) as (address, result):
        with (
            _gateway(address, identity(Component.GATEWAY), party, key) as intake,
            pytest.raises(ChronosealError),
        ):
            intake.hello()
        with pytest.raises(PeerRefused) as info:
            result.result(timeout=10)
    assert info.value.id == error_id
    assert all(not i.batches for i in runtime.intakes.values())


def test_wrong_schema_is_refused_and_not_kept() -> None:
    runtime = Runtime()
    with serve_once(runtime.handle) as (address, result):
        bad = pa.record_batch({"date": pa.array([1]), "secret": pa.array([1.0])})
        with _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY) as intake:
            intake.hello()
            with pytest.raises(ChronosealError):  # at the latest when the acks are drained
                intake.send(encode_batch(bad))
                intake.finish()
        with pytest.raises(StreamIntegrityError) as info:
            result.result(timeout=10)
    assert info.value.id == "channel.intake.schema"
    assert runtime.intakes["transit"].batches == []


def test_restarted_gateway_resumes_without_loss_or_duplicates() -> None:
    runtime = Runtime()
    payloads = [encode_batch(_batch(i)) for i in range(5)]
    with ThreadPoolExecutor(2) as pool, socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()[:2]

        def serve_two() -> list[object]:
            outcomes: list[object] = []
            for _ in range(2):
                conn, _ = listener.accept()
                try:
                    outcomes.append(runtime.handle(conn))
                except ChronosealError as exc:
                    outcomes.append(exc)
            return outcomes

        served = pool.submit(serve_two)
        # window=1: both batches are acknowledged, so the runtime surely holds them when the
        # gateway process dies mid-stream.
        first = _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY, 1)
        first.hello()
        first.send(payloads[0])
        first.send(payloads[1])
        first.close()

        with _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY) as second:
            welcome = second.hello()
            assert [i for i, _ in welcome.held] == [0, 1]
            for index, salt in welcome.held:
                second.replay(index, salt, payloads[index])
            for payload in payloads[2:]:
                second.send(payload)
            runtime_root = second.finish()
        outcomes = served.result(timeout=20)
    assert isinstance(outcomes[0], ChronosealError)  # the first connection broke
    intake = runtime.intakes["transit"]
    assert intake.rows == 500 and len(intake.batches) == 5
    assert runtime_root == second.commitment.root()
    expected = BatchCommitment(TASK, "transit")
    for i, salt in enumerate(intake.salts):
        expected.add(i, salt, payloads[i])
    assert expected.root() == runtime_root


@pytest.mark.parametrize("changed", ["rewritten", "shorter"])
def test_a_resume_from_a_changed_source_is_refused_before_sending(changed: str) -> None:
    runtime = Runtime()
    payloads = [encode_batch(_batch(i)) for i in range(4)]
    with ThreadPoolExecutor(2) as pool, socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()[:2]

        def serve_two() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                try:
                    runtime.handle(conn)
                except ChronosealError:
                    pass

        served = pool.submit(serve_two)
        first = _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY, 1)
        first.hello()
        first.send(payloads[0])
        first.send(payloads[1])
        first.close()
        with _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY) as second:
            welcome = second.hello()
            assert len(welcome.leaves) == 2
            second.replay(0, welcome.held[0][1], payloads[0])
            reread = encode_batch(_batch(7)) if changed == "rewritten" else b""
            with pytest.raises(StreamIntegrityError) as info:
                second.replay(1, welcome.held[1][1], reread)
            assert info.value.id == "channel.intake.resume_mismatch"
        served.result(timeout=20)
    assert runtime.intakes["transit"].rows == 200  # nothing more was taken


@settings(max_examples=50, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=9),
    data=st.data(),
)
def test_any_change_of_a_batch_changes_the_root(payloads: list[bytes], data: st.DataObject) -> None:
    salts = [os.urandom(32) for _ in payloads]
    base = BatchCommitment(TASK, "transit")
    for i, (salt, payload) in enumerate(zip(salts, payloads, strict=True)):
        base.add(i, salt, payload)
    victim = data.draw(st.integers(0, len(payloads) - 1))
    changed = list(payloads)
    changed[victim] = payloads[victim] + b"\x00"
    other = BatchCommitment(TASK, "transit")
    for i, (salt, payload) in enumerate(zip(salts, changed, strict=True)):
        other.add(i, salt, payload)
    assert other.root() != base.root()
    assert merkle_root(base.leaves[:-1]) != base.root()  # dropping the last batch shows
    assert not BatchCommitment(TASK, "weather", list(base.leaves)).matches(b"\x00" * 32)


def test_out_of_order_batch_is_refused() -> None:
    commitment = BatchCommitment(TASK, "transit")
    with pytest.raises(StreamIntegrityError) as info:
        commitment.add(1, os.urandom(32), b"x")
    assert info.value.id == "channel.stream.reordered"


def _lying_runtime(change: str) -> Callable[[socket.socket], None]:
    """A runtime that takes one batch and then acknowledges it wrongly, as ``change`` says
    (what a compromised or buggy runtime, or a tampered channel, would deliver)."""
    runtime = Runtime()

    def handle(conn: socket.socket) -> None:
        with runtime.server.accept(conn) as channel:
            channel.receive_stream(StreamContext(TASK, "*", "hello"))
            welcome = {"task_key": runtime.key.hex(), "held": [], "leaves": []}
            channel.send_stream(
                StreamContext(TASK, "transit", "welcome"), [json.dumps(welcome).encode()]
            )
            party = "events" if change == "another party" else "transit"
            acks = channel.open_writer(StreamContext(TASK, party, "acks"))
            _, salt, payload = channel.receive_stream(
                StreamContext(TASK, "transit", "msg-0")
            ).chunks
            leaf = BatchCommitment(TASK, "transit").add(0, salt, payload)
            frames = {
                "another index": [U64.pack(1) + leaf],
                "another leaf": [U64.pack(0) + bytes(32)],
                "no index": [leaf],
                "another party": [U64.pack(0) + leaf],
                "one too many": [U64.pack(0) + leaf, U64.pack(1) + leaf],
            }
            if change == "ended early":
                acks.finish()
            else:
                for frame in frames[change]:
                    acks.write(frame)
                acks.flush()
            if change == "one too many":
                channel.receive_stream(StreamContext(TASK, "transit", "msg-1"))
                acks.finish()
            with pytest.raises(ChronosealError):  # open until the gateway gives up and closes
                channel.receive_stream(StreamContext(TASK, "transit", "msg-2"))

    return handle


@pytest.mark.parametrize(
    ("change", "error_id"),
    [
        ("another index", "channel.intake.ack_mismatch"),
        ("another leaf", "channel.intake.ack_mismatch"),
        ("no index", "channel.intake.bad_message"),
        ("ended early", "channel.intake.bad_message"),
        ("another party", "channel.stream.wrong_party"),
        ("one too many", "channel.intake.bad_message"),
    ],
)
def test_an_acknowledgement_that_is_not_the_batch_sent_is_refused(
    change: str, error_id: str
) -> None:
    with serve_once(_lying_runtime(change)) as (address, served):
        gw = identity(Component.GATEWAY)
        with _gateway(address, gw, "transit", PARTY_KEY, window=1) as intake:
            intake.hello()
            with pytest.raises(StreamIntegrityError) as refused:
                intake.send(encode_batch(_batch(0)))
                intake.finish()
        served.result(timeout=10)
    assert refused.value.id == error_id


def test_acknowledgements_are_frames_of_one_stream_per_connection() -> None:
    """Every batch's acknowledgement names its index and leaf; a connection carries one
    acknowledgement stream however many batches it sends (no HPKE stream per batch)."""
    runtime = Runtime()
    opened: list[str] = []
    original = AttestedChannel.open_writer

    def counting(self: AttestedChannel, context: StreamContext, **kw: int) -> Any:
        opened.append(context.stream_id)
        return original(self, context, **kw)

    with serve_once(runtime.handle) as (address, result):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AttestedChannel, "open_writer", counting)
            with _gateway(address, identity(Component.GATEWAY), "transit", PARTY_KEY) as gw:
                gw.hello()
                for i in range(12):
                    gw.send(encode_batch(_batch(i)))
                root = gw.finish()
            received = result.result(timeout=10)
    assert opened == ["acks"]
    assert root == received.commitment.root() == gw.commitment.root()


def test_a_leaf_commits_to_the_blake2b_digest_of_the_batch_bytes() -> None:
    # the formula docs/gateway.md gives, computed here from its parts
    payload = encode_batch(_batch(3))
    salt = bytes(range(32))
    leaf = BatchCommitment(TASK, "transit").add(0, salt, payload)
    expected = hashlib.sha256(
        b"\x00chronoseal.commitment.v2"
        + len(TASK).to_bytes(2, "big")
        + TASK
        + len(b"transit").to_bytes(2, "big")
        + b"transit"
        + (0).to_bytes(8, "big")
        + salt
        + _blake2b_by_cryptography(payload)
    ).digest()
    assert leaf == expected


def _blake2b_by_cryptography(data: bytes) -> bytes:
    """BLAKE2b-512 by a second implementation (OpenSSL's) than the one the leaf uses."""
    digest = hashes.Hash(hashes.BLAKE2b(64))
    digest.update(data)
    return digest.finalize()


@given(st.lists(st.integers(-(2**40), 2**40), max_size=300), st.integers(0, 5))
def test_a_batch_encodes_as_the_arrow_ipc_stream_pyarrow_writes(
    values: list[int], distinct: int
) -> None:
    # written into memory of its exact size, but the same bytes as a plain IPC stream
    entity = pa.array([f"e{v % (distinct + 1)}" for v in values]).dictionary_encode()
    batch = pa.record_batch(
        [pa.array(values, pa.int64()), entity, pa.array([v / 3 for v in values])],
        names=["ts", "entity", "x"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    assert bytes(encode_batch(batch)) == sink.getvalue().to_pybytes()


def test_batches_whose_index_widths_differ_join_into_one_table() -> None:
    intake = PartyIntake(TASK, "transit", ["ts", "entity"])
    narrow = pa.array(["a", "b", "a"]).dictionary_encode()
    narrow = pa.DictionaryArray.from_arrays(narrow.indices.cast(pa.int16()), narrow.dictionary)
    wide = pa.array(["c", "a"]).dictionary_encode()
    for i, entity in enumerate([narrow, wide]):
        ts = pa.array(range(len(entity)), pa.int64())
        batch = pa.record_batch([ts, entity], names=["ts", "entity"])
        intake.accept(i, bytes(32), encode_batch(batch))
    table = intake.table()
    assert table.column("entity").to_pylist() == ["a", "b", "a", "c", "a"]
    assert table.schema.field("entity").type == pa.string()
