"""A scenario's attested Dask workers (``[compute] workers``, ``chronoseal run --workers N``):
the compute the analysis runtime starts, and what the run summary says of each worker.

The summary takes the runtime's own record of each worker (its appraisal, the fits it ran)
and checks the one claim the chain can confirm: that the worker's attestation was posted
for the task (an ``AttestationPosted`` of kind ``analysis_worker`` with its evidence).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from chronoseal.ledger import ChainComponent, ChainEvent
from chronoseal.spec import TaskSpec

if TYPE_CHECKING:
    from chronoseal.analysis import DaskCompute


def analysis_compute(spec: TaskSpec, workers: int) -> DaskCompute | None:
    """``workers`` local worker processes in the TEE the task pins for its workers."""
    pin = spec.measurements.analysis_worker
    if not workers or pin is None:
        return None
    from chronoseal.analysis import DaskCompute  # Dask: only for a runtime with workers

    return DaskCompute(workers, tee=pin.tee)


def workers_json(records: list[dict[str, Any]], events: list[ChainEvent]) -> list[dict[str, Any]]:
    """Each worker's record, ``on_chain`` from the chain's events rather than the runtime."""
    posted = [
        str(e.args["evidence"]).lower()
        for e in events
        if e.name == "AttestationPosted" and int(e.args["kind"]) == ChainComponent.ANALYSIS_WORKER
    ]
    out = []
    for record in records:
        doc = dict(record)
        if "evidence_hash" in doc:
            evidence = str(doc["evidence_hash"]).lower()
            doc["on_chain"] = any(hmac.compare_digest(evidence, p) for p in posted)
        out.append(doc)
    return out
