"""The safe stream recipe: seal a stream key to an attested recipient, frame, and read back
all-or-nothing.

:func:`read_secure_stream` returns chunks only after the final frame authenticated, so a
caller can never act on part of a tampered, reordered or truncated stream. The price is
memory: the whole plaintext of one stream is held until its end (bounded by
``max_stream_bytes``); send large data as several streams (one per batch group) rather than
one huge stream.

:class:`SecureStreamReader` is the one exception, for streams whose every frame is a whole,
self-contained message (the intake's acknowledgements): it hands out each chunk once that
frame authenticated, in order, and reports the final frame. A damaged frame still fails
before anything of it is returned, and a truncated stream yields nothing after the cut; what
such a stream may carry is what a reader can act on one frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from chronoseal.channel._framing import (
    MAGIC,
    MAGIC_GMT,
    FrameBuffer,
    FrameOpener,
    FrameSealer,
    StreamContext,
    Suite,
    frame_size,
    magic_for,
    new_stream_key,
)
from chronoseal.channel._hpke import HpkeKem, HpkePrivateKey, HpkePublicKey
from chronoseal.channel._wire import U8, U16, ByteSink, ByteSource, lp16, read_exact
from chronoseal.errors import ChannelError, StreamIntegrityError

DEFAULT_MAX_CHUNK = 16 * 1024 * 1024
DEFAULT_MAX_STREAM = 1024 * 1024 * 1024
#: A writer sends what it has sealed once this much is pending, before sealing more: small
#: frames (and the header) travel in one write with the next frame, and a short stream is one
#: write in all, while a large one is still written frame by frame.
FLUSH_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class StreamReceipt:
    """What went through one stream, as both ends count it."""

    chunks: int
    plaintext_bytes: int


@dataclass(frozen=True, slots=True)
class ReceivedStream:
    """A stream that authenticated from header to final frame."""

    chunks: tuple[bytes, ...]
    receipt: StreamReceipt


class SecureStreamWriter:
    """Writes one stream; the final frame is sent only by :meth:`finish` (or a clean ``with``).

    Leaving a ``with`` block through an exception sends no final frame, so the receiver
    rejects the stream as truncated instead of accepting a partial one. Sealed frames are
    held until :data:`FLUSH_BYTES` are pending (then written before the next data frame is
    sealed), :meth:`flush` or :meth:`finish`, so the header and small frames share a write
    with the next frame, and the final frame with the last one; nothing of a stream is
    usable before its final frame anyway.
    """

    def __init__(
        self,
        sink: ByteSink,
        context: StreamContext,
        recipient: HpkePublicKey,
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
        buffer: FrameBuffer | None = None,
        suite: Suite = "standard",
    ) -> None:
        stream_key = new_stream_key()
        self._sink = sink
        self._sealer = FrameSealer(stream_key, context, suite)
        self._max_chunk = max_chunk_bytes
        self._chunks = 0
        self._bytes = 0
        self._out = buffer if buffer is not None else FrameBuffer()
        self._fill = 0
        enc = recipient.seal(stream_key, info=context.hpke_info())
        header = magic_for(suite) + U8.pack(recipient.kem.wire_id) + context.encoded() + lp16(enc)
        self._out.reserve(len(header))[: len(header)] = header
        self._fill = len(header)

    def write(self, chunk: bytes) -> None:
        """Encrypt one chunk (an Arrow IPC batch, model bytes... opaque here) as one frame."""
        if len(chunk) > self._max_chunk:
            raise ChannelError(
                f"a {len(chunk)}-byte chunk exceeds max_chunk_bytes={self._max_chunk}",
                id="channel.stream.chunk_too_large",
            )
        self._seal(chunk, final=False)
        self._chunks += 1
        self._bytes += len(chunk)

    def flush(self) -> None:
        """Send every frame sealed so far (a stream whose frames the peer reads one by one)."""
        if self._fill:
            self._sink.write(memoryview(self._out.data)[: self._fill])
            self._fill = 0

    def finish(self) -> StreamReceipt:
        """Send the final frame; only now can the receiver use anything."""
        self._seal(b"", final=True)
        self.flush()
        return StreamReceipt(self._chunks, self._bytes)

    def _seal(self, chunk: bytes, *, final: bool) -> None:
        if self._sealer.finished:  # refused before anything pending goes out
            raise StreamIntegrityError(
                "the stream already ended", id="channel.stream.write_after_final"
            )
        if self._fill >= FLUSH_BYTES and not final:  # the final frame joins the last write
            self.flush()
        size = frame_size(len(chunk))
        end = self._fill + size
        data = self._out.reserve(end, keep=self._fill, slack=FLUSH_BYTES)
        self._sealer.seal_into(memoryview(data)[self._fill : end], chunk, final=final)
        self._fill = end

    def __enter__(self) -> SecureStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._sealer.finished:
            self.finish()


class SecureStreamReader:
    """Reads one stream frame by frame, each chunk usable once its own frame authenticated.

    Only for streams whose every frame is a complete message on its own (see the module
    docstring); :func:`read_secure_stream` is the all-or-nothing reader. Frames are still
    authenticated strictly in order under the stream's context, so a tampered, replayed,
    reordered or foreign frame fails (``channel.stream.*``) before it is returned. The header
    is read with the first frame.
    """

    def __init__(
        self,
        source: ByteSource,
        context: StreamContext,
        recipient: HpkePrivateKey,
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
        suite: Suite = "standard",
    ) -> None:
        self._source = source
        self._context = context
        self._recipient = recipient
        self._max_chunk = max_chunk_bytes
        self._suite: Suite = suite
        self._opener: FrameOpener | None = None
        self.finished = False

    def next_chunk(self) -> bytes | None:
        """The next frame's chunk, or ``None`` once the final frame authenticated."""
        if self.finished:
            raise StreamIntegrityError(
                "the stream already ended", id="channel.stream.read_after_final"
            )
        if self._opener is None:
            stream_key = _read_header(self._source, self._context, self._recipient, self._suite)
            self._opener = FrameOpener(
                stream_key, self._context, max_chunk=self._max_chunk, suite=self._suite
            )
        plaintext, final = self._opener.next_frame(self._source)
        if final:
            if plaintext:
                raise StreamIntegrityError(
                    "the final frame carries data", id="channel.stream.tampered"
                )
            self.finished = True
            return None
        return plaintext


def open_sender(
    sink: ByteSink,
    context: StreamContext,
    recipient: HpkePublicKey,
    *,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
    buffer: FrameBuffer | None = None,
    suite: Suite = "standard",
) -> SecureStreamWriter:
    """Start a stream to ``recipient`` (an attested peer's HPKE key); the header goes out with
    the first write."""
    return SecureStreamWriter(
        sink, context, recipient, max_chunk_bytes=max_chunk_bytes, buffer=buffer, suite=suite
    )


def read_secure_stream(
    source: ByteSource,
    context: StreamContext,
    recipient: HpkePrivateKey,
    *,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
    max_stream_bytes: int = DEFAULT_MAX_STREAM,
    buffer: FrameBuffer | None = None,
    suite: Suite = "standard",
) -> ReceivedStream:
    """Read one whole stream for ``context``; returns nothing unless every frame authenticated.

    Raises :class:`StreamIntegrityError` (``channel.stream.*``) on any tampering, replay,
    reordering, truncation, oversize, or a stream of another task, party or stream.
    ``buffer`` holds each frame's ciphertext (reused across streams by a channel).
    """
    stream_key = _read_header(source, context, recipient, suite)
    opener = FrameOpener(stream_key, context, max_chunk=max_chunk_bytes, buffer=buffer, suite=suite)
    chunks: list[bytes] = []
    total = 0
    while True:
        plaintext, final = opener.next_frame(source)
        if final:
            if plaintext:
                raise StreamIntegrityError(
                    "the final frame carries data", id="channel.stream.tampered"
                )
            break
        total += len(plaintext)
        if total > max_stream_bytes:
            raise StreamIntegrityError(
                f"the stream exceeds max_stream_bytes={max_stream_bytes}",
                id="channel.stream.oversized",
            )
        chunks.append(plaintext)
    return ReceivedStream(tuple(chunks), StreamReceipt(len(chunks), total))


def _read_header(
    source: ByteSource,
    context: StreamContext,
    recipient: HpkePrivateKey,
    suite: Suite = "standard",
) -> bytes:
    """Check the header against ``context`` and ``suite``; return the opened stream key."""
    fixed = _need(source, len(MAGIC) + 1)
    magic = fixed[: len(MAGIC)]
    if magic != magic_for(suite):
        if magic in (MAGIC, MAGIC_GMT):
            other = "gmt" if magic == MAGIC_GMT else "standard"
            raise StreamIntegrityError(
                f"the stream uses the {other} crypto suite, this end expects {suite}",
                id="channel.stream.suite_mismatch",
            )
        raise StreamIntegrityError("not a chronoseal stream header", id="channel.stream.malformed")
    fields = [_need(source, int(U16.unpack(_need(source, 2))[0])) for _ in range(4)]
    task, party, stream, enc = fields
    expected = (context.task_id, context.party.encode("utf-8"), context.stream_id.encode("utf-8"))
    for got, want, (name, refusal) in zip(
        (task, party, stream),
        expected,
        (
            ("task", "channel.stream.wrong_task"),
            ("party", "channel.stream.wrong_party"),
            ("stream", "channel.stream.wrong_stream"),
        ),
        strict=True,
    ):
        if got != want:
            raise StreamIntegrityError(
                f"the stream belongs to another {name} than the one expected", id=refusal
            )
    try:
        kem = HpkeKem.from_wire_id(fixed[len(MAGIC)])
    except ChannelError as exc:
        raise StreamIntegrityError(exc.message, id="channel.stream.malformed") from exc
    if kem is not recipient.kem:
        raise StreamIntegrityError(
            f"the stream key is sealed with {kem}, this recipient holds {recipient.kem}",
            id="channel.stream.wrong_recipient",
        )
    try:
        stream_key = recipient.open(enc, info=context.hpke_info())
    except ChannelError as exc:
        raise StreamIntegrityError(
            "the stream key does not open: sealed to another recipient or tampered",
            id="channel.stream.wrong_recipient",
        ) from exc
    return stream_key


def _need(source: ByteSource, n: int) -> bytes:
    data = read_exact(source, n)
    if data is None:
        raise StreamIntegrityError(
            "the stream ended inside its header", id="channel.stream.truncated"
        )
    return data
