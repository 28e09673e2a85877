"""A scenario's attested Dask workers (``[compute] workers``, ``chronoseal run --workers N``):
the compute the analysis runtime starts, and what the run summary says of each worker.

The summary takes the runtime's own record of each worker (its appraisal, the fits it ran)
and checks the one claim the chain can confirm: that the worker's attestation was posted
for the task (an ``AttestationPosted`` of kind ``analysis_worker`` with its evidence).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chronoseal.ledger import ChainComponent, ChainEvent
from chronoseal.spec import TaskSpec

if TYPE_CHECKING:
    from chronoseal.analysis import DaskCompute


@dataclass(frozen=True)
class ComputeOptions:
    """Workers in TEEs of their own (``analysis serve --worker-at``): each one's admission
    ``HOST:PORT``, where the scheduler listens and the host name they reach it at."""

    remote: tuple[str, ...] = ()
    listen: str | None = None
    contact: str | None = None


def analysis_compute(
    spec: TaskSpec, workers: int, options: ComputeOptions | None = None
) -> DaskCompute | None:
    """``workers`` local worker processes, and the remote ones of ``options``, in the TEE
    the task pins for its workers."""
    pin = spec.measurements.analysis_worker
    options = options or ComputeOptions()
    if not (workers or options.remote) or pin is None:
        return None
    from chronoseal.analysis import DaskCompute  # Dask: only for a runtime with workers

    return DaskCompute(
        workers, remote=options.remote, listen=options.listen, contact=options.contact, tee=pin.tee
    )


def workers_json(records: list[dict[str, Any]], events: list[ChainEvent]) -> list[dict[str, Any]]:
    """Each worker's record; ``on_chain`` (and the block and transaction of its
    ``AttestationPosted``) from the chain's events rather than the runtime's word."""
    posted = [
        e
        for e in events
        if e.name == "AttestationPosted" and int(e.args["kind"]) == ChainComponent.ANALYSIS_WORKER
    ]
    out = []
    for record in records:
        doc = dict(record)
        if "evidence_hash" in doc:
            evidence = str(doc["evidence_hash"]).lower()
            match = next(
                (
                    e
                    for e in posted
                    if hmac.compare_digest(evidence, str(e.args["evidence"]).lower())
                ),
                None,
            )
            doc["on_chain"] = match is not None
            if match is not None:
                doc["attestation_block"] = match.block_number
                doc["attestation_tx"] = match.tx_hash
        out.append(doc)
    return out
