"""A policy rule whose parameters would make it a silent no-op or destroy the data is refused
before any data moves, and every released batch is checked again: no transform introduces NaN
or infinity, rounding really happened, and an overflow is a DataError with an id."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from chronoseal.errors import DataError
from chronoseal.privacy import Desensitizer
from chronoseal.spec import Dataset, DatasetPolicy, Keep, Laplace, Round

TASK_KEY = bytes(range(32))
TASK_ID = b"\x01" * 32
SEED = b"\x02" * 32

NO_OP_OR_DESTRUCTIVE = [
    {"action": "round", "digits": -400},
    {"action": "round", "digits": -16},
    {"action": "round", "digits": 16},
    {"action": "round", "multiple": 1e-300},
    {"action": "round", "multiple": 1e300},
    {"action": "round", "multiple": float("inf")},
    {"action": "laplace", "sensitivity": 1e-320, "epsilon": 1.0},
    {"action": "laplace", "sensitivity": 1e300, "epsilon": 1.0},
    {"action": "laplace", "sensitivity": 1.0, "epsilon": 1e-9},
    {"action": "laplace", "sensitivity": 1.0, "epsilon": 1e9},
    {"action": "gaussian", "sensitivity": 1.0, "epsilon": 0.5, "delta": 0.5},
    {"action": "gaussian", "sensitivity": 1.0, "epsilon": 0.5, "delta": 1e-30},
    {"action": "clip", "min": float("-inf"), "max": 1.0},
    {"action": "clip", "min": 0.0, "max": float("nan")},
    {"action": "mask", "keep_prefix": 10**9},
    {"action": "truncate", "length": 10**9},
]


def _days(n: int) -> pa.Array:
    return pa.array(np.arange(n, dtype=np.int32) + 19723, type=pa.int32()).cast(pa.date32())


def _dataset(rules: dict[str, Any]) -> Dataset:
    return Dataset.model_validate(
        {
            "party": "p",
            "name": "d",
            "source": "s",
            "time_column": "t",
            "value_columns": [c for c in rules if c != "t"],
            "frequency": "D",
            "policy": {"columns": {"t": {"action": "keep"}, **rules}},
        }
    )


@pytest.mark.parametrize("rule", NO_OP_OR_DESTRUCTIVE)
def test_rules_outside_what_a_transform_can_honour_are_refused_by_the_schema(
    rule: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        _dataset({"v": rule})


def _release(rule: Any, values: list[float]) -> pa.RecordBatch:
    """Run a rule that skipped validation (built with model_construct) through a gateway's
    desensitizer: the released-batch checks are the last line of defence."""
    ds = _dataset({"v": {"action": "keep"}})
    policy = DatasetPolicy.model_construct(columns={"t": Keep(action="keep"), "v": rule})
    ds = Dataset.model_construct(**{**dict(ds), "policy": policy})
    desensitizer = Desensitizer(ds, task_key=TASK_KEY, task_id=TASK_ID, noise_seed=SEED)
    batch = pa.record_batch({"t": _days(len(values)), "v": pa.array(values, type=pa.float64())})
    out = desensitizer.process(batch)
    assert out is not None
    return out


def test_a_rounding_that_does_nothing_is_refused_per_batch() -> None:
    with pytest.raises(DataError) as info:
        _release(Round.model_construct(action="round", digits=-400), [123456.789, 5.5])
    assert info.value.id == "data.policy.not_rounded"
    assert info.value.context == {"column": "v", "count": 2}
    assert "123456" not in str(info.value)


def test_noise_that_would_turn_values_into_nan_is_refused_per_batch() -> None:
    rule = Laplace.model_construct(action="laplace", sensitivity=1.0, epsilon=1e-300)
    with pytest.raises(DataError) as info:
        _release(rule, [1.0, 2.0, 3.0])
    assert info.value.id == "data.noise.out_of_range"


def test_rounding_overflow_is_a_data_error_not_a_traceback() -> None:
    with pytest.raises(DataError) as info:
        _release(Round(action="round", digits=15), [1e300])
    assert info.value.id == "data.policy.overflow"


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "round", "digits": 2},
        {"action": "round", "digits": -3},
        {"action": "round", "multiple": 0.25},
        {"action": "laplace", "sensitivity": 1.0, "epsilon": 1.0},
        {"action": "gaussian", "sensitivity": 2.0, "epsilon": 0.5, "delta": 1e-6},
        {"action": "clip", "min": 0.0, "max": 10.0},
    ],
)
def test_valid_rules_release_finite_values(rule: dict[str, Any]) -> None:
    ds = _dataset({"v": rule})
    desensitizer = Desensitizer(ds, task_key=TASK_KEY, task_id=TASK_ID, noise_seed=SEED)
    values = np.linspace(-1000.0, 1000.0, 257)
    out = desensitizer.process(pa.record_batch({"t": _days(257), "v": pa.array(values)}))
    assert out is not None
    released = np.asarray(out.column("v"), dtype=np.float64)
    assert np.isfinite(released).all()
    if rule["action"] == "round":
        step = rule.get("multiple") or 10.0 ** -rule["digits"]
        assert np.allclose(released / step, np.rint(released / step))
        assert not np.array_equal(released, values)
