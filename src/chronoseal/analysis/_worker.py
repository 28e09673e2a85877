"""One analysis worker process: its own attested identity, a Dask worker over ``ratls://``.

Started by the analysis runtime (:class:`~chronoseal.analysis._dask.DaskCompute`), which
speaks to it over the process's stdin/stdout, one JSON object a line:

1. runtime → worker: ``{"freshness", "tee", "validity"}`` (and ``"measurement"`` only to
   stand a simulated worker in for another build, as tests do);
2. worker → runtime: ``{"certificate"}``: its RA-TLS certificate, evidence bound to its key;
3. runtime → worker: ``{"scheduler", "scheduler_certificate", "name"}`` once the runtime
   appraised the certificate, or ``{"refused": id}``, and then the worker exits having
   received nothing.

The worker admits exactly one peer, the runtime's scheduler certificate it was handed, so
no other Dask endpoint (another worker included) can connect to it or be connected to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from datetime import timedelta
from typing import Any

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


async def _serve(scheduler: str, trust: RaTlsTrust, name: str) -> None:
    from distributed import Worker

    # Dask logs every plugin and connection at INFO; the runtime reports what matters.
    logging.getLogger("distributed").setLevel(logging.ERROR)

    async with Worker(
        scheduler,
        security=trust.security(),
        nthreads=1,
        name=name,
        host="127.0.0.1",
        dashboard=False,
    ) as worker:
        await worker.finished()


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    hello = _line(sys.stdin)
    identity = attested_identity(
        _attester(hello),
        bytes.fromhex(hello["freshness"]),
        chain_address=hello.get("chain_address"),
        validity=timedelta(seconds=float(hello["validity"])),
    )
    sys.stdout.write(
        json.dumps({"certificate": base64.b64encode(identity.certificate_der).decode()}) + "\n"
    )
    sys.stdout.flush()
    reply = _line(sys.stdin)
    if "refused" in reply:
        print(f"refused by the analysis runtime: [{reply['refused']}]", file=sys.stderr)
        return EXIT_REFUSED
    trust = RaTlsTrust(identity)
    # The runtime started this process and handed it the scheduler's certificate: pinned.
    trust.admit(base64.b64decode(reply["scheduler_certificate"]), lambda der: None)
    asyncio.run(_serve(str(reply["scheduler"]), trust, str(reply["name"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
