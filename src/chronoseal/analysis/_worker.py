"""One analysis worker process: its own attested identity, a Dask worker over ``ratls://``.

Started by the analysis runtime (:class:`~chronoseal.analysis._dask.DaskCompute`), which
speaks to it over the process's stdin/stdout, one JSON object a line:

1. runtime → worker: ``{"freshness", "tee", "validity"}`` (and ``"measurement"`` only to
   stand a simulated worker in for another build, as tests do);
2. worker → runtime: ``{"certificate"}``: its RA-TLS certificate, evidence bound to its key;
3. runtime → worker: ``{"scheduler", "scheduler_certificate", "name"}`` once the runtime
   appraised the certificate, or ``{"refused": id}``, and then the worker exits having
   received nothing.

``chronoseal analysis worker --listen HOST:PORT`` runs the same exchange over one TCP
connection the runtime opens (a worker in a TEE of its own, e.g. a pod of the worker
StatefulSet ``deploy render`` emits), keeps that connection open while it serves, and stops
when the runtime closes it. Its Dask endpoint listens on ``--dask-port`` and is announced as
``--contact`` (the pod's stable DNS name).

The worker admits exactly one peer, the runtime's scheduler certificate it was handed, so
no other Dask endpoint (another worker included) can connect to it or be connected to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from chronoseal.attest import Attester, SimulatedAttester, attester_for
from chronoseal.channel import RaTlsTrust
from chronoseal.spec import Component
from chronoseal.trust import attested_identity

EXIT_REFUSED = 3


def _line(stream: Any) -> dict[str, Any]:
    raw = stream.readline()
    if not raw:
        raise SystemExit("the analysis runtime closed the worker's pipe")
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise SystemExit("the analysis runtime sent a malformed line")
    return doc


def _attester(hello: dict[str, Any]) -> Attester:
    tee = str(hello["tee"])
    override = hello.get("measurement")
    if override is not None:
        if tee != "simulated":
            raise SystemExit("a measurement override exists only for the simulated TEE")
        return SimulatedAttester(Component.ANALYSIS_WORKER, measurement=bytes.fromhex(override))
    return attester_for(tee, Component.ANALYSIS_WORKER)


@dataclass(frozen=True)
class WorkerEndpoint:
    """Where this worker's Dask endpoint listens and how the scheduler reaches it."""

    host: str = "127.0.0.1"
    port: int = 0
    contact: str | None = None

    @property
    def contact_address(self) -> str | None:
        return None if self.contact is None else f"ratls://{self.contact}:{self.port}"


async def _serve(
    scheduler: str,
    trust: RaTlsTrust,
    name: str,
    endpoint: WorkerEndpoint,
    hangup: Callable[[], None] | None = None,
) -> None:
    """Serve Dask until the worker finishes or, with ``hangup`` (which returns when the
    runtime closed the admission connection), until the runtime is gone."""
    from distributed import Worker

    # Dask logs every plugin and connection at INFO; the runtime reports what matters.
    logging.getLogger("distributed").setLevel(logging.ERROR)

    async with Worker(
        scheduler,
        security=trust.security(),
        nthreads=1,
        name=name,
        host=endpoint.host,
        port=endpoint.port or None,
        contact_address=endpoint.contact_address,
        dashboard=False,
    ) as worker:
        finished = asyncio.ensure_future(worker.finished())
        if hangup is None:
            await finished
            return
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()

        def watch() -> None:
            hangup()
            loop.call_soon_threadsafe(gone.set)

        threading.Thread(target=watch, daemon=True, name="admission-watch").start()
        await asyncio.wait(
            [finished, asyncio.ensure_future(gone.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )


def admitted(
    rfile: IO[str],
    wfile: IO[str],
    endpoint: WorkerEndpoint,
    hangup: Callable[[], None] | None = None,
) -> int:
    """The exchange with the runtime (module docstring), then Dask until it ends."""
    hello = _line(rfile)
    identity = attested_identity(
        _attester(hello),
        bytes.fromhex(hello["freshness"]),
        chain_address=hello.get("chain_address"),
        validity=timedelta(seconds=float(hello["validity"])),
    )
    wfile.write(
        json.dumps({"certificate": base64.b64encode(identity.certificate_der).decode()}) + "\n"
    )
    wfile.flush()
    reply = _line(rfile)
    if "refused" in reply:
        print(f"refused by the analysis runtime: [{reply['refused']}]", file=sys.stderr)
        return EXIT_REFUSED
    trust = RaTlsTrust(identity)
    # The runtime handed it the scheduler's certificate over its own pipe or connection.
    trust.admit(base64.b64decode(reply["scheduler_certificate"]), lambda der: None)
    asyncio.run(_serve(str(reply["scheduler"]), trust, str(reply["name"]), endpoint, hangup))
    return 0


def serve_worker(listen: tuple[str, int], endpoint: WorkerEndpoint) -> int:
    """``chronoseal analysis worker``: wait for one analysis runtime on ``listen``, then
    serve it as :func:`admitted` does; print ``{"listening": "HOST:PORT"}`` first."""
    with socket.create_server(listen) as server:
        host, port = server.getsockname()[:2]
        print(json.dumps({"listening": f"{host}:{port}"}), flush=True)
        conn, _ = server.accept()
    with conn, conn.makefile("r") as rfile, conn.makefile("w") as wfile:

        def hangup() -> None:
            while rfile.readline():  # the runtime sends nothing more: wait for its end
                pass

        return admitted(rfile, wfile, endpoint, hangup)


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    return admitted(sys.stdin, sys.stdout, WorkerEndpoint())


if __name__ == "__main__":
    raise SystemExit(main())
