"""Benchmark the attested channel on loopback: what attestation and framing cost.

Throughput of the same payload (1 MiB Arrow IPC record batches) four ways: the framed,
HPKE-keyed AES-256-GCM stream over mutual RA-TLS 1.3; the same under the GM/T suite (SM4-GCM
frames, ``framed_gmt``); plain TLS 1.3; plain TCP. Then the
latency of a full mutual handshake with appraisal on both sides (simulated TEE), and, when
the shared vectors are present, the verification time of real SGX/TDX (DCAP), SEV-SNP,
Hygon CSV (chain and report signature), Arm CCA and PSA evidence. Each receiver runs in its
own process, as the receiving TEE would; modes alternate run by run so machine load hits
them alike. The last line printed is one JSON object.

    .venv/bin/python bench/channel.py --quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from chronoseal.attest import (
    AppraisalPolicy,
    Appraiser,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
)
from chronoseal.channel import (
    AttestedChannel,
    ChannelServer,
    RaTlsIdentity,
    StreamContext,
    connect,
)
from chronoseal.channel._framing import Suite
from chronoseal.channel._tls import client_context, server_context
from chronoseal.spec import Component

MIB = 1024 * 1024
NONCE = os.urandom(32)
STREAM_BATCHES = 16
GATEWAY, ANALYSIS = Component.GATEWAY, Component.ANALYSIS
TASK = b"\x42" * 32
ACK = StreamContext(TASK, "party-a", "ack")
VECTORS = Path(os.environ.get("CHRONOSEAL_VECTORS", Path(__file__).parents[2] / "shared/vectors"))


def arrow_batches(count: int) -> list[bytes]:
    """``count`` Arrow IPC streams of one ~1 MiB record batch each (ts int64, y float64)."""
    rows = MIB // 16
    ds = pa.array(range(rows), type=pa.int64())
    out = []
    for i in range(count):
        batch = pa.record_batch({"ds": pc.add(ds, i * rows), "y": pc.random(rows, initializer=i)})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        out.append(sink.getvalue().to_pybytes())
    return out


def appraiser(kind: Component, measurement: bytes) -> Appraiser:
    """Approve one peer measurement: the code the peer's process measured at its start.

    Passed between processes because a tree being edited while the bench runs would
    otherwise measure differently in each process (as it should).
    """
    approved = PinnedMeasurements([(kind, "simulated", measurement)])
    return Appraiser(AppraisalPolicy(measurements=approved, allow_simulated=True))


def identity(kind: Component, nonce: bytes = NONCE) -> RaTlsIdentity:
    return RaTlsIdentity.generate(SimulatedAttester(kind), nonce)


def recv_exact(sock: socket.socket, total: int) -> None:
    buffer = bytearray(4 * MIB)
    view = memoryview(buffer)
    while total:
        got = sock.recv_into(view, min(total, len(buffer)))
        if not got:
            raise ConnectionError("peer closed early")
        total -= got


def stream_contexts(streams: int) -> list[StreamContext]:
    return [StreamContext(TASK, "party-a", f"data-{i}") for i in range(streams)]


def receiver(
    mode: str, runs: int, total: int, streams: int, peer: tuple[bytes, bytes], pipe: Any
) -> None:
    """The receiving TEE, in its own process: accept ``runs`` connections of ``mode``."""
    nonce, gateway_measurement = peer
    with socket.create_server(("127.0.0.1", 0)) as listener:
        pipe.send((listener.getsockname()[:2], code_measurement(ANALYSIS)))
        server_identity = identity(ANALYSIS, nonce)
        server = ChannelServer(
            server_identity,
            appraiser=appraiser(GATEWAY, gateway_measurement),
            peer_component=GATEWAY,
            fresh_nonces={nonce},
        )
        tls_context = server_context(server_identity)
        for _ in range(runs):
            connection = listener.accept()[0]
            if mode == "handshake":
                server.accept(connection).close()
            elif mode in ("framed", "framed_gmt"):
                with server.accept(connection) as channel:
                    channel.use_suite("gmt" if mode == "framed_gmt" else "standard")
                    for context in stream_contexts(streams):
                        channel.receive_stream(context)
                    channel.send_stream(ACK, [b"k"])
            else:
                wrapped = (
                    tls_context.wrap_socket(connection, server_side=True)
                    if mode == "tls"
                    else connection
                )
                with wrapped:
                    recv_exact(wrapped, total)
                    wrapped.sendall(b"k")


Sender = Callable[[tuple[str, int], Appraiser], float]


@contextmanager
def receiver_process(
    mode: str, runs: int, batches: list[bytes]
) -> Iterator[tuple[tuple[str, int], Appraiser]]:
    """Start a receiver process for ``mode``; yield its address and an appraiser for it."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    streams = -(-len(batches) // STREAM_BATCHES)
    peer = (NONCE, code_measurement(GATEWAY))
    process = context.Process(
        target=receiver, args=(mode, runs, sum(map(len, batches)), streams, peer, child)
    )
    process.start()
    try:
        address, analysis_measurement = parent.recv()
        yield address, appraiser(ANALYSIS, analysis_measurement)
    finally:
        process.join(timeout=60)


def interleaved(runs: int, batches: list[bytes], senders: dict[str, Sender]) -> dict[str, float]:
    """Median MiB/s per mode; modes alternate run by run so load drift hits all alike."""
    payload_mib = sum(map(len, batches)) / MIB
    rates: dict[str, list[float]] = {name: [] for name in senders}
    with ExitStack() as stack:
        receivers = {
            name: stack.enter_context(receiver_process(name, runs, batches)) for name in senders
        }
        for _ in range(runs):
            for name, sender in senders.items():
                rates[name].append(payload_mib / sender(*receivers[name]))
    return {name: round(statistics.median(values), 1) for name, values in rates.items()}


def send_all(sock: socket.socket, batches: list[bytes]) -> float:
    """Seconds from the first byte on an open connection to the receiver's 1-byte ack."""
    start = time.perf_counter()
    for batch in batches:
        sock.sendall(batch)
    recv_exact(sock, 1)
    return time.perf_counter() - start


def tcp_sender(batches: list[bytes]) -> Sender:
    def send(address: tuple[str, int], _: Appraiser) -> float:
        with socket.create_connection(address) as sock:
            return send_all(sock, batches)

    return send


def tls_sender(batches: list[bytes]) -> Sender:
    context = client_context()

    def send(address: tuple[str, int], _: Appraiser) -> float:
        with context.wrap_socket(socket.create_connection(address)) as tls:
            return send_all(tls, batches)

    return send


def framed_sender(batches: list[bytes], client: RaTlsIdentity, suite: Suite = "standard") -> Sender:
    groups = [batches[i : i + STREAM_BATCHES] for i in range(0, len(batches), STREAM_BATCHES)]
    contexts = stream_contexts(len(groups))

    def send(address: tuple[str, int], server: Appraiser) -> float:
        with open_channel(address, client, server) as channel:
            channel.use_suite(suite)
            start = time.perf_counter()
            for context, group in zip(contexts, groups, strict=True):
                channel.send_stream(context, group)
            channel.receive_stream(ACK)
            return time.perf_counter() - start

    return send


def handshake_sender(client: RaTlsIdentity) -> Sender:
    """Client-side wall time of connect(): TCP, TLS 1.3, both appraisals, proof, ack."""

    def send(address: tuple[str, int], server: Appraiser) -> float:
        start = time.perf_counter()
        channel = open_channel(address, client, server)
        elapsed = time.perf_counter() - start
        channel.close()
        return elapsed

    return send


def open_channel(
    address: tuple[str, int], client: RaTlsIdentity, server: Appraiser
) -> AttestedChannel:
    return connect(address, client, appraiser=server, peer_component=ANALYSIS, fresh_nonces={NONCE})


def _call_timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def hardware_verification(repeats: int) -> dict[str, float] | str:
    """Median milliseconds to verify real SGX/TDX (DCAP), SEV-SNP, Hygon CSV, Arm CCA and PSA
    evidence, if vectors exist.

    CSV: no public report has its chip's HSK/CEK, so a whole report is not timed; the chain
    (HRK self-signature, HRK -> HSK, HSK -> CEK: three SM2 verifications through libcrypto)
    and one report signature are, and a full report costs the chain plus two signatures.
    """
    if not VECTORS.is_dir():
        return f"vectors not found at {VECTORS}"
    from chronoseal.attest._arm import verify_cca_token, verify_psa_token
    from chronoseal.attest._csv import (
        csv_report_wrapper,
        parse_csv_certificate,
        parse_csv_report,
        verify_csv_chain,
    )
    from chronoseal.attest._dcap import verify_dcap_quote
    from chronoseal.attest._sm2 import sm2_verify
    from chronoseal.attest._snp import verify_snp_report

    hsk_cek = (VECTORS / "hygon-csv/hsk_cek.cert").read_bytes()
    trustee = json.loads((VECTORS / "hygon-csv/csv_evidence.json").read_text())
    csv_report = parse_csv_report(csv_report_wrapper(bytes(trustee["attestation_report"]["data"])))
    pek = parse_csv_certificate(csv_report.pek)
    cca = (VECTORS / "arm-cca/cca_token.cbor").read_bytes()
    cpak = (VECTORS / "arm-cca/cca_platform.pub").read_bytes()
    psa = (VECTORS / "arm-psa/psa-2_0_0_sign1.bin").read_bytes()
    psa_key = (VECTORS / "arm-psa/public.pem").read_bytes()

    sgx = (VECTORS / "dcap-qvl/sgx_quote").read_bytes()
    sgx_collateral = json.loads((VECTORS / "dcap-qvl/sgx_quote_collateral.json").read_text())
    tdx = (VECTORS / "dcap-qvl/tdx_quote").read_bytes()
    tdx_collateral = json.loads((VECTORS / "dcap-qvl/tdx_quote_collateral.json").read_text())
    snp = bytes.fromhex("".join((VECTORS / "virtee-sev/report_milan.hex").read_text().split()))
    vcek = (VECTORS / "virtee-sev/vcek_milan.der").read_bytes()
    chain = (VECTORS / "virtee-sev/cert_chain_milan").read_bytes()
    july_2025, jan_2026 = datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    cases: dict[str, Callable[[], object]] = {
        "sgx_dcap_verify_ms": lambda: verify_dcap_quote(sgx, sgx_collateral, now=july_2025),
        "tdx_dcap_verify_ms": lambda: verify_dcap_quote(tdx, tdx_collateral, now=july_2025),
        "snp_milan_verify_ms": lambda: verify_snp_report(snp, vcek, chain, now=jan_2026),
        "csv_chain_verify_ms": lambda: verify_csv_chain(hsk_cek),
        "csv_report_signature_ms": lambda: sm2_verify(
            pek.public_xy, csv_report.signature, csv_report.signed, user_id=pek.user_id
        ),
        "cca_token_verify_ms": lambda: verify_cca_token(cca, cpak),
        "psa_token_verify_ms": lambda: verify_psa_token(psa, psa_key),
    }
    result = {}
    for name, case in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            case()
            times.append(time.perf_counter() - start)
        result[name] = round(statistics.median(times) * 1000, 3)
    return result


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute")
    args = parser.parse_args()
    mib, runs, shakes = (256, 5, 300) if args.quick else (1024, 7, 2000)

    batches = arrow_batches(mib)
    payload_mib = sum(map(len, batches)) / MIB
    client_identity = identity(GATEWAY)
    senders: dict[str, Sender] = {
        "tcp": tcp_sender(batches),
        "tls": tls_sender(batches),
        "framed": framed_sender(batches, client_identity),
        "framed_gmt": framed_sender(batches, client_identity, "gmt"),
    }
    throughput = interleaved(runs, batches, senders)
    for name, rate in throughput.items():
        print(f"{name:>10}: {rate:8.1f} MiB/s (median of {runs}, {payload_mib:.0f} MiB)")

    shake = handshake_sender(client_identity)
    with receiver_process("handshake", shakes, batches) as (address, server_appraiser):
        samples = [shake(address, server_appraiser) for _ in range(shakes)]
    identity_times = [_call_timed(lambda: identity(GATEWAY)) for _ in range(20)]
    hardware = hardware_verification(20 if args.quick else 100)
    figures: dict[str, Any] = {
        "bench": "channel",
        "quick": args.quick,
        "payload_mib": round(payload_mib, 1),
        "batch_bytes": len(batches[0]),
        "batches_per_stream": STREAM_BATCHES,
        "runs": runs,
        "throughput_mib_s": throughput,
        "ratio_framed_over_tls": round(throughput["framed"] / throughput["tls"], 3),
        "ratio_framed_over_tcp": round(throughput["framed"] / throughput["tcp"], 3),
        "ratio_framed_gmt_over_framed": round(throughput["framed_gmt"] / throughput["framed"], 3),
        "handshake_ms": {
            "n": shakes,
            "median": round(statistics.median(samples) * 1000, 2),
            "p95": round(percentile(samples, 0.95) * 1000, 2),
        },
        "identity_generate_ms_median": round(statistics.median(identity_times) * 1000, 2),
        "hardware_verify": hardware,
        "tee": "simulated",
    }
    print(
        f"handshake+appraisal: median {figures['handshake_ms']['median']} ms, "
        f"p95 {figures['handshake_ms']['p95']} ms (n={shakes})"
    )
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
