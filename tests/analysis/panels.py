"""Small synthetic tasks for the analysis tests: a target party's series whose value really
depends on the covariates of the other providers (each a party of its own), built as the
runtime receives them (one Arrow table per party) with the task spec that names them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from chronoseal.analysis import Panel, join_tables
from chronoseal.spec import TaskSpec, parse_spec

PIN = {"tee": "simulated", "value": "0x" + "11" * 32}


def synthetic_task(
    *,
    providers: int = 2,
    series: int = 1,
    periods: int = 400,
    freq: str = "D",
    season: int = 7,
    horizon: int = 7,
    windows: int = 2,
    family: str = "mlforecast-lightgbm",
    local_input_size: int | None = None,
    contribution: bool = True,
    seed: int = 0,
) -> tuple[TaskSpec, dict[str, pa.Table]]:
    """The spec and the parties' tables; provider ``p{i}`` holds covariate ``x{i}``."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2022-01-01", periods=periods, freq="30min" if freq == "30min" else freq)
    covariates = {f"x{i}": rng.normal(size=periods) for i in range(providers)}
    rows = []
    for s in range(series):
        phase = 2 * np.pi * np.arange(periods) / season
        y = 50 + 10 * s + 5 * np.sin(phase) + rng.normal(scale=0.5, size=periods)
        for i, x in enumerate(covariates.values()):
            y = y + (3.0 / (i + 1)) * x
        rows.append(pd.DataFrame({"time": times, "site": f"s{s}", "y": y}))
    target = pd.concat(rows, ignore_index=True)
    tables = {"owner": pa.Table.from_pandas(target, preserve_index=False)}
    for i, (name, x) in enumerate(covariates.items()):
        tables[f"p{i}"] = pa.Table.from_pandas(
            pd.DataFrame({"time": times, name: x}), preserve_index=False
        )
    parties = ["owner", *(f"p{i}" for i in range(providers))]
    datasets: list[dict[str, Any]] = [
        {
            "party": "owner",
            "name": "target",
            "source": "target",
            "time_column": "time",
            "entity_columns": ["site"],
            "value_columns": ["y"],
            "frequency": freq,
            "policy": {
                "columns": {
                    "time": {"action": "keep"},
                    "site": {"action": "keep"},
                    "y": {"action": "keep"},
                }
            },
        }
    ]
    for i in range(providers):
        datasets.append(
            {
                "party": f"p{i}",
                "name": f"cov{i}",
                "source": f"cov{i}",
                "time_column": "time",
                "value_columns": [f"x{i}"],
                "frequency": freq,
                "availability": "future_known",
                "policy": {"columns": {"time": {"action": "keep"}, f"x{i}": {"action": "keep"}}},
            }
        )
    model: dict[str, Any] = {
        "family": family,
        "target": {"dataset": "target", "column": "y"},
        "horizon": horizon,
        "season_length": season,
    }
    if local_input_size is not None:
        model["local_input_size"] = local_input_size
    release: dict[str, Any] = {
        "metrics": {"to": ["owner"], "which": ["mase"]},
        "forecasts": {"to": ["owner"]},
    }
    if contribution:
        release["contribution"] = {"to": ["owner"]}
    raw = {
        "task": {
            "name": "synthetic",
            "kind": "forecast",
            "deadline": "2030-01-01T00:00:00Z",
        },
        "participants": [
            {
                "org": p,
                "roles": ["data_provider", "result_recipient"]
                if p == "owner"
                else ["data_provider"],
            }
            for p in parties
        ],
        "datasets": datasets,
        "join": {"kind": "vertical", "on": ["time"]},
        "model": model,
        "evaluation": {"windows": windows, "metrics": ["mase"]},
        "release": release,
        "measurements": {"gateway": PIN, "analysis": PIN, "prediction": PIN},
    }
    return parse_spec(raw), tables


def synthetic_panel(**kwargs: Any) -> tuple[TaskSpec, Panel]:
    spec, tables = synthetic_task(**kwargs)
    return spec, join_tables(spec, tables)
