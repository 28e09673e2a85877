"""What :meth:`Scenario.run` returns: the run's released values as typed objects and frames.

Every figure is one the parties received (the release each fetched and checked against the
chain) or one read back from the chain; the JSON summary (``chronoseal run --json``) is the
same report, so a notebook and the command line never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from chronoseal.audit import TaskAudit
from chronoseal.ledger import ChainBackend, Consortium
from chronoseal.prediction import Receipt

from ._run import RunError

if TYPE_CHECKING:
    import pyarrow as pa

    from ._config import ScenarioConfig
    from ._demo import DemoReport


def _nan(value: Any) -> float:
    """A released figure; one the runtime could not compute (JSON ``null``, not finite) is
    NaN, as it would be in a frame."""
    return math.nan if value is None else float(value)


def _metrics(doc: dict[str, Any]) -> dict[str, float]:
    return {k: _nan(v) for k, v in doc.items()}


@dataclass(frozen=True)
class ModelResult:
    """The joint model as released: its family, on-chain commitment and back-test metrics."""

    family: str
    commitment: str
    metrics: dict[str, float]


@dataclass
class RunResult:
    """A scenario's run: what the chain holds, what each party received, the audit's verdict.

    With ``rpc="anvil"`` the node the run started keeps running (so :attr:`consortium`
    stays readable) until :meth:`close`, or the end of a ``with`` block.
    """

    scenario: ScenarioConfig
    report: DemoReport
    chain: ChainBackend
    #: With ``rpc``: where the keys, state and each process's log are.
    work: Path | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def __enter__(self) -> RunResult:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the chain node the run started, if any; the results stay readable."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()

    @property
    def task_id(self) -> str:
        return "0x" + self.report.task_id.hex()

    @property
    def state(self) -> str:
        """The task's state on chain when the run ended: Approved, Running, Trained, Serving."""
        return self.report.state

    @property
    def consortium(self) -> Consortium:
        """The run's consortium contract, for :func:`chronoseal.audit` or the explorer."""
        return Consortium.at(self.chain, self.report.contract)

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON summary, exactly as ``chronoseal run --json`` writes it."""
        return self.report.to_json()

    @property
    def model(self) -> ModelResult:
        """The released joint model; ``run.stage.not_reached`` before ``until="trained"``."""
        doc = self._released("model")
        return ModelResult(
            family=str(doc["family"]),
            commitment=str(doc["commitment"]),
            metrics=_metrics(doc["metrics"]),
        )

    @property
    def baselines(self) -> pd.DataFrame:
        """One row per single-party baseline on the same folds: name, family, metrics."""
        rows = [
            {"name": b["name"], "family": b["family"], **_metrics(b["metrics"])}
            for b in self._released("baselines")
        ]
        return pd.DataFrame(rows)

    @property
    def contributions(self) -> pd.DataFrame:
        """Each data provider's change in MASE (negative = its data made forecasts better),
        with its standard error where the method estimates one."""
        doc = self._released("contribution")
        errors = doc.get("standard_error") or {}
        return pd.DataFrame(
            {
                "party": list(doc["delta_mase"]),
                "delta_mase": [_nan(v) for v in doc["delta_mase"].values()],
                "standard_error": [_nan(errors.get(p)) for p in doc["delta_mase"]],
            }
        )

    @property
    def forecasts(self) -> dict[str, pd.DataFrame]:
        """What each recipient was served (long format: ``unique_id``, ``ds``, forecasts);
        empty before ``until="serving"``."""
        return dict(self.report.forecasts)

    @property
    def receipts(self) -> list[Receipt]:
        """The receipt of every forecast request the parties made (for
        :func:`chronoseal.verify_receipt`); empty before ``until="serving"``."""
        return list(self.report.receipts)

    def forecasts_arrow(self) -> dict[str, pa.Table]:
        """:attr:`forecasts` as Arrow tables."""
        import pyarrow as pa

        return {p: pa.Table.from_pandas(f, preserve_index=False) for p, f in self.forecasts.items()}

    @property
    def audit(self) -> TaskAudit:
        """The task re-verified from the chain alone after the last stage."""
        if self.report.audit is None:
            raise RunError("this run has no audit", id="run.stage.not_reached")
        return self.report.audit

    @property
    def verified(self) -> bool:
        """The audit's verdict: every check passed or was not reached."""
        return self.audit.verified

    def _released(self, key: str) -> Any:
        value = self.report.released(key)
        if value is None:
            raise RunError(
                f"the run released no {key} (it stopped at {self.state}; the model, its "
                f"baselines and contributions exist from until='trained')",
                id="run.stage.not_reached",
            )
        return value
