"""Mutual RA-TLS on loopback: who is accepted, who is refused, and that refused peers get
no application byte."""

from __future__ import annotations

import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from channel_support import NONCE, UNAPPROVED, appraiser, identity, read_until_eof, serve_once

from chronoseal.channel import (
    AttestedChannel,
    ChannelServer,
    HpkeKem,
    RaTlsIdentity,
    StreamContext,
    connect,
)
from chronoseal.channel._session import client_proof
from chronoseal.channel._tls import client_context, server_context
from chronoseal.errors import ChannelError, PeerRefused
from chronoseal.spec import Component

pytestmark = pytest.mark.integration

GATEWAY, ANALYSIS = Component.GATEWAY, Component.ANALYSIS
CONTEXT = StreamContext(task_id=b"\x01" * 32, party="party-a", stream_id="data")


def analysis_server(server_identity: RaTlsIdentity | None = None) -> ChannelServer:
    return ChannelServer(
        server_identity or identity(ANALYSIS),
        appraiser=appraiser(),
        peer_component=GATEWAY,
        fresh_nonces={NONCE},
        handshake_timeout=2.0,
    )


def gateway_connect(address: tuple[str, int], me: RaTlsIdentity | None = None) -> AttestedChannel:
    return connect(
        address,
        me or identity(GATEWAY),
        appraiser=appraiser(),
        peer_component=ANALYSIS,
        fresh_nonces={NONCE},
    )


def raw_client(address: tuple[str, int], first_message: bytes | None) -> tuple[bytes, bytes]:
    """A TLS client that sends ``first_message`` (or nothing) and reads until EOF."""
    with client_context().wrap_socket(socket.create_connection(address, timeout=5)) as tls:
        server_certificate = tls.getpeercert(binary_form=True)
        assert server_certificate is not None
        if first_message is not None:
            tls.sendall(first_message)
        return server_certificate, read_until_eof(tls)


def framed_proof(me: RaTlsIdentity, server_certificate: bytes) -> bytes:
    proof = client_proof(me, server_certificate, ANALYSIS, datetime.now(UTC))
    return len(proof).to_bytes(4, "big") + proof


@pytest.mark.parametrize("kem", list(HpkeKem))
def test_a_stream_crosses_mutual_tls_in_both_directions(kem: HpkeKem) -> None:
    server = analysis_server(identity(ANALYSIS, kem=kem))
    reply_context = StreamContext(CONTEXT.task_id, "party-a", "ack")

    def serve(connection: socket.socket) -> tuple[tuple[bytes, ...], Component]:
        with server.accept(connection) as channel:
            received = channel.receive_stream(CONTEXT)
            channel.send_stream(reply_context, [b"got %d" % len(received.chunks)])
            return received.chunks, channel.peer.component

    batches = [b"arrow-batch-%d" % i * 1000 for i in range(5)]
    with serve_once(serve) as (address, outcome), gateway_connect(address) as channel:
        assert channel.peer.component is ANALYSIS
        assert channel.peer.hpke_public_key.kem is kem
        channel.send_stream(CONTEXT, batches)
        assert channel.receive_stream(reply_context).chunks == (b"got 5",)
        assert outcome.result(timeout=10) == (tuple(batches), GATEWAY)


def test_arrow_ipc_batches_arrive_intact_through_the_channel() -> None:
    table = pa.table({"unique_id": ["a", "b"] * 500, "ds": list(range(1000)), "y": [0.5] * 1000})
    batches = []
    for batch in table.to_batches(max_chunksize=250):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        batches.append(sink.getvalue().to_pybytes())
    server = analysis_server()

    def serve(connection: socket.socket) -> pa.Table:
        with server.accept(connection) as channel:
            chunks = channel.receive_stream(CONTEXT).chunks
        return pa.concat_tables(pa.ipc.open_stream(chunk).read_all() for chunk in chunks)

    with serve_once(serve) as (address, outcome), gateway_connect(address) as channel:
        receipt = channel.send_stream(CONTEXT, batches)
        assert outcome.result(timeout=10).equals(table)
    assert receipt.chunks == 4


def test_a_server_with_valid_evidence_but_unapproved_measurement_gets_no_byte() -> None:
    impostor = identity(ANALYSIS, measurement=UNAPPROVED)
    context = server_context(impostor)

    def listen(connection: socket.socket) -> bytes:
        with context.wrap_socket(connection, server_side=True) as tls:
            return read_until_eof(tls)

    with serve_once(listen) as (address, heard), pytest.raises(PeerRefused) as refused:
        gateway_connect(address)
    assert refused.value.id == "channel.peer.evidence_refused"
    assert refused.value.context["attestation_id"] == "attest.measurement.not_approved"
    assert heard.result(timeout=10) == b""


def test_a_client_with_valid_evidence_but_unapproved_measurement_gets_no_byte() -> None:
    impostor = identity(GATEWAY, measurement=UNAPPROVED)
    server = analysis_server()
    with serve_once(server.accept) as (address, accepted):
        certificate, received = raw_client(
            address, framed_proof(impostor, server.identity.certificate_der)
        )
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert certificate == server.identity.certificate_der
    assert received == b""
    assert refused.value.id == "channel.peer.evidence_refused"
    assert "attest.measurement.not_approved" in refused.value.context["failures"]


def test_a_server_of_the_wrong_component_kind_is_refused() -> None:
    context = server_context(identity(Component.PREDICTION))

    def listen(connection: socket.socket) -> bytes:
        with context.wrap_socket(connection, server_side=True) as tls:
            return read_until_eof(tls)

    with serve_once(listen) as (address, heard), pytest.raises(PeerRefused) as refused:
        gateway_connect(address)
    assert refused.value.id == "channel.peer.wrong_component"
    assert heard.result(timeout=10) == b""


def test_a_client_of_the_wrong_component_kind_gets_no_byte() -> None:
    server = analysis_server()
    server_certificate = server.identity.certificate_der
    with serve_once(server.accept) as (address, accepted):
        _, received = raw_client(
            address, framed_proof(identity(Component.CLIENT), server_certificate)
        )
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert received == b""
    assert refused.value.id == "channel.peer.wrong_component"


@pytest.mark.parametrize(
    ("first_message", "error_id"),
    [
        (None, "channel.peer.no_proof"),
        (b"\x00\x00\x00\x04junk", "channel.peer.bad_proof"),
        (b"\xff\xff\xff\xff", "channel.peer.bad_proof"),
    ],
)
def test_a_client_without_a_valid_proof_gets_no_byte(
    first_message: bytes | None, error_id: str
) -> None:
    server = analysis_server()
    with serve_once(server.accept) as (address, accepted):
        _, received = raw_client(address, first_message)
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert received == b""
    assert refused.value.id == error_id


def test_a_replayed_client_proof_is_refused() -> None:
    server = analysis_server()
    proof = framed_proof(identity(GATEWAY), server.identity.certificate_der)
    with serve_once(server.accept) as (address, accepted):
        with client_context().wrap_socket(socket.create_connection(address, timeout=5)) as tls:
            tls.sendall(proof)
            assert tls.recv(5) == b"CSOK\x01"
        accepted.result(timeout=10).close()
    with serve_once(server.accept) as (address, accepted):
        _, received = raw_client(address, proof)
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert received == b""
    assert refused.value.id == "channel.peer.replayed_proof"


def test_a_proof_for_another_server_is_refused() -> None:
    server = analysis_server()
    other_server = identity(ANALYSIS)
    proof = framed_proof(identity(GATEWAY), other_server.certificate_der)
    with serve_once(server.accept) as (address, accepted):
        _, received = raw_client(address, proof)
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert received == b""
    assert refused.value.id == "channel.peer.bad_proof"


def test_evidence_bound_to_a_stale_nonce_is_refused() -> None:
    server = analysis_server()
    with serve_once(server.accept) as (address, accepted), pytest.raises(PeerRefused) as refused:
        gateway_connect(address, identity(GATEWAY, nonce=b"an-old-block-hash-" * 2))
    assert refused.value.id == "channel.peer.refused_by_server"
    with pytest.raises(PeerRefused) as server_side:
        accepted.result(timeout=10)
    assert server_side.value.id == "channel.peer.stale_nonce"


def test_an_expired_certificate_is_refused() -> None:
    server = analysis_server()
    later = datetime.now(UTC) + timedelta(hours=2)
    with serve_once(server.accept) as (address, _), pytest.raises(PeerRefused) as refused:
        connect(
            address,
            identity(GATEWAY),
            appraiser=appraiser(),
            peer_component=ANALYSIS,
            fresh_nonces={NONCE},
            clock=lambda: later,
        )
    assert refused.value.id == "channel.peer.certificate_expired"


def test_a_link_outside_the_design_is_refused_before_connecting() -> None:
    with pytest.raises(ChannelError) as refused:
        connect(
            ("127.0.0.1", 9),
            identity(GATEWAY),
            appraiser=appraiser(),
            peer_component=Component.GATEWAY,
            fresh_nonces={NONCE},
        )
    assert refused.value.id == "channel.link.not_allowed"


def test_a_peer_without_tls_1_3_is_refused() -> None:
    server = analysis_server()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with serve_once(server.accept) as (address, accepted):
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(socket.create_connection(address, timeout=5))
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert refused.value.id == "channel.peer.tls_failed"


def test_an_unreachable_server_is_a_transport_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        address = closed.getsockname()[:2]
    with pytest.raises(ChannelError) as failed:
        gateway_connect(address)
    assert failed.value.id == "channel.transport.failed"


def test_a_peer_that_dies_mid_stream_leaves_nothing_usable() -> None:
    server = analysis_server()

    def serve(connection: socket.socket) -> None:
        with server.accept(connection) as channel:
            writer = channel.open_writer(CONTEXT)
            writer.write(b"first half of the data")

    with serve_once(serve) as (address, outcome), gateway_connect(address) as channel:
        outcome.result(timeout=10)
        with pytest.raises(ChannelError) as failed:
            channel.receive_stream(CONTEXT)
    assert failed.value.id in {"channel.stream.truncated", "channel.transport.failed"}


def test_a_proof_outside_the_time_window_is_refused() -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    server = ChannelServer(
        identity(ANALYSIS),
        appraiser=appraiser(),
        peer_component=GATEWAY,
        fresh_nonces={NONCE},
        clock=lambda: later,
    )
    proof = framed_proof(identity(GATEWAY), server.identity.certificate_der)
    with serve_once(server.accept) as (address, accepted):
        _, received = raw_client(address, proof)
        with pytest.raises(PeerRefused) as refused:
            accepted.result(timeout=10)
    assert received == b""
    assert refused.value.id == "channel.peer.stale_proof"


def test_one_server_serves_several_gateways_at_once() -> None:
    server = analysis_server()
    parties = [f"party-{name}" for name in "abc"]

    def serve(connection: socket.socket) -> tuple[bytes, ...]:
        with server.accept(connection) as channel:
            return channel.receive_stream(StreamContext(CONTEXT.task_id, "party-x", "data")).chunks

    with socket.create_server(("127.0.0.1", 0)) as listener, ThreadPoolExecutor(6) as pool:
        address = listener.getsockname()[:2]
        served = [pool.submit(lambda: serve(listener.accept()[0])) for _ in parties]

        def send(party: str) -> None:
            with gateway_connect(address) as channel:
                context = StreamContext(CONTEXT.task_id, "party-x", "data")
                channel.send_stream(context, [party.encode()])

        sent = [pool.submit(send, party) for party in parties]
        for future in sent:
            future.result(timeout=20)
        received = sorted(future.result(timeout=20)[0] for future in served)
    assert received == sorted(party.encode() for party in parties)


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_silent_peer_times_out_instead_of_hanging(side: str) -> None:
    """A stopped (SIGSTOP) or half-open peer: every read has a deadline, and the refusal
    says what happened."""
    quiet = 0.3
    server = ChannelServer(
        identity(ANALYSIS),
        appraiser=appraiser(),
        peer_component=GATEWAY,
        fresh_nonces={NONCE},
        handshake_timeout=2.0,
        io_timeout=quiet if side == "server" else None,
    )
    gave_up = threading.Event()

    def serve(connection: socket.socket) -> str:
        with server.accept(connection) as channel:
            if side == "client":
                gave_up.wait(5)  # say nothing until the client has given up
                return "silent"
            try:
                channel.receive_stream(CONTEXT)
            except ChannelError as exc:
                return exc.id
            return "received"

    with serve_once(serve) as (address, result):
        channel = connect(
            address,
            identity(GATEWAY),
            appraiser=appraiser(),
            peer_component=ANALYSIS,
            fresh_nonces={NONCE},
            io_timeout=quiet if side == "client" else None,
        )
        with channel:
            if side == "client":
                with pytest.raises(ChannelError) as info:
                    channel.receive_stream(CONTEXT)
                assert info.value.id == "channel.transport.timeout"
                gave_up.set()
            else:
                assert result.result(timeout=10) == "channel.transport.timeout"
