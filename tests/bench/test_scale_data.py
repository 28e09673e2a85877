"""The scale bench's synthetic data: every party's table as the runtime receives it, a task
that validates and joins, and a covariate signal that is really in the load."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pytest

from chronoseal.analysis import join_tables

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("freq", "periods", "series", "providers"), [("D", 60, 3, 8), ("h", 500, 1, 3)]
)
def test_every_party_sends_one_row_per_meter_and_period(
    scale: ModuleType, freq: str, periods: int, series: int, providers: int
) -> None:
    tables = scale.synthetic(freq, periods, series, providers)
    assert list(tables) == list(scale.PARTY_ORDER[:providers])
    for table in tables.values():
        assert table.num_rows == periods * series
        assert table.column_names[:2] == ["time", "meter"]
        assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
        assert table.column(2).null_count == 0


def test_the_task_joins_every_provider_as_a_covariate(scale: ModuleType) -> None:
    case = scale.providers_case(6, 2)
    panel = join_tables(case.spec, case.tables)
    assert len(panel.frame) == scale.PROVIDERS_SERIES * scale.DAILY["days"]
    assert panel.frame["unique_id"].nunique() == scale.PROVIDERS_SERIES
    assert panel.providers == sorted(scale.PARTY_ORDER[1:6])
    assert {c.availability for c in panel.covariates} == {"future_known", "past_only"}
    assert case.spec.evaluation.windows == 2


def test_the_load_is_the_same_whoever_joins_and_follows_the_temperature(
    scale: ModuleType,
) -> None:
    alone = scale.synthetic("D", 730, 4, 1)
    joined = scale.synthetic("D", 730, 4, 3)
    load = joined["utility"].column("load").to_numpy()
    assert np.array_equal(alone["utility"].column("load").to_numpy(), load)
    temperature = joined["weather"].column("temperature").to_numpy()
    noise = joined["noise"].column("reading").to_numpy()
    # per meter, log load against the distance from 16 °C: the weather party's signal
    for m in range(4):
        rows = slice(m * 730, (m + 1) * 730)
        signal = np.corrcoef(np.log(load[rows]), np.abs(temperature[rows] - 16.0))[0, 1]
        assert signal > 0.3
        assert abs(np.corrcoef(np.diff(np.log(load[rows])), np.diff(noise[rows]))[0, 1]) < 0.15
