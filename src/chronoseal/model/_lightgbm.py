"""``mlforecast-lightgbm``: one global LightGBM model over every series (mlforecast), with
conformal prediction intervals; sealed as LightGBM's text model (not code)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import ExpandingMean, RollingMean
from mlforecast.target_transforms import Differences
from mlforecast.utils import PredictionIntervals

from ._common import (
    ARROW,
    Candidate,
    Fitted,
    Part,
    arrow_bytes,
    from_arrow,
    quiet_libraries,
    recent_past,
)
from ._cores import available_cores
from ._features import Recipe, holiday_features, model_frame
from ._grid import Grid

log = logging.getLogger("chronoseal.model")

NAME = "mlforecast-lightgbm"
LGBM_TEXT = "application/vnd.lightgbm.model+text"
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


class _Booster:
    """A LightGBM text model behind the ``predict`` mlforecast calls."""

    def __init__(self, text: str) -> None:
        self._booster = lgb.Booster(model_str=text)

    def predict(self, x: Any) -> np.ndarray:
        if len(x) < SMALL_BATCH:
            return np.asarray(self._booster.predict(x, num_threads=1))
        return np.asarray(self._booster.predict(x))


def conformal_windows(level: int) -> int:
    """Calibration windows for conformal intervals: the fewest whose scores can reach the
    level (n / (n + 1) >= level), so a 90 % interval is not a 67 % one in disguise."""
    return max(2, math.ceil(level / (100 - level)))


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


class LightGBM:
    name = NAME
    uses_covariates = True
    is_global = True

    def min_train(self, recipe: Recipe, intervals: bool) -> int:
        lookback = max([recipe.max_lookback, *(k for ks in recipe.past_only.values() for k in ks)])
        need = lookback + max(2 * recipe.horizon, 2 * recipe.season_length, 10)
        if intervals:
            need += conformal_windows(recipe.level) * recipe.horizon
        return need

    def trials(self, recipe: Recipe) -> list[Recipe]:
        """Differencing the target (none, lag 1, lag ``s``), judged on the horizon *before*
        the first back-test window, so the choice never sees a scored period."""
        s = recipe.season_length
        options: list[list[int]] = [[], [1]] + ([[s]] if s > 1 else [])
        return [Recipe.from_json({**recipe.to_json(), "differences": d}) for d in options]

    def choose(self, recipe: Recipe, trials: list[Recipe], errors: list[float]) -> Recipe:
        for trial, mae in zip(trials, errors, strict=True):
            log.info("differences %s: holdout MAE %.6g", trial.differences or "none", mae)
        # the first of equal errors: the simplest option, as the trials are ordered
        best = min(range(len(trials)), key=lambda i: (errors[i], i))
        return trials[best]

    def cross_validate(
        self,
        data: pd.DataFrame,
        candidate: Candidate,
        grid: Grid,
        *,
        windows: int,
        step: int,
        threads: int | None,
    ) -> pd.DataFrame:
        recipe = candidate.recipe
        h = recipe.horizon
        mlf = mlforecast_for(recipe, grid, candidate.name, threads)
        return mlf.cross_validation(
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
            level=[recipe.level] if candidate.intervals else None,
        )

    def fit(
        self, frame: pd.DataFrame, recipe: Recipe, grid: Grid, name: str, threads: int | None
    ) -> Fitted:
        train = model_frame(frame, recipe)
        mlf = mlforecast_for(recipe, grid, name, threads)
        mlf.fit(
            train,
            static_features=[],
            prediction_intervals=PredictionIntervals(
                n_windows=conformal_windows(recipe.level), h=recipe.horizon
            ),
        )
        return Fitted(recipe, mlf, train, recent_past(frame, recipe))

    def seal(self, fitted: Fitted, name: str) -> tuple[list[Part], dict[str, Any] | None]:
        mlf = fitted.model
        booster = mlf.models_[name].booster_
        parts = [
            Part("model", LGBM_TEXT, booster.model_to_string().encode()),
            Part("history", ARROW, arrow_bytes(fitted.train)),
        ]
        intervals: dict[str, Any] | None = None
        if mlf._cs_df is not None:
            parts.append(Part("conformity", ARROW, arrow_bytes(mlf._cs_df)))
            pi = mlf.prediction_intervals
            intervals = {"n_windows": pi.n_windows, "h": pi.h, "method": pi.method}
        return parts, intervals

    def load(
        self,
        manifest: Mapping[str, Any],
        parts: Mapping[str, bytes],
        history: pd.DataFrame,
        recipe: Recipe,
        grid: Grid,
    ) -> Any:
        name = str(manifest["model_name"])
        with quiet_libraries():
            mlf = mlforecast_for(recipe, grid, name)
            mlf.preprocess(history, static_features=[])
            mlf.models_ = {name: _Booster(parts["model"].decode())}
            intervals = manifest.get("intervals")
            if intervals is not None and "conformity" in parts:
                mlf._cs_df = from_arrow(parts["conformity"])
                mlf.prediction_intervals = PredictionIntervals(**intervals)
            else:
                mlf._cs_df = None
        return mlf

    def predict(
        self,
        model: Any,
        history: pd.DataFrame,
        name: str,
        h: int,
        x_df: pd.DataFrame | None,
        level: int | None,
        grid: Grid,
        forward: bool,
    ) -> pd.DataFrame:
        return model.predict(h, X_df=x_df, level=[level] if level is not None else None)

    def extend(
        self, model: Any, history: pd.DataFrame, recipe: Recipe, grid: Grid, name: str
    ) -> tuple[Any, bool]:
        """The same booster and conformity scores, their state rebuilt over the history as
        :meth:`load` builds it."""
        with quiet_libraries():
            mlf = mlforecast_for(recipe, grid, name)
            mlf.preprocess(history, static_features=[])
        mlf.models_ = model.models_
        mlf._cs_df = model._cs_df
        if model._cs_df is not None:
            mlf.prediction_intervals = model.prediction_intervals
        return mlf, False

    def model_inputs(self, frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
        """Calendar and holidays are mlforecast's own date features, not columns."""
        return frame

    def future_inputs_needed(self, recipe: Recipe) -> bool:
        return bool(recipe.exogenous())


#: Registered by :mod:`._registry` when a family is first asked for.
FAMILY = LightGBM()
