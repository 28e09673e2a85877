"""Builders for small datasets and batches the privacy tests share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pytest

from chronoseal.privacy import Desensitizer
from chronoseal.spec import Dataset

TASK_KEY = bytes(range(32))
TASK_ID = b"\x01" * 32
SEED = b"\x02" * 32
DAY0 = dt.date(2024, 1, 1)

MakeDataset = Callable[..., Dataset]
Release = Callable[..., pa.Array]
Days = Callable[[int], pa.Array]


def make_dataset(
    rules: dict[str, dict[str, Any]],
    *,
    entities: Sequence[str] = (),
    values: Sequence[str] | None = None,
    time: str = "t",
    **policy: Any,
) -> Dataset:
    """Every column of ``rules`` is declared; entity columns as named, the rest values."""
    declared_values = [c for c in rules if c != time and c not in entities]
    return Dataset.model_validate(
        {
            "party": "p",
            "name": "d",
            "source": "s",
            "time_column": time,
            "entity_columns": list(entities),
            "value_columns": list(values) if values is not None else declared_values,
            "frequency": "D",
            "policy": {"columns": {time: {"action": "keep"}, **rules}, **policy},
        }
    )


def days(n: int) -> pa.Array:
    return pa.array([DAY0 + dt.timedelta(days=i) for i in range(n)], type=pa.date32())


@pytest.fixture(scope="session")
def dataset() -> MakeDataset:
    return make_dataset


@pytest.fixture(scope="session")
def day_column() -> Days:
    return days


@pytest.fixture(scope="session")
def release() -> Release:
    """Apply one rule to one column (a value column, or an entity column) and return it."""

    def run(rule: dict[str, Any], values: pa.Array, *, entity: bool = False) -> pa.Array:
        columns = {"t": days(len(values)), "v": values}
        if entity:
            ds = make_dataset({"v": rule, "x": {"action": "keep"}}, entities=["v"])
            columns["x"] = pa.array([0.0] * len(values))
        else:
            ds = make_dataset({"v": rule})
        desensitizer = Desensitizer(ds, task_key=TASK_KEY, task_id=TASK_ID, noise_seed=SEED)
        out = desensitizer.process(pa.record_batch(columns))
        assert out is not None
        return out.column("v")

    return run
