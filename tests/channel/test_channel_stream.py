"""Framing and HPKE: round trips, and every manipulation of a stream is refused."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.channel import (
    HpkeKem,
    HpkePrivateKey,
    SecureStreamReader,
    StreamContext,
    StreamReceipt,
    open_sender,
    read_secure_stream,
)
from chronoseal.channel._stream import FLUSH_BYTES
from chronoseal.errors import ChannelError, StreamIntegrityError

CONTEXT = StreamContext(task_id=bytes(range(32)), party="party-a", stream_id="data")
RECIPIENT = HpkePrivateKey()
HEADER_FIXED = 4 + 1
FRAME_HEAD = 13
TAG = 16

chunk_lists = st.lists(st.binary(max_size=64), max_size=6)


def seal(chunks: list[bytes], context: StreamContext = CONTEXT) -> bytes:
    sink = io.BytesIO()
    with open_sender(sink, context, RECIPIENT.public_key, max_chunk_bytes=1024) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return sink.getvalue()


def open_(data: bytes, context: StreamContext = CONTEXT) -> tuple[bytes, ...]:
    return read_secure_stream(io.BytesIO(data), context, RECIPIENT, max_chunk_bytes=1024).chunks


def split_frames(data: bytes) -> tuple[bytes, list[bytes]]:
    """Cut a sealed stream into its header and frames (test-side parser of the wire format)."""
    pos = HEADER_FIXED
    for _ in range(4):
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
    header, frames = data[:pos], []
    while pos < len(data):
        size = FRAME_HEAD + int.from_bytes(data[pos + 9 : pos + 13], "big")
        frames.append(data[pos : pos + size])
        pos += size
    return header, frames


@settings(deadline=None)
@given(chunk_lists)
def test_round_trip_returns_every_chunk_in_order(chunks: list[bytes]) -> None:
    assert open_(seal(chunks)) == tuple(chunks)


@settings(max_examples=200, deadline=None)
@given(chunk_lists, st.data())
def test_any_single_byte_flip_is_refused(chunks: list[bytes], data: st.DataObject) -> None:
    sealed = bytearray(seal(chunks))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(StreamIntegrityError):
        open_(bytes(sealed))


@settings(deadline=None)
@given(st.lists(st.binary(max_size=32), min_size=1, max_size=6), st.data())
def test_dropping_any_frame_is_refused(chunks: list[bytes], data: st.DataObject) -> None:
    header, frames = split_frames(seal(chunks))
    drop = data.draw(st.integers(0, len(frames) - 1))
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + b"".join(frames[:drop] + frames[drop + 1 :]))
    assert refused.value.id in {"channel.stream.reordered", "channel.stream.truncated"}


@settings(deadline=None)
@given(st.lists(st.binary(max_size=32), min_size=1, max_size=6), st.data())
def test_swapping_two_frames_is_refused(chunks: list[bytes], data: st.DataObject) -> None:
    header, frames = split_frames(seal(chunks))
    i = data.draw(st.integers(0, len(frames) - 2))
    j = data.draw(st.integers(i + 1, len(frames) - 1))
    frames[i], frames[j] = frames[j], frames[i]
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + b"".join(frames))
    assert refused.value.id == "channel.stream.reordered"


@settings(deadline=None)
@given(st.lists(st.binary(max_size=32), min_size=1, max_size=6), st.data())
def test_duplicating_a_frame_is_refused(chunks: list[bytes], data: st.DataObject) -> None:
    header, frames = split_frames(seal(chunks))
    i = data.draw(st.integers(0, len(frames) - 2))
    where = data.draw(st.integers(i + 1, len(frames) - 1))
    frames.insert(where, frames[i])
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + b"".join(frames))
    assert refused.value.id == "channel.stream.replayed"


@settings(deadline=None)
@given(chunk_lists, st.data())
def test_any_truncation_is_refused(chunks: list[bytes], data: st.DataObject) -> None:
    sealed = seal(chunks)
    cut = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(StreamIntegrityError) as refused:
        open_(sealed[:cut])
    assert refused.value.id == "channel.stream.truncated"


def test_a_relabelled_final_frame_cannot_end_the_stream_early() -> None:
    header, frames = split_frames(seal([b"one", b"two"]))
    forged = bytes([1]) + frames[0][1:]
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + forged)
    assert refused.value.id == "channel.stream.tampered"


@pytest.mark.parametrize(
    ("other", "error_id"),
    [
        (StreamContext(bytes(32), "party-a", "data"), "channel.stream.wrong_task"),
        (StreamContext(bytes(range(32)), "party-b", "data"), "channel.stream.wrong_party"),
        (StreamContext(bytes(range(32)), "party-a", "model"), "channel.stream.wrong_stream"),
    ],
)
def test_a_stream_of_another_task_party_or_stream_is_refused(
    other: StreamContext, error_id: str
) -> None:
    with pytest.raises(StreamIntegrityError) as refused:
        open_(seal([b"x"], other))
    assert refused.value.id == error_id


def test_a_frame_spliced_from_another_stream_is_refused() -> None:
    header, frames = split_frames(seal([b"ours", b"ours too"]))
    _, foreign = split_frames(seal([b"theirs", b"theirs too"]))
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + frames[0] + foreign[1] + frames[2])
    assert refused.value.id == "channel.stream.tampered"


def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    header, _ = split_frames(seal([]))
    huge = bytes([0]) + (0).to_bytes(8, "big") + (1024 + TAG + 1).to_bytes(4, "big")
    with pytest.raises(StreamIntegrityError) as refused:
        open_(header + huge)
    assert refused.value.id == "channel.stream.oversized"


def test_a_stream_over_its_total_budget_is_refused() -> None:
    sealed = seal([b"a" * 600, b"b" * 600])
    with pytest.raises(StreamIntegrityError) as refused:
        read_secure_stream(io.BytesIO(sealed), CONTEXT, RECIPIENT, max_stream_bytes=1000)
    assert refused.value.id == "channel.stream.oversized"


def test_the_writer_refuses_a_chunk_over_its_limit() -> None:
    with pytest.raises(ChannelError) as refused:
        open_sender(io.BytesIO(), CONTEXT, RECIPIENT.public_key, max_chunk_bytes=8).write(b"9" * 9)
    assert refused.value.id == "channel.stream.chunk_too_large"


def test_an_exception_in_the_writer_block_sends_no_final_frame() -> None:
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), open_sender(sink, CONTEXT, RECIPIENT.public_key) as w:
        w.write(b"half")
        raise RuntimeError("producer failed")
    with pytest.raises(StreamIntegrityError) as refused:
        open_(sink.getvalue())
    assert refused.value.id == "channel.stream.truncated"


def test_sender_and_receiver_agree_on_the_receipt() -> None:
    sink = io.BytesIO()
    writer = open_sender(sink, CONTEXT, RECIPIENT.public_key)
    writer.write(b"batch-1")
    writer.write(b"batch-22")
    sent = writer.finish()
    received = read_secure_stream(io.BytesIO(sink.getvalue()), CONTEXT, RECIPIENT).receipt
    assert sent == received == StreamReceipt(chunks=2, plaintext_bytes=15)


def test_nonces_differ_per_frame_even_for_equal_chunks() -> None:
    _, frames = split_frames(seal([b"same", b"same"]))
    assert frames[0][FRAME_HEAD:] != frames[1][FRAME_HEAD:]


@pytest.mark.parametrize("kem", list(HpkeKem))
def test_hpke_round_trip_and_wrong_recipient_fails(kem: HpkeKem) -> None:
    recipient, stranger = HpkePrivateKey(kem), HpkePrivateKey(kem)
    sealed = recipient.public_key.seal(b"k" * 32, info=b"task|party|stream")
    assert recipient.open(sealed, info=b"task|party|stream") == b"k" * 32
    with pytest.raises(ChannelError) as wrong_key:
        stranger.open(sealed, info=b"task|party|stream")
    assert wrong_key.value.id == "channel.hpke.open_failed"
    with pytest.raises(ChannelError):
        recipient.open(sealed, info=b"task|party|other")


@pytest.mark.parametrize("kem", list(HpkeKem))
def test_a_stream_sealed_to_another_recipient_is_refused(kem: HpkeKem) -> None:
    intended, other = HpkePrivateKey(kem), HpkePrivateKey(kem)
    sink = io.BytesIO()
    with open_sender(sink, CONTEXT, intended.public_key) as writer:
        writer.write(b"secret batch")
    assert read_secure_stream(io.BytesIO(sink.getvalue()), CONTEXT, intended).chunks == (
        b"secret batch",
    )
    with pytest.raises(StreamIntegrityError) as refused:
        read_secure_stream(io.BytesIO(sink.getvalue()), CONTEXT, other)
    assert refused.value.id == "channel.stream.wrong_recipient"


class CountingSink(io.BytesIO):
    """A sink that counts its writes (each one is a TLS write on a channel)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: object, /) -> int:
        self.writes += 1
        return super().write(data)  # type: ignore[call-overload,no-any-return]


def test_a_small_stream_is_one_write_and_a_large_one_a_write_per_frame() -> None:
    small = CountingSink()
    with open_sender(small, CONTEXT, RECIPIENT.public_key) as writer:
        writer.write(b"B")
        writer.write(b"s" * 32)
        writer.write(b"payload" * 100)
    assert small.writes == 1  # header, three frames and the final frame together
    assert open_(small.getvalue()) == (b"B", b"s" * 32, b"payload" * 100)

    large = CountingSink()
    chunks = [bytes([i]) * (FLUSH_BYTES + 1) for i in range(4)]
    with open_sender(large, CONTEXT, RECIPIENT.public_key) as writer:
        for i, chunk in enumerate(chunks):
            writer.write(chunk)
            assert large.writes == i  # each frame goes out when the next one is sealed
    assert large.writes == len(chunks)  # the final frame goes out with the last one
    read = read_secure_stream(io.BytesIO(large.getvalue()), CONTEXT, RECIPIENT)
    assert read.chunks == tuple(chunks)


def test_flush_sends_every_sealed_frame_and_nothing_is_sent_before() -> None:
    sink = CountingSink()
    writer = open_sender(sink, CONTEXT, RECIPIENT.public_key)
    writer.write(b"ack-0")
    assert sink.writes == 0
    writer.flush()
    header_and_frame = sink.getvalue()
    assert sink.writes == 1 and header_and_frame
    writer.flush()  # nothing new: no empty write
    assert sink.writes == 1
    writer.finish()
    with pytest.raises(StreamIntegrityError) as refused:
        writer.write(b"late")
    assert refused.value.id == "channel.stream.write_after_final"
    assert open_(sink.getvalue()) == (b"ack-0",)


def _reader(data: bytes, context: StreamContext = CONTEXT) -> SecureStreamReader:
    return SecureStreamReader(io.BytesIO(data), context, RECIPIENT, max_chunk_bytes=1024)


def _read_all(reader: SecureStreamReader) -> list[bytes]:
    out = []
    while (chunk := reader.next_chunk()) is not None:
        out.append(chunk)
    return out


@settings(deadline=None)
@given(chunk_lists)
def test_a_frame_by_frame_reader_hands_out_each_chunk_then_the_end(chunks: list[bytes]) -> None:
    reader = _reader(seal(chunks))
    assert _read_all(reader) == chunks
    assert reader.finished
    with pytest.raises(StreamIntegrityError) as refused:
        reader.next_chunk()
    assert refused.value.id == "channel.stream.read_after_final"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=32), min_size=1, max_size=6), st.data())
def test_a_frame_by_frame_reader_never_hands_out_a_damaged_frame(
    chunks: list[bytes], data: st.DataObject
) -> None:
    """Flip any byte: every chunk handed out before the failure is an original one, in
    order, and the damaged frame's chunk is never among them."""
    sealed = bytearray(seal(chunks))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= data.draw(st.integers(1, 255))
    reader = _reader(bytes(sealed))
    got: list[bytes] = []
    with pytest.raises(StreamIntegrityError):
        while (chunk := reader.next_chunk()) is not None:
            got.append(chunk)
    assert got == chunks[: len(got)]
    header, frames = split_frames(seal(chunks))
    ends = [len(header) + sum(map(len, frames[: k + 1])) for k in range(len(frames))]
    damaged = next((k for k, end in enumerate(ends) if position < end), len(frames))
    assert len(got) <= (damaged if position >= len(header) else 0)


@pytest.mark.parametrize("change", ["drop", "swap", "duplicate", "truncate", "splice"])
def test_a_frame_by_frame_reader_refuses_a_manipulated_stream(change: str) -> None:
    header, frames = split_frames(seal([b"ack-0", b"ack-1", b"ack-2"]))
    _, foreign = split_frames(seal([b"ack-0", b"ack-1", b"ack-2"]))
    expected = {
        "drop": (frames[:1] + frames[2:], "channel.stream.reordered", 1),
        "swap": ([frames[1], frames[0], *frames[2:]], "channel.stream.reordered", 0),
        "duplicate": ([frames[0], frames[0], *frames[1:]], "channel.stream.replayed", 1),
        "truncate": (frames[:2], "channel.stream.truncated", 2),
        "splice": ([frames[0], foreign[1], *frames[2:]], "channel.stream.tampered", 1),
    }
    wire, error_id, usable = expected[change]
    reader = _reader(header + b"".join(wire))
    got = []
    with pytest.raises(StreamIntegrityError) as refused:
        while (chunk := reader.next_chunk()) is not None:
            got.append(chunk)
    assert refused.value.id == error_id
    assert got == [b"ack-0", b"ack-1", b"ack-2"][:usable]


def test_a_frame_by_frame_reader_checks_the_header_and_an_empty_final_frame() -> None:
    with pytest.raises(StreamIntegrityError) as refused:
        _reader(seal([b"x"]), StreamContext(bytes(range(32)), "party-b", "data")).next_chunk()
    assert refused.value.id == "channel.stream.wrong_party"
    header, frames = split_frames(seal([b"one", b"two"]))
    forged = bytes([1]) + frames[0][1:]  # a data frame relabelled final
    with pytest.raises(StreamIntegrityError) as tampered:
        _reader(header + forged).next_chunk()
    assert tampered.value.id == "channel.stream.tampered"
