"""End to end on the bundled Chicago data under the example task's approved policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chronoseal.errors import DataError
from chronoseal.privacy import BudgetLedger, Desensitizer, PrivacyCost, dataset_cost
from chronoseal.spec import (
    Budget,
    Dataset,
    DatasetPolicy,
    TaskSpec,
    load_spec,
    resolve_measurements,
    task_id,
)

TASK_KEY = b"\x5a" * 32

DEPLOYMENT = "31337:0x5fbdb2315678afecb367f032d93f642f64180aa3"


@pytest.fixture(scope="module")
def spec(example_task: Path) -> TaskSpec:
    return resolve_measurements(load_spec(example_task), lambda component, tee: b"\x11" * 32)


def _table(example_dir: Path, ds: Dataset) -> pa.Table:
    return pq.read_table(example_dir / "data" / f"{ds.party}.parquet")


def _release(ds: Dataset, table: pa.Table, spec: TaskSpec, seed: bytes | None = None) -> pa.Table:
    d = Desensitizer(ds, task_key=TASK_KEY, task_id=task_id(spec), noise_seed=seed)
    batches = list(d.run(lambda: table.to_batches(max_chunksize=500)))
    return pa.Table.from_batches(batches)


def test_every_party_releases_exactly_its_policy(example_dir: Path, spec: TaskSpec) -> None:
    for ds in spec.datasets:
        table = _table(example_dir, ds)
        out = _release(ds, table, spec)
        kept = [c for c in ds.columns() if ds.policy.columns[c].action != "drop"]
        assert out.column_names == kept
        assert out.num_rows == table.num_rows
        assert out.column("date") == table.column("date")
        assert dataset_cost(ds) == PrivacyCost(0.0, 0.0)
    weather = next(ds for ds in spec.datasets if ds.name == "weather")
    out = _release(weather, _table(example_dir, weather), spec)
    assert "gust" not in out.column_names
    percip = np.asarray(out.column("percip"))
    assert percip.min() >= 0.0 and percip.max() <= 10.0
    temps = np.asarray(out.column("temp"))
    assert np.allclose(temps * 10, np.round(temps * 10))


def test_stations_join_under_one_task_and_not_across_tasks(
    example_dir: Path, spec: TaskSpec
) -> None:
    ridership = next(ds for ds in spec.datasets if ds.name == "ridership")
    table = _table(example_dir, ridership)
    first = _release(ridership, table, spec).column("station").unique().to_pylist()
    second = _release(ridership, table, spec).column("station").unique().to_pylist()
    assert first == second and len(first) == 1 and first != ["Clark/Lake"]
    other = Desensitizer(ridership, task_key=TASK_KEY, task_id=b"another task")
    batch = table.to_batches()[0]
    out = other.process(batch)
    assert out is not None and out.column("station")[0].as_py() != first[0]


def _weekly(ds: Dataset, rides: dict[str, object]) -> Dataset:
    policy = DatasetPolicy.model_validate(
        {
            "columns": {
                "date": {"action": "keep"},
                "station": {"action": "pseudonymize"},
                "rides": rides,
            },
            "k_threshold": 5,
            "resample": {"to": "W", "agg": "sum"},
            "time_shift": {"max_days": 14},
        }
    )
    return ds.model_copy(update={"policy": policy})


def test_a_stricter_policy_runs_end_to_end_and_is_charged(
    example_dir: Path, spec: TaskSpec, tmp_path: Path
) -> None:
    ridership = next(ds for ds in spec.datasets if ds.name == "ridership")
    noisy = _weekly(ridership, {"action": "laplace", "sensitivity": 30.0, "epsilon": 0.5})
    exact = _weekly(ridership, {"action": "keep"})
    table = _table(example_dir, ridership)
    out = _release(noisy, table, spec, seed=b"\x01" * 32)
    reference = _release(exact, table, spec)

    weeks = out.column("date").to_pylist()
    assert weeks == sorted(weeks) and len(set(weeks)) == len(weeks)
    assert all(w.weekday() == 0 for w in weeks)
    assert reference.column("date") == out.column("date")
    assert abs(out.num_rows - table.num_rows / 7) <= 3
    assert sum(reference.column("rides").to_pylist()) == pytest.approx(
        sum(table.column("rides").to_pylist())
    )
    error = np.abs(np.asarray(out.column("rides")) - np.asarray(reference.column("rides")))
    assert 0.5 * 60.0 < np.mean(error) < 1.5 * 60.0

    ledger = BudgetLedger(tmp_path / "budget.json", {"ridership": Budget(epsilon=1.0)})
    cost = dataset_cost(noisy)
    ledger.charge(
        noisy.source,
        task_id(spec),
        cost.epsilon,
        cost.delta,
        deployment=DEPLOYMENT,
    )
    ledger.charge(
        noisy.source,
        task_id(spec),
        cost.epsilon,
        cost.delta,
        deployment=DEPLOYMENT,
    )
    assert ledger.remaining("ridership") == PrivacyCost(0.5, 0.0)


def test_another_partys_table_is_refused_whole(example_dir: Path, spec: TaskSpec) -> None:
    ridership = next(ds for ds in spec.datasets if ds.name == "ridership")
    weather = next(ds for ds in spec.datasets if ds.name == "weather")
    d = Desensitizer(ridership, task_key=TASK_KEY, task_id=task_id(spec))
    with pytest.raises(DataError) as info:
        d.process(_table(example_dir, weather).to_batches()[0])
    assert info.value.id == "data.policy.uncovered_column"
    assert "temp" in info.value.context["columns"]
    narrowed = _table(example_dir, ridership).drop_columns(["rides"]).to_batches()[0]
    with pytest.raises(DataError) as info:
        d.process(narrowed)
    assert info.value.id == "data.policy.missing_column"
