"""Mutual attestation over TLS 1.3 and the channel object that carries secure streams.

Approach (``notes/python-tls.md`` option 3, client speaks first):

1. TLS 1.3 handshake; the server presents its RA-TLS certificate, the client presents none.
2. The client appraises the server certificate *before sending anything*; if it does not
   appraise for the expected component kind, the client closes: the server got no byte.
3. The client's first message is its proof: its own RA-TLS certificate, a 32-byte random,
   a timestamp, and an ECDSA signature with its certificate key over the server
   certificate's SHA-256, its own certificate's SHA-256, the random, the timestamp and both
   component kinds. The server appraises the certificate, checks the signature, the
   timestamp window and that the random was not seen before (replay cache), and only then
   sends a 5-byte acceptance. A refused client reads EOF and zero payload bytes.

Why not the alternatives: pyOpenSSL (option 1) is not a dependency and would replace the
standard ``ssl`` stack; pinning (option 2) needs the client's certificate on chain before
it connects, which a client (a forecast requester) does not have. Python 3.11 offers no
TLS exporter, so the proof is bound to the server's attested certificate rather than to
the TLS session; a relay needs the proof readable outside the TLS tunnel to the attested
server, which only that attested server could do.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import ssl
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from chronoseal.attest import Appraiser
from chronoseal.channel._framing import SUITES, FrameBuffer, StreamContext, Suite
from chronoseal.channel._memory import retain_freed_memory
from chronoseal.channel._ratls import (
    AttestedPeer,
    Clock,
    RaTlsIdentity,
    appraise_certificate,
    utc_now,
)
from chronoseal.channel._stream import (
    DEFAULT_MAX_CHUNK,
    DEFAULT_MAX_STREAM,
    ReceivedStream,
    SecureStreamReader,
    SecureStreamWriter,
    StreamReceipt,
    open_sender,
    read_secure_stream,
)
from chronoseal.channel._tls import client_context, server_context
from chronoseal.channel._wire import U32, U64, Reader, lp16, lp32, read_exact
from chronoseal.errors import ChannelError, PeerRefused
from chronoseal.spec import Component

LINKS: Final[frozenset[tuple[Component, Component]]] = frozenset(
    {
        (Component.GATEWAY, Component.ANALYSIS),
        (Component.GATEWAY, Component.PREDICTION),
        (Component.ANALYSIS, Component.PREDICTION),
        (Component.CLIENT, Component.PREDICTION),
    }
)
"""Allowed (connecting component, serving component) pairs: the flows of DESIGN.md."""

PROOF_WINDOW: Final = timedelta(seconds=60)
_PROOF_MAGIC: Final = b"CSCP\x01"
_PROOF_LABEL: Final = b"chronoseal.channel.client-proof.v1"
_ACCEPTED: Final = b"CSOK\x01"
_MAX_PROOF: Final = 4 * 1024 * 1024
_RANDOM_LEN: Final = 32
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _check_link(client: Component, server: Component) -> None:
    if (client, server) not in LINKS:
        allowed = ", ".join(f"{c.value}->{s.value}" for c, s in sorted(LINKS))
        raise ChannelError(
            f"{client.value} may not connect to {server.value} (allowed: {allowed})",
            id="channel.link.not_allowed",
        )


def _signed_proof(
    server_fp: bytes,
    client_fp: bytes,
    random: bytes,
    micros: int,
    client: Component,
    server: Component,
) -> bytes:
    return (
        _PROOF_LABEL
        + lp16(server_fp)
        + lp16(client_fp)
        + lp16(random)
        + U64.pack(micros)
        + lp16(client.value.encode())
        + lp16(server.value.encode())
    )


def client_proof(
    identity: RaTlsIdentity, server_certificate: bytes, server: Component, now: datetime
) -> bytes:
    """The client's first message: its certificate and a fresh signature bound to the server."""
    random = os.urandom(_RANDOM_LEN)
    micros = _micros(now)
    signed = _signed_proof(
        hashlib.sha256(server_certificate).digest(),
        identity.fingerprint,
        random,
        micros,
        identity.component,
        server,
    )
    return (
        _PROOF_MAGIC
        + lp32(identity.certificate_der)
        + lp16(random)
        + U64.pack(micros)
        + lp16(identity.sign(signed))
    )


class AttestedChannel:
    """A mutually attested TLS 1.3 connection; carries secure streams in both directions.

    Streams sent here are HPKE-sealed to the peer's attested key; streams received open with
    this side's own HPKE key.
    """

    def __init__(
        self,
        tls: ssl.SSLSocket,
        reader: io.BufferedReader,
        identity: RaTlsIdentity,
        peer: AttestedPeer,
    ) -> None:
        self.peer = peer
        self._tls = tls
        self._identity = identity
        self._reader = reader
        # One stream at a time in each direction: whole streams reuse these for their frames.
        self._send_buffer = FrameBuffer()
        self._receive_buffer = FrameBuffer()
        self.suite: Suite = "standard"
        retain_freed_memory()  # streams reuse the memory of the last one (see _memory)

    def use_suite(self, suite: Suite) -> None:
        """Frame every later stream with ``suite`` (the task's ``crypto``): both ends take it
        from the spec the task id commits to; a peer on the other suite fails at the first
        stream header (``channel.stream.suite_mismatch``). TLS stays TLS 1.3 either way."""
        if suite not in SUITES:
            raise ChannelError(f"unknown crypto suite {suite!r}", id="channel.suite.unknown")
        self.suite = suite

    @property
    def local_fingerprint(self) -> bytes:
        """This side's certificate fingerprint in this session (a server may have rotated
        its identity since, for new sessions)."""
        return self._identity.fingerprint

    def open_writer(
        self, context: StreamContext, *, max_chunk_bytes: int = DEFAULT_MAX_CHUNK
    ) -> SecureStreamWriter:
        """Start a stream to the peer; see :class:`SecureStreamWriter` (``flush()`` sends
        what is sealed so far, for a peer reading it frame by frame)."""
        return open_sender(
            _SocketSink(self._tls),
            context,
            self.peer.hpke_public_key,
            max_chunk_bytes=max_chunk_bytes,
            suite=self.suite,
        )

    def send_stream(self, context: StreamContext, chunks: Iterable[bytes]) -> StreamReceipt:
        """Send ``chunks`` as one stream and end it."""
        with _transport("sending"):
            writer = open_sender(
                _SocketSink(self._tls),
                context,
                self.peer.hpke_public_key,
                buffer=self._send_buffer,
                suite=self.suite,
            )
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish()

    def open_reader(
        self, context: StreamContext, *, max_chunk_bytes: int = DEFAULT_MAX_CHUNK
    ) -> ChannelStreamReader:
        """Read a stream from the peer frame by frame; see :class:`SecureStreamReader` (only
        for streams whose every frame is a self-contained message)."""
        return ChannelStreamReader(
            SecureStreamReader(
                self._reader,
                context,
                self._identity.hpke,
                max_chunk_bytes=max_chunk_bytes,
                suite=self.suite,
            )
        )

    def receive_stream(
        self,
        context: StreamContext,
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
        max_stream_bytes: int = DEFAULT_MAX_STREAM,
    ) -> ReceivedStream:
        """Read one whole stream from the peer; all chunks or :class:`StreamIntegrityError`.

        A connection that breaks mid-stream raises ``channel.transport.failed``; as with
        any failure, nothing of the stream is returned.
        """
        with _transport("receiving"):
            return read_secure_stream(
                self._reader,
                context,
                self._identity.hpke,
                max_chunk_bytes=max_chunk_bytes,
                max_stream_bytes=max_stream_bytes,
                buffer=self._receive_buffer,
                suite=self.suite,
            )

    def close(self) -> None:
        self._reader.close()
        self._tls.close()

    def __enter__(self) -> AttestedChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: Every read and write on an established channel has this deadline unless the caller sets
#: one: a stopped (SIGSTOP) or half-open peer must not hang the other side for ever.
DEFAULT_IO_TIMEOUT = 120.0


@contextmanager
def _transport(doing: str) -> Iterator[None]:
    """Map socket and TLS failures to the channel's own error (httpx-style)."""
    try:
        yield
    except TimeoutError as exc:
        raise ChannelError(
            f"the peer went silent while {doing}: no byte within the channel's deadline "
            "(stopped, overloaded or a half-open connection); nothing of this stream is used",
            id="channel.transport.timeout",
        ) from exc
    except OSError as exc:
        raise ChannelError(
            f"the connection failed while {doing}: {exc}", id="channel.transport.failed"
        ) from exc


class ChannelStreamReader:
    """A :class:`SecureStreamReader` on a channel: a broken or silent connection is the
    channel's ``channel.transport.*`` error."""

    def __init__(self, reader: SecureStreamReader) -> None:
        self._reader = reader

    @property
    def finished(self) -> bool:
        return self._reader.finished

    def next_chunk(self) -> bytes | None:
        """The next frame's chunk, or ``None`` once the final frame authenticated."""
        with _transport("receiving"):
            return self._reader.next_chunk()


class _SocketSink:
    def __init__(self, tls: ssl.SSLSocket) -> None:
        self._tls = tls

    def write(self, data: bytes | memoryview, /) -> None:
        with _transport("sending"):
            self._tls.sendall(data)


class ChannelServer:
    """Accepts connections from one component kind and refuses everyone else, silently.

    ``fresh_nonces`` are the freshness values a peer's evidence may be bound to (e.g. the
    last few block hashes); pass a live collection to update them while serving.
    """

    def __init__(
        self,
        identity: RaTlsIdentity,
        *,
        appraiser: Appraiser,
        peer_component: Component,
        fresh_nonces: Collection[bytes],
        handshake_timeout: float = 10.0,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        clock: Clock = utc_now,
    ) -> None:
        _check_link(peer_component, identity.component)
        self._io_timeout = io_timeout
        self.identity = identity
        self._appraiser = appraiser
        self._peer_component = peer_component
        self._fresh_nonces = fresh_nonces
        self._timeout = handshake_timeout
        self._clock = clock
        self._context = server_context(identity)
        self._seen: dict[bytes, datetime] = {}
        self._seen_lock = threading.Lock()

    def rotate(self, identity: RaTlsIdentity) -> None:
        """Serve new sessions under ``identity`` (fresh evidence); open sessions keep theirs."""
        _check_link(self._peer_component, identity.component)
        context = server_context(identity)
        self.identity, self._context = identity, context

    def accept(self, connection: socket.socket) -> AttestedChannel:
        """Run TLS and mutual attestation on an accepted TCP connection.

        On refusal the connection is closed before any application byte is sent and
        :class:`PeerRefused` is raised (``channel.peer.*``).
        """
        connection.settimeout(self._timeout)
        _no_delay(connection)
        identity, context = self.identity, self._context  # one identity per session
        try:
            tls = context.wrap_socket(connection, server_side=True)
        except OSError as exc:  # ssl.SSLError and timeouts included
            connection.close()
            raise PeerRefused(f"TLS handshake failed: {exc}", id="channel.peer.tls_failed") from exc
        reader = tls.makefile("rb")
        try:
            peer = self._verify_proof(reader, identity)
            tls.sendall(_ACCEPTED)
        except BaseException:
            reader.close()
            tls.close()
            raise
        tls.settimeout(self._io_timeout)
        return AttestedChannel(tls, reader, identity, peer)

    def _verify_proof(self, reader: io.BufferedReader, identity: RaTlsIdentity) -> AttestedPeer:
        message = _read_message(reader)
        fields = Reader(message, fail=PeerRefused, error_id="channel.peer.bad_proof")
        if fields.take(len(_PROOF_MAGIC)) != _PROOF_MAGIC:
            raise PeerRefused(
                "the client's first message is not a proof", id="channel.peer.bad_proof"
            )
        certificate, random, micros, signature = (
            fields.lp32(),
            fields.lp16(),
            fields.u64(),
            fields.lp16(),
        )
        fields.end()
        now = self._clock()
        peer = appraise_certificate(
            certificate,
            appraiser=self._appraiser,
            component=self._peer_component,
            fresh_nonces=self._fresh_nonces,
            now=now,
        )
        signed = _signed_proof(
            identity.fingerprint,
            peer.fingerprint,
            random,
            micros,
            self._peer_component,
            identity.component,
        )
        try:
            peer.public_key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise PeerRefused(
                "the client's proof signature does not verify", id="channel.peer.bad_proof"
            ) from exc
        self._check_fresh(random, micros, now)
        return peer

    def _check_fresh(self, random: bytes, micros: int, now: datetime) -> None:
        issued = _from_micros(micros)
        if issued is None or len(random) != _RANDOM_LEN or abs(now - issued) > PROOF_WINDOW:
            raise PeerRefused("the client's proof is not fresh", id="channel.peer.stale_proof")
        with self._seen_lock:
            for seen, expires in list(self._seen.items()):
                if expires < now:
                    del self._seen[seen]
            if random in self._seen:
                raise PeerRefused(
                    "the client's proof was replayed", id="channel.peer.replayed_proof"
                )
            self._seen[random] = issued + PROOF_WINDOW


def connect(
    address: tuple[str, int],
    identity: RaTlsIdentity,
    *,
    appraiser: Appraiser,
    peer_component: Component,
    fresh_nonces: Collection[bytes],
    timeout: float = 10.0,
    io_timeout: float | None = DEFAULT_IO_TIMEOUT,
    clock: Clock = utc_now,
) -> AttestedChannel:
    """Open a mutually attested channel to the ``peer_component`` serving at ``address``.

    The server's certificate is appraised before this side sends a single byte. ``timeout``
    bounds connecting and the handshake, ``io_timeout`` every read and write after it.
    """
    _check_link(identity.component, peer_component)
    with _transport("connecting"):
        connection = socket.create_connection(address, timeout=timeout)
    _no_delay(connection)
    try:
        tls = client_context().wrap_socket(connection)
    except OSError as exc:  # ssl.SSLError and timeouts included
        connection.close()
        raise PeerRefused(f"TLS handshake failed: {exc}", id="channel.peer.tls_failed") from exc
    reader = tls.makefile("rb")
    try:
        certificate = tls.getpeercert(binary_form=True)
        if certificate is None:
            raise PeerRefused("the server sent no certificate", id="channel.peer.no_evidence")
        now = clock()
        peer = appraise_certificate(
            certificate,
            appraiser=appraiser,
            component=peer_component,
            fresh_nonces=fresh_nonces,
            now=now,
        )
        with _transport("sending this side's proof"):
            tls.sendall(_send_message(client_proof(identity, certificate, peer_component, now)))
        if _read_ack(reader) != _ACCEPTED:
            raise PeerRefused(
                "the server refused this side's attestation", id="channel.peer.refused_by_server"
            )
    except BaseException:
        reader.close()
        tls.close()
        raise
    tls.settimeout(io_timeout)
    return AttestedChannel(tls, reader, identity, peer)


def _read_ack(reader: io.BufferedReader) -> bytes | None:
    try:
        return read_exact(reader, len(_ACCEPTED))
    except OSError as exc:  # ssl.SSLError and timeouts included
        raise PeerRefused(
            f"the server closed the channel during attestation: {exc}",
            id="channel.peer.refused_by_server",
        ) from exc


def _no_delay(connection: socket.socket) -> None:
    """Frames are written whole; Nagle would hold the 5-byte acceptance behind a delayed ACK."""
    if connection.family in (socket.AF_INET, socket.AF_INET6):
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_message(body: bytes) -> bytes:
    return U32.pack(len(body)) + body


def _read_message(source: io.BufferedReader) -> bytes:
    try:
        size = read_exact(source, U32.size)
        if size is None:
            raise PeerRefused("the client sent no proof", id="channel.peer.no_proof")
        length = int(U32.unpack(size)[0])
        if length > _MAX_PROOF:
            raise PeerRefused("the client's proof is too large", id="channel.peer.bad_proof")
        body = read_exact(source, length)
        if body is None:
            raise PeerRefused("the client's proof is cut short", id="channel.peer.bad_proof")
        return body
    except OSError as exc:  # ssl.SSLError and timeouts included
        raise PeerRefused(
            f"reading the client's proof failed: {exc}", id="channel.peer.no_proof"
        ) from exc


def _micros(moment: datetime) -> int:
    return int((moment - _EPOCH) / timedelta(microseconds=1))


def _from_micros(micros: int) -> datetime | None:
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None
