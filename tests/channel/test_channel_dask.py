"""The ``ratls://`` Dask comm backend, found through Dask's own entry point: only admitted
(appraised) RA-TLS certificates connect, in either direction; plain ``tcp://``, Dask's own
TLS and a withdrawn peer are refused before Dask's handshake."""

from __future__ import annotations

import asyncio
import gc
import ssl
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from channel_support import NONCE, UNAPPROVED, appraiser, identity
from distributed.comm import connect, listen
from distributed.comm.registry import backends, get_backend
from distributed.security import Security

from chronoseal.channel import RaTlsTrust, certificate_appraiser
from chronoseal.channel._dask import RaTlsBackend
from chronoseal.errors import PeerRefused
from chronoseal.spec import Component

# Tornado's IOStreams of Dask's comms can outlive asyncio.run's loop in these bare
# listen/connect tests (Dask's own suite runs them under its loop fixtures); a socket our
# backend refuses is closed by it (RaTlsListener/RaTlsConnector).
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_dask_streams() -> Iterator[None]:
    yield
    gc.collect()  # inside the test's warning filters, not at the session's end


WORKER = Component.ANALYSIS_WORKER
appraise_worker = certificate_appraiser(appraiser(), WORKER, {NONCE})


def _pair() -> tuple[RaTlsTrust, RaTlsTrust]:
    """A scheduler that admitted one appraised worker, and that worker pinning it."""
    scheduler = RaTlsTrust(identity(Component.ANALYSIS))
    worker = RaTlsTrust(identity(WORKER))
    scheduler.admit(worker.identity.certificate_der, appraise_worker)
    worker.admit(scheduler.identity.certificate_der, lambda der: None)
    return scheduler, worker


def _run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 30))


async def _echo_server(trust: RaTlsTrust) -> Any:
    async def handle(comm: Any) -> None:
        await comm.write(await comm.read())
        await comm.close()

    listener = await listen(
        "ratls://127.0.0.1:0", handle, **trust.security().get_listen_args("scheduler")
    )
    await listener.start()
    return listener


def _declared_entry_point() -> EntryPoint:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    group = "distributed.comm.backends"
    ((name, value),) = project["project"]["entry-points"][group].items()
    return EntryPoint(name, value, group)


def test_pyproject_declares_the_ratls_entry_point_dask_loads() -> None:
    declared = _declared_entry_point()
    assert declared.name == "ratls" and declared.load() is RaTlsBackend


def test_ratls_comes_from_the_distributed_comm_backends_entry_point() -> None:
    installed = entry_points(group="distributed.comm.backends", name="ratls")
    if not installed:
        pytest.skip(
            "the installed chronoseal metadata predates the ratls entry point "
            "(tests run from a source tree): re-run scripts/install to register it"
        )
    assert [ep.value for ep in installed] == [_declared_entry_point().value]
    backends.pop("ratls", None)
    assert isinstance(get_backend("ratls"), RaTlsBackend)


def test_an_admitted_worker_and_its_scheduler_talk_both_ways() -> None:
    scheduler, worker = _pair()

    async def body() -> Any:
        listener = await _echo_server(scheduler)
        try:
            comm = await connect(
                listener.contact_address, **worker.security().get_connection_args("worker")
            )
            await comm.write({"op": "ping"})
            reply = await comm.read()
            cipher = comm.extra_info["cipher"]
            await comm.close()
        finally:
            listener.stop()
        # ...and the scheduler side calls the worker's listener
        back = await _echo_server(worker)
        try:
            comm = await connect(
                back.contact_address, **scheduler.security().get_connection_args("scheduler")
            )
            await comm.write({"op": "pong"})
            assert await comm.read() == {"op": "pong"}
            await comm.close()
        finally:
            back.stop()
        return reply, cipher

    reply, cipher = _run(body)
    assert reply == {"op": "ping"}
    assert cipher[1] == "TLSv1.3"


def test_a_worker_that_was_never_admitted_is_refused() -> None:
    scheduler, _ = _pair()
    stranger = RaTlsTrust(identity(WORKER))
    stranger.admit(scheduler.identity.certificate_der, lambda der: None)

    async def body() -> None:
        listener = await _echo_server(scheduler)
        try:
            with pytest.raises(OSError):
                await connect(
                    listener.contact_address,
                    timeout=2,
                    **stranger.security().get_connection_args("worker"),
                )
        finally:
            listener.stop()

    _run(body)


def test_a_worker_whose_measurement_is_unapproved_is_refused_at_admission() -> None:
    scheduler = RaTlsTrust(identity(Component.ANALYSIS))
    rogue = identity(WORKER, measurement=UNAPPROVED)
    with pytest.raises(PeerRefused) as refused:
        scheduler.admit(rogue.certificate_der, appraise_worker)
    assert refused.value.id == "channel.peer.evidence_refused"
    assert refused.value.context["attestation_id"] == "attest.measurement.not_approved"
    with pytest.raises(PeerRefused, match="never admitted"):
        scheduler.check(rogue.certificate_der)


def test_evidence_bound_to_a_stale_nonce_is_refused_at_admission() -> None:
    scheduler = RaTlsTrust(identity(Component.ANALYSIS))
    late = identity(WORKER, nonce=bytes(32))
    with pytest.raises(PeerRefused) as refused:
        scheduler.admit(late.certificate_der, appraise_worker)
    assert refused.value.id == "channel.peer.stale_nonce"


def test_a_gateway_certificate_is_not_a_worker() -> None:
    scheduler = RaTlsTrust(identity(Component.ANALYSIS))
    with pytest.raises(PeerRefused) as refused:
        scheduler.admit(identity(Component.GATEWAY).certificate_der, appraise_worker)
    assert refused.value.id == "channel.peer.wrong_component"


def test_a_withdrawn_worker_is_refused_on_its_next_connection() -> None:
    scheduler, worker = _pair()
    scheduler.withdraw(RaTlsTrust.fingerprint(worker.identity.certificate_der))

    async def body() -> None:
        listener = await _echo_server(scheduler)
        try:
            comm = await connect(
                listener.contact_address,
                timeout=2,
                **worker.security().get_connection_args("worker"),
            )
            # TLS completed (the anchor stays), but the scheduler dropped it before Dask's
            # handshake: the client's first read fails.
            with pytest.raises(OSError):
                await comm.read()
        except OSError:
            pass  # the drop can also land during Dask's own handshake inside connect()
        finally:
            listener.stop()

    with pytest.raises(PeerRefused) as refused:
        scheduler.check(worker.identity.certificate_der)
    assert refused.value.id == "channel.dask.withdrawn"
    _run(body)


def test_plain_tcp_is_refused_by_configuration_and_on_the_wire() -> None:
    scheduler, worker = _pair()

    async def body() -> None:
        listener = await _echo_server(scheduler)
        host_port = listener.contact_address.removeprefix("ratls://")
        try:
            # Dask itself refuses: the security requires encryption.
            with pytest.raises(RuntimeError, match="encryption required"):
                await connect(
                    f"tcp://{host_port}", **worker.security().get_connection_args("worker")
                )
            with pytest.raises(RuntimeError, match="encryption required"):
                await listen(
                    "tcp://127.0.0.1:0",
                    lambda comm: None,
                    **scheduler.security().get_listen_args("scheduler"),
                )
            # A plaintext Dask client at the scheduler's port gets no answer but a close.
            with pytest.raises(OSError):
                await connect(f"tcp://{host_port}", timeout=2)
        finally:
            listener.stop()

    _run(body)


def test_dask_tls_with_its_own_certificates_is_refused() -> None:
    scheduler, _ = _pair()
    plain = Security.temporary()

    async def body() -> None:
        listener = await _echo_server(scheduler)
        host_port = listener.contact_address.removeprefix("ratls://")
        try:
            with pytest.raises(OSError):
                await connect(
                    f"tls://{host_port}", timeout=2, **plain.get_connection_args("client")
                )
            # ratls:// without a chronoseal trust is no RA-TLS at all
            with pytest.raises(OSError, match=r"channel\.dask\.no_trust"):
                await connect(
                    listener.contact_address, timeout=2, **plain.get_connection_args("client")
                )
        finally:
            listener.stop()

    _run(body)


def test_contexts_are_tls_1_3_and_demand_a_certificate() -> None:
    trust = RaTlsTrust(identity(Component.ANALYSIS))
    for context in (trust.server_context, trust.client_context):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
