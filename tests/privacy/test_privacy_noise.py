"""Noise is calibrated to the policy: its empirical scale matches sensitivity and epsilon."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from chronoseal.errors import DataError
from chronoseal.privacy import Desensitizer, gaussian_sigma, laplace_scale
from chronoseal.privacy._noise import grid
from chronoseal.spec import Gaussian, Laplace

if TYPE_CHECKING:
    from conftest import Days, MakeDataset, Release

SAMPLES = 200_000
KEY = bytes(32)


def _noise(release: Release, rule: dict[str, Any], base: float = 0.0) -> np.ndarray:
    out = release(rule, pa.array(np.full(SAMPLES, base)))
    return np.asarray(out, dtype=np.float64) - base


@pytest.mark.parametrize(("sensitivity", "epsilon"), [(1.0, 1.0), (5.0, 0.5), (0.3, 2.0)])
def test_laplace_mean_absolute_deviation_is_sensitivity_over_epsilon(
    release: Release, sensitivity: float, epsilon: float
) -> None:
    rule = {"action": "laplace", "sensitivity": sensitivity, "epsilon": epsilon}
    noise = _noise(release, rule, base=1234.5)
    b = sensitivity / epsilon
    assert np.mean(np.abs(noise)) == pytest.approx(b, rel=0.02)
    assert abs(np.mean(noise)) < 0.02 * b
    # The Laplace tail: P(|X| > b ln 10) = 0.1.
    assert np.mean(np.abs(noise) > b * math.log(10)) == pytest.approx(0.1, abs=0.005)
    actual = laplace_scale(Laplace(action="laplace", sensitivity=sensitivity, epsilon=epsilon))
    assert b < actual <= b * (1 + 2 / 1024)
    assert np.mean(np.abs(noise)) == pytest.approx(actual, rel=0.015)


@pytest.mark.parametrize(
    ("sensitivity", "epsilon", "delta"), [(1.0, 1.0, 1e-5), (2.0, 0.25, 1e-6), (10.0, 0.9, 0.01)]
)
def test_gaussian_standard_deviation_is_the_classic_sigma(
    release: Release, sensitivity: float, epsilon: float, delta: float
) -> None:
    rule = {"action": "gaussian", "sensitivity": sensitivity, "epsilon": epsilon, "delta": delta}
    noise = _noise(release, rule)
    sigma = sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    assert np.std(noise) == pytest.approx(sigma, rel=0.02)
    assert abs(np.mean(noise)) < 0.02 * sigma
    assert np.mean(np.abs(noise) > 1.96 * sigma) == pytest.approx(0.05, abs=0.004)
    typed = Gaussian(action="gaussian", sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    assert sigma < gaussian_sigma(typed) <= sigma * (1 + 2 / 1024)


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "laplace", "sensitivity": 3.0, "epsilon": 1.0},
        {"action": "gaussian", "sensitivity": 0.7, "epsilon": 0.5, "delta": 1e-6},
    ],
)
def test_released_values_lie_on_the_power_of_two_grid(
    release: Release, rule: dict[str, Any]
) -> None:
    raw = np.linspace(-50, 50, 1001) + 1 / 3
    out = np.asarray(release(rule, pa.array(raw)), dtype=np.float64)
    gamma = grid(float(rule["sensitivity"]))
    assert gamma <= float(rule["sensitivity"]) / 1024
    steps = out / gamma
    assert np.array_equal(steps, np.round(steps))
    assert np.mean(out != np.round(raw / gamma) * gamma) > 0.99


def test_nulls_stay_null_and_integers_become_floats(release: Release) -> None:
    out = release({"action": "laplace", "sensitivity": 1, "epsilon": 1}, pa.array([1, None, 3]))
    assert out.type == pa.float64()
    assert out.null_count == 1 and out[1].as_py() is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e300])
def test_values_off_the_grid_are_refused(release: Release, bad: float) -> None:
    with pytest.raises(DataError) as info:
        release({"action": "laplace", "sensitivity": 1, "epsilon": 1}, pa.array([0.0, bad]))
    assert info.value.id == "data.noise.out_of_range"
    assert info.value.context["count"] == 1


def test_gaussian_with_epsilon_above_one_is_refused(dataset: MakeDataset) -> None:
    rule = {"action": "gaussian", "sensitivity": 1.0, "epsilon": 1.5, "delta": 1e-5}
    with pytest.raises(ValidationError):  # the spec schema refuses it before anything runs
        dataset({"v": rule})
    with pytest.raises(DataError) as info:  # and the mechanism again, for unvalidated rules
        gaussian_sigma(Gaussian.model_construct(**rule))
    assert info.value.id == "data.policy.gaussian_epsilon"


def test_noise_is_fresh_unless_a_seed_is_given(dataset: MakeDataset, day_column: Days) -> None:
    ds = dataset({"v": {"action": "laplace", "sensitivity": 1.0, "epsilon": 1.0}})
    batch = pa.record_batch({"t": day_column(64), "v": pa.array(np.zeros(64))})

    def draw(seed: bytes | None) -> list[float]:
        out = Desensitizer(ds, task_key=KEY, task_id=b"t", noise_seed=seed).process(batch)
        assert out is not None
        return list(out.column("v").to_pylist())

    assert draw(b"s" * 32) == draw(b"s" * 32)
    assert draw(b"s" * 32) != draw(b"r" * 32)
    assert draw(None) != draw(None)
    with pytest.raises(DataError) as info:
        draw(b"short")
    assert info.value.id == "data.noise.bad_seed"
