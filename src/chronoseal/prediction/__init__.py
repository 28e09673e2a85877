"""The trusted prediction runtime (claims 1, 5): the sealed model taken over from the
analysis runtime after its hash checked against the chain, feature feeds from the parties'
gateways, forecasts served only to the task's recipients, and every request and refusal
audited in Merkle batches on chain, with receipts a requester checks against the chain alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chronoseal._lazy import lazy_exports

from ._audit import (
    AuditError,
    AuditLeaf,
    AuditLog,
    Receipt,
    audit_root_poster,
    inclusion_proof,
    merkle_root,
    read_receipts,
    verify_inclusion,
    verify_receipt,
)
from ._sealed import SealedStateError, SealedStore
from ._wire import party_signer

if TYPE_CHECKING:
    from ._client import Answer, ForecastClient
    from ._input import MAX_INPUT_ROWS, input_dataset
    from ._runtime import PredictionRuntime, ResumeReport
    from ._serving import ServingStats

# Receipts and the audit log are light; the client and runtime hold the model (pandas and
# the forecasting libraries), so they load on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "_client": ["Answer", "ForecastClient"],
        "_input": ["MAX_INPUT_ROWS", "input_dataset"],
        "_runtime": ["PredictionRuntime", "ResumeReport"],
        "_serving": ["ServingStats"],
    },
)

__all__ = [
    "MAX_INPUT_ROWS",
    "Answer",
    "AuditError",
    "AuditLeaf",
    "AuditLog",
    "ForecastClient",
    "PredictionRuntime",
    "Receipt",
    "ResumeReport",
    "SealedStateError",
    "SealedStore",
    "ServingStats",
    "audit_root_poster",
    "inclusion_proof",
    "input_dataset",
    "merkle_root",
    "party_signer",
    "read_receipts",
    "verify_inclusion",
    "verify_receipt",
]
