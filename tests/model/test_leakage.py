"""No covariate reaches the model before it could exist: a past-only covariate enters only as
lags of at least the horizon, so changing its values inside a forecast window never changes
that window's forecast; a future-known one enters at its own time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chronoseal.model import Candidate, Grid, Recipe, cross_validate, model_frame, past_only_lags


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2020-01-01", periods=n, freq="D")
    driver = rng.normal(size=n).cumsum()
    y = 50 + 5 * np.sin(np.arange(n) * 2 * np.pi / 7) + driver + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"unique_id": "s1", "ds": ds, "y": y, "measured": driver})


def _recipe(family: str, **covariates: list[str]) -> Recipe:
    base = Recipe(
        family=family,
        freq="D",
        horizon=14,
        season_length=7,
        seasonalities=[],
        level=80,
        lags=[1, 2, 7, 14],
        rolling=[(1, 7), (7, 7)],
        expanding=True,
        calendar=["dayofweek"],
        holidays=None,
        future_known=[],
        past_only={},
    )
    return base.with_covariates(covariates.get("future", []), covariates.get("past", []))


def test_past_only_lags_are_never_shorter_than_the_horizon() -> None:
    for horizon in (1, 6, 7, 14, 30, 48):
        for season in (1, 4, 7, 12, 48):
            lags = past_only_lags(horizon, season)
            assert min(lags) >= horizon


def test_the_same_time_value_of_a_past_only_covariate_is_not_an_input() -> None:
    frame = _frame()
    recipe = _recipe("mlforecast-lightgbm", past=["measured"])
    inputs = model_frame(frame, recipe)
    assert "measured" not in inputs.columns
    assert {"measured_lag14", "measured_lag21"} <= set(inputs.columns)
    row = inputs.iloc[100]
    assert row["measured_lag14"] == frame["measured"].iloc[86]


@pytest.mark.parametrize("family", ["mlforecast-lightgbm", "statsforecast-autoarima"])
def test_changing_a_past_only_covariate_inside_the_window_changes_no_forecast(
    family: str,
) -> None:
    frame = _frame(n=250)
    recipe = _recipe(family, past=["measured"])
    grid = Grid.parse("D")
    honest = cross_validate(
        frame, Candidate("m", recipe, intervals=False), grid, windows=1, step=14
    )
    cutoff = honest["cutoff"].iloc[0]
    poisoned = frame.copy()
    inside = poisoned["ds"] > cutoff
    poisoned.loc[inside, "measured"] = 1e6  # what happens during the window
    again = cross_validate(
        poisoned, Candidate("m", recipe, intervals=False), grid, windows=1, step=14
    )
    pd.testing.assert_series_equal(honest["m"], again["m"])


def test_a_future_known_covariate_does_enter_at_its_own_time() -> None:
    frame = _frame(n=250)
    recipe = _recipe("mlforecast-lightgbm", future=["measured"])
    grid = Grid.parse("D")
    honest = cross_validate(
        frame, Candidate("m", recipe, intervals=False), grid, windows=1, step=14
    )
    cutoff = honest["cutoff"].iloc[0]
    changed = frame.copy()
    changed.loc[changed["ds"] > cutoff, "measured"] += 100.0
    again = cross_validate(
        changed, Candidate("m", recipe, intervals=False), grid, windows=1, step=14
    )
    assert not np.allclose(honest["m"].to_numpy(), again["m"].to_numpy())
