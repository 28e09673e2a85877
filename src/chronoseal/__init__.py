"""chronoseal: multi-party time-series analytics on TEEs, coordinated by a consortium chain.

The Python API (docs/api.md)::

    import chronoseal

    result = chronoseal.Scenario.load("examples/chicago/scenario.toml").run(until="trained")
    result.model.metrics["mase"]

Names load on first use, so ``import chronoseal`` stays cheap.
"""

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

# Imported before any other chronoseal module so it records the interpreter's recursion
# limit before any chain library raises it (see chronoseal._decode).
from chronoseal import _decode as _decode
from chronoseal._lazy import lazy_exports

if TYPE_CHECKING:
    from chronoseal import audit as audit
    from chronoseal.errors import ChronosealError
    from chronoseal.node import ModelResult, RunResult, Scenario
    from chronoseal.prediction import Receipt, read_receipts, verify_receipt

_exports, __dir__ = lazy_exports(
    __name__,
    {
        "errors": ["ChronosealError"],
        "node": ["ModelResult", "RunResult", "Scenario"],
        "prediction": ["Receipt", "read_receipts", "verify_receipt"],
    },
)


def __getattr__(name: str) -> Any:
    if name == "audit":
        # The callable audit package itself: importing it binds the name here, so the
        # function could not stay bound to it.
        module: ModuleType = importlib.import_module("chronoseal.audit")
        return module
    return _exports(name)


__all__ = [
    "ChronosealError",
    "ModelResult",
    "Receipt",
    "RunResult",
    "Scenario",
    "audit",
    "read_receipts",
    "verify_receipt",
]
