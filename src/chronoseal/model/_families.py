"""The task's model families, from the libraries made for the field (Nixtla's statsforecast and
mlforecast with LightGBM): configured from a :class:`Recipe`, back-tested and fitted.

Every family returns statsforecast's cross-validation frame (``unique_id``, ``ds``,
``cutoff``, ``y``, one column per model, ``-lo-``/``-hi-`` interval columns), so every
model is scored on the same folds by the same code.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import ExpandingMean, RollingMean
from mlforecast.target_transforms import Differences
from mlforecast.utils import PredictionIntervals
from statsforecast import StatsForecast
from statsforecast.models import (
    MSTL,
    AutoARIMA,
    AutoETS,
    AutoTheta,
    SeasonalNaive,
)

from chronoseal.spec import EXOGENOUS_FAMILIES

from ._cores import available_cores
from ._features import DS, ID, Recipe, holiday_features, model_frame, with_holidays
from ._grid import Grid

log = logging.getLogger("chronoseal.model")

LIGHTGBM = "mlforecast-lightgbm"
#: Fixed, deterministic LightGBM settings: a reviewer approves a family, not a tuning run.
#: No row or column subsampling, so a result never depends on a random draw.
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
#: Below this many rows a prediction runs on one thread, through the booster directly:
#: mlforecast predicts one horizon step of every series per call, and for a few rows an
#: OpenMP team and the scikit-learn wrapper's checks cost far more than the trees.
SMALL_BATCH = 4096


class _Regressor(lgb.LGBMRegressor):
    """LightGBM's regressor, with small batches predicted on one thread."""

    def predict(self, X: Any, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and len(X) < SMALL_BATCH:
            return self.booster_.predict(X, num_threads=1)
        return super().predict(X, *args, **kwargs)


def conformal_windows(level: int) -> int:
    """Calibration windows for conformal intervals: the fewest whose scores can reach the
    level (n / (n + 1) >= level), so a 90 % interval is not a 67 % one in disguise."""
    return max(2, math.ceil(level / (100 - level)))


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library advisories (convergence notes, deprecations) go to the log, not to stderr:
    inside a TEE nobody reads stderr, and none of them changes a result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("library warning: %s: %s", w.category.__name__, w.message)


def uses_covariates(family: str) -> bool:
    return family in EXOGENOUS_FAMILIES


def is_global(family: str) -> bool:
    """One model across all series (others' series can help), as opposed to one per series."""
    return family == LIGHTGBM


def min_train(recipe: Recipe, intervals: bool) -> int:
    """Periods of history a family needs before its first forecast origin."""
    s = recipe.season_length
    if recipe.family == "seasonal-naive":
        need = s + 1
    elif recipe.family == "statsforecast-mstl":
        need = 2 * max([s, *recipe.seasonalities]) + 1
    elif recipe.family == LIGHTGBM:
        lookback = max([recipe.max_lookback, *(k for ks in recipe.past_only.values() for k in ks)])
        need = lookback + max(2 * recipe.horizon, 2 * s, 10)
        if intervals:
            need += conformal_windows(recipe.level) * recipe.horizon
    else:
        need = 2 * s + 10
    return need


def _stats_model(recipe: Recipe, alias: str) -> Any:
    s = recipe.season_length
    family = recipe.family
    if family == "seasonal-naive":
        return SeasonalNaive(season_length=s, alias=alias)
    if family == "statsforecast-autoets":
        return AutoETS(season_length=s, alias=alias)
    if family == "statsforecast-autotheta":
        return AutoTheta(season_length=s, alias=alias)
    if family == "statsforecast-autoarima":
        # A bounded search: a reviewer can tell how long the fit may take.
        return AutoARIMA(
            season_length=s,
            max_p=3,
            max_q=3,
            max_P=1,
            max_Q=1,
            max_order=6,
            nmodels=30,
            stepwise=True,
            alias=alias,
        )
    if family == "statsforecast-mstl":
        return MSTL(
            season_length=[s, *recipe.seasonalities],
            trend_forecaster=AutoETS(model="ZZN"),
            alias=alias,
        )
    raise ValueError(f"not a statsforecast family: {family}")


def mlforecast_for(recipe: Recipe, grid: Grid, name: str, threads: int | None = None) -> MLForecast:
    """The recipe's mlforecast pipeline; LightGBM trains on ``threads`` threads (the cores
    this process may use, when None)."""
    transforms: dict[int, list[Any]] = {}
    for lag, window in recipe.rolling:
        transforms.setdefault(lag, []).append(RollingMean(window_size=window))
    if recipe.expanding:
        transforms.setdefault(1, []).insert(0, ExpandingMean())
    return MLForecast(
        models={name: _Regressor(**LGBM_PARAMS, n_jobs=threads or available_cores())},
        freq=grid.pandas,
        lags=list(recipe.lags),
        lag_transforms=transforms,
        date_features=[*recipe.calendar, *holiday_features(recipe, grid)],
        target_transforms=[Differences(list(recipe.differences))] if recipe.differences else None,
    )


def _levels(recipe: Recipe) -> list[int | float]:
    return [recipe.level]


@dataclass(frozen=True)
class Candidate:
    """One model to back-test: a family's recipe and the series it may learn from."""

    name: str
    recipe: Recipe
    series: tuple[str, ...] | None = None
    intervals: bool = True


def _stats_frame(frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
    if not uses_covariates(recipe.family):
        return frame[[ID, DS, "y"]]
    out = with_holidays(model_frame(frame, recipe), recipe, grid)
    inputs = [c for c in out.columns if c not in (ID, DS, "y")]
    if not inputs:
        return out
    # ARIMA cannot take a missing regressor: start each series where its lags exist.
    ready = out[inputs].notna().all(axis=1).groupby(out[ID]).cummax()
    return out[ready.to_numpy()].reset_index(drop=True)


def cross_validate(
    frame: pd.DataFrame,
    candidate: Candidate,
    grid: Grid,
    *,
    windows: int,
    step: int,
    threads: int | None = None,
) -> pd.DataFrame:
    """Rolling-origin back-test of one candidate; statsforecast's long format."""
    recipe = candidate.recipe
    data = frame if candidate.series is None else frame[frame[ID].isin(candidate.series)]
    h = recipe.horizon
    with quiet_libraries():
        if recipe.family == LIGHTGBM:
            mlf = mlforecast_for(recipe, grid, candidate.name, threads)
            cv = mlf.cross_validation(
                model_frame(data, recipe),
                n_windows=windows,
                h=h,
                step_size=step,
                static_features=[],
                prediction_intervals=(
                    PredictionIntervals(n_windows=conformal_windows(recipe.level), h=h)
                    if candidate.intervals
                    else None
                ),
                level=_levels(recipe) if candidate.intervals else None,
            )
        else:
            sf = StatsForecast(models=[_stats_model(recipe, candidate.name)], freq=grid.pandas)
            cv = sf.cross_validation(
                df=_stats_frame(data, recipe, grid),
                h=h,
                n_windows=windows,
                step_size=step,
                level=[recipe.level] if candidate.intervals else None,
                input_size=recipe.local_input_size,
            )
    return pd.DataFrame(cv).reset_index(drop=True)


@dataclass
class Fitted:
    """A family fitted on the whole panel: the library object, the frame it saw, and the
    recent raw values of past-only covariates (their future lags come from these)."""

    recipe: Recipe
    model: Any
    train: pd.DataFrame
    past: pd.DataFrame | None = None


def _recent_past(frame: pd.DataFrame, recipe: Recipe) -> pd.DataFrame | None:
    if not recipe.past_only:
        return None
    keep = max(k for ks in recipe.past_only.values() for k in ks)
    cols = [ID, DS, *recipe.past_only]
    return frame[cols].groupby(ID, sort=False).tail(keep).reset_index(drop=True)


def fit(
    frame: pd.DataFrame, recipe: Recipe, grid: Grid, name: str, threads: int | None = None
) -> Fitted:
    """The released model: the family fitted on all of the joined history."""
    with quiet_libraries():
        if recipe.family == LIGHTGBM:
            train = model_frame(frame, recipe)
            mlf = mlforecast_for(recipe, grid, name, threads)
            mlf.fit(
                train,
                static_features=[],
                prediction_intervals=PredictionIntervals(
                    n_windows=conformal_windows(recipe.level), h=recipe.horizon
                ),
            )
            return Fitted(recipe, mlf, train, _recent_past(frame, recipe))
        train = _stats_frame(frame, recipe, grid)
        if recipe.local_input_size is not None:
            train = train.groupby(ID, sort=False).tail(recipe.local_input_size)
        sf = StatsForecast(models=[_stats_model(recipe, name)], freq=grid.pandas)
        sf.fit(df=train.reset_index(drop=True))
        return Fitted(recipe, sf, train.reset_index(drop=True), _recent_past(frame, recipe))


def choose_differences(
    frame: pd.DataFrame,
    recipe: Recipe,
    grid: Grid,
    first_cutoffs: pd.Series,
    threads: int | None = None,
) -> Recipe:
    """LightGBM only: difference the target where it helps, judged on the horizon *before*
    the first back-test window, so the choice never sees a scored period."""
    if recipe.family != LIGHTGBM:
        return recipe
    cut = frame[ID].map(first_cutoffs)
    early = frame[frame[DS] <= cut].reset_index(drop=True)
    s = recipe.season_length
    options: list[list[int]] = [[], [1]] + ([[s]] if s > 1 else [])
    best: tuple[float, list[int]] | None = None
    for diffs in options:
        trial = Recipe.from_json({**recipe.to_json(), "differences": diffs})
        cv = cross_validate(
            early,
            Candidate("trial", trial, intervals=False),
            grid,
            windows=1,
            step=1,
            threads=threads,
        )
        mae = float((cv["trial"] - cv["y"]).abs().mean())
        log.info("differences %s: holdout MAE %.6g", diffs or "none", mae)
        if best is None or mae < best[0]:
            best = (mae, diffs)
    assert best is not None
    return Recipe.from_json({**recipe.to_json(), "differences": best[1]})
