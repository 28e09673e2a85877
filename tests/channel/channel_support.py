"""Helpers for channel tests: simulated-TEE identities, appraisers, a loopback server."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from chronoseal.attest import (
    AppraisalPolicy,
    Appraiser,
    PinnedMeasurements,
    SimulatedAttester,
    code_measurement,
)
from chronoseal.channel import HpkeKem, RaTlsIdentity
from chronoseal.spec import Component

NONCE = bytes.fromhex("6b1f" * 16)
UNAPPROVED = bytes([0x66]) * 32
T = TypeVar("T")


def appraiser() -> Appraiser:
    """Approves the installed code of every component kind, simulated TEE allowed."""
    approved = PinnedMeasurements((kind, "simulated", code_measurement(kind)) for kind in Component)
    return Appraiser(AppraisalPolicy(measurements=approved, allow_simulated=True))


def identity(
    kind: Component,
    *,
    measurement: bytes | None = None,
    nonce: bytes = NONCE,
    kem: HpkeKem = HpkeKem.X25519,
) -> RaTlsIdentity:
    attester = SimulatedAttester(kind, measurement=measurement)
    return RaTlsIdentity.generate(attester, nonce, hpke_kem=kem)


@contextmanager
def serve_once(
    handler: Callable[[socket.socket], T],
) -> Iterator[tuple[tuple[str, int], Future[T]]]:
    """Listen on an ephemeral loopback port and run ``handler`` on the first connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener, ThreadPoolExecutor(1) as pool:
        listener.settimeout(10)

        def run() -> T:
            connection, _ = listener.accept()
            return handler(connection)

        yield listener.getsockname()[:2], pool.submit(run)


def read_until_eof(tls: ssl.SSLSocket) -> bytes:
    """Everything a peer sends before it closes (alerts and resets count as closing)."""
    received = b""
    try:
        while chunk := tls.recv(4096):
            received += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return received
