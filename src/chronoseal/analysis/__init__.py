"""The analysis runtime (claim 1): attested, it receives every party's desensitized stream,
joins the tables, back-tests the task's model against single-party baselines, values each
data provider's contribution, seals the model and releases only what the task allows.

Intake: identity bound to a recent block, attestation posted on chain, gateways accepted only
when attested *and* provably acting for a data provider of the task, batches kept in memory,
and its own commitment per party posted for the contract to compare. Analysis: only after
every commitment matched; a refusal aborts the task on chain with its id.
"""

from typing import TYPE_CHECKING

from chronoseal._lazy import lazy_exports
from chronoseal.spec import SHAPLEY_MAX_PLAYERS

from ._analyse import (
    AnalysisResult,
    Contribution,
    Cost,
    Score,
    analyse,
    sampled_shapley,
    score,
    shapley,
)
from ._analyse import Progress as AnalysisProgress
from ._join import Covariate, Panel, Repair, join_tables
from ._release import build_releases
from ._runtime import (
    AnalysisRuntime,
    IntakeState,
    TrainedModel,
    expected_columns,
    verify_party_signature,
)

if TYPE_CHECKING:
    from ._dask import DaskCompute, DaskPool, RemoteWorker, WorkerRecord
    from ._worker import WorkerEndpoint, serve_worker

# Dask is imported only by a runtime that has workers.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "_dask": ["DaskCompute", "DaskPool", "RemoteWorker", "WorkerRecord"],
        "_worker": ["WorkerEndpoint", "serve_worker"],
    },
)

__all__ = [
    "SHAPLEY_MAX_PLAYERS",
    "AnalysisProgress",
    "AnalysisResult",
    "AnalysisRuntime",
    "Contribution",
    "Cost",
    "Covariate",
    "DaskCompute",
    "DaskPool",
    "IntakeState",
    "Panel",
    "RemoteWorker",
    "Repair",
    "Score",
    "TrainedModel",
    "WorkerEndpoint",
    "WorkerRecord",
    "analyse",
    "build_releases",
    "expected_columns",
    "join_tables",
    "sampled_shapley",
    "score",
    "serve_worker",
    "shapley",
    "verify_party_signature",
]
