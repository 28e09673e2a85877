"""statsforecast's local models: one model per series, fitted on a window of its history
(:attr:`Recipe.local_input_size`); sealed as statsforecast's pickle, produced and consumed
only inside attested runtimes after the bundle hashed to its on-chain commitment."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

from ._common import ARROW, Candidate, Fitted, Part, arrow_bytes, recent_past
from ._features import DS, ID, Recipe, model_frame, with_holidays
from ._grid import Grid

PICKLE = "application/python-pickle"

Factory = Callable[[Recipe, str], Any]


def _autoarima(recipe: Recipe, alias: str) -> Any:
    # A bounded search: a reviewer can tell how long the fit may take.
    return AutoARIMA(
        season_length=recipe.season_length,
        max_p=3,
        max_q=3,
        max_P=1,
        max_Q=1,
        max_order=6,
        nmodels=30,
        stepwise=True,
        alias=alias,
    )


def _mstl(recipe: Recipe, alias: str) -> Any:
    return MSTL(
        season_length=[recipe.season_length, *recipe.seasonalities],
        trend_forecaster=AutoETS(model="ZZN"),
        alias=alias,
    )


class StatsFamily:
    """A statsforecast model: ``factory`` builds it from the recipe."""

    is_global = False

    def __init__(
        self,
        name: str,
        factory: Factory,
        *,
        uses_covariates: bool = False,
        min_train: Callable[[Recipe], int] = lambda r: 2 * r.season_length + 10,
    ) -> None:
        self.name = name
        self.factory = factory
        self.uses_covariates = uses_covariates
        self._min_train = min_train

    def min_train(self, recipe: Recipe, intervals: bool) -> int:
        return self._min_train(recipe)

    def trials(self, recipe: Recipe) -> list[Recipe]:
        return []

    def choose(self, recipe: Recipe, trials: list[Recipe], errors: list[float]) -> Recipe:
        return recipe

    def model_inputs(self, frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
        """statsforecast has no calendar features: holidays enter as regressor columns."""
        return with_holidays(frame, recipe, grid) if self.uses_covariates else frame

    def future_inputs_needed(self, recipe: Recipe) -> bool:
        return self.uses_covariates

    def _frame(self, frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
        if not self.uses_covariates:
            return frame[[ID, DS, "y"]]
        out = self.model_inputs(model_frame(frame, recipe), recipe, grid)
        inputs = [c for c in out.columns if c not in (ID, DS, "y")]
        if not inputs:
            return out
        # ARIMA cannot take a missing regressor: start each series where its lags exist.
        ready = out[inputs].notna().all(axis=1).groupby(out[ID]).cummax()
        return out[ready.to_numpy()].reset_index(drop=True)

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
        sf = StatsForecast(models=[self.factory(recipe, candidate.name)], freq=grid.pandas)
        return sf.cross_validation(
            df=self._frame(data, recipe, grid),
            h=recipe.horizon,
            n_windows=windows,
            step_size=step,
            level=[recipe.level] if candidate.intervals else None,
            input_size=recipe.local_input_size,
        )

    def fit(
        self, frame: pd.DataFrame, recipe: Recipe, grid: Grid, name: str, threads: int | None
    ) -> Fitted:
        train = self._frame(frame, recipe, grid)
        if recipe.local_input_size is not None:
            train = train.groupby(ID, sort=False).tail(recipe.local_input_size)
        train = train.reset_index(drop=True)
        sf = StatsForecast(models=[self.factory(recipe, name)], freq=grid.pandas)
        sf.fit(df=train)
        return Fitted(recipe, sf, train, recent_past(frame, recipe))

    def seal(self, fitted: Fitted, name: str) -> tuple[list[Part], dict[str, Any] | None]:
        return [
            Part("model", PICKLE, pickle.dumps(fitted.model, protocol=5)),
            Part("history", ARROW, arrow_bytes(fitted.train)),
        ], None

    def load(
        self,
        manifest: Mapping[str, Any],
        parts: Mapping[str, bytes],
        history: pd.DataFrame,
        recipe: Recipe,
        grid: Grid,
    ) -> Any:
        # Only pickle exists for statsforecast models; the bundle hashed to the chain first.
        return pickle.loads(parts["model"])

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
        if not forward:
            return model.predict(h=h, X_df=x_df, level=[level] if level is not None else None)
        return _forward(model, history, name, h, x_df, level, grid)

    def extend(
        self, model: Any, history: pd.DataFrame, recipe: Recipe, grid: Grid, name: str
    ) -> tuple[Any, bool]:
        return model, True


def _forward(
    sf: Any,
    history: pd.DataFrame,
    name: str,
    h: int,
    x_df: pd.DataFrame | None,
    level: int | None,
    grid: Grid,
) -> pd.DataFrame:
    """statsforecast's fitted models applied to a longer history, series by series (the
    library's own ``forward``: parameters as fitted, states run over the new values), in
    the long format its ``predict`` returns."""
    exog = [c for c in history.columns if c not in (ID, DS, "y")]
    index = {str(u): i for i, u in enumerate(sf.uids)}
    parts = []
    for uid, series in history.groupby(ID, sort=True):
        fitted = sf.fitted_[index[str(uid)], 0]
        future = None
        if exog and x_df is not None:
            future = x_df[x_df[ID] == uid].sort_values(DS)[exog].to_numpy(dtype="float64")
        ds = pd.date_range(series[DS].iloc[-1], periods=h + 1, freq=grid.pandas)[1:]
        out = fitted.forward(
            y=series["y"].to_numpy(dtype="float64"),
            h=h,
            X=series[exog].to_numpy(dtype="float64") if exog else None,
            X_future=future,
            level=[level] if level is not None else None,
        )
        part = pd.DataFrame({ID: uid, DS: ds, name: out["mean"]})
        if level is not None:
            part[f"{name}-lo-{level}"] = out[f"lo-{level}"]
            part[f"{name}-hi-{level}"] = out[f"hi-{level}"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


#: Registered by :mod:`._registry` when a family is first asked for.
FAMILIES = (
    StatsFamily(
        "seasonal-naive",
        lambda r, alias: SeasonalNaive(season_length=r.season_length, alias=alias),
        min_train=lambda r: r.season_length + 1,
    ),
    StatsFamily(
        "statsforecast-autoets",
        lambda r, alias: AutoETS(season_length=r.season_length, alias=alias),
    ),
    StatsFamily(
        "statsforecast-autotheta",
        lambda r, alias: AutoTheta(season_length=r.season_length, alias=alias),
    ),
    StatsFamily("statsforecast-autoarima", _autoarima, uses_covariates=True),
    StatsFamily(
        "statsforecast-mstl",
        _mstl,
        min_train=lambda r: 2 * max([r.season_length, *r.seasonalities]) + 1,
    ),
)
