"""What each model sees, derived from the spec and nothing else: lags, calendar, covariates.

The recipe is plain data (it goes into the model bundle as JSON), so the prediction runtime
rebuilds exactly the features the model was trained on. Leakage is ruled out here, by
construction: a ``past_only`` covariate enters only as lags of at least the horizon, so its
value at a forecast time is never an input (and at prediction time every such lag is
already observed); ``future_known`` covariates enter at their own time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import holidays as holiday_data
import numpy as np
import pandas as pd

from ._grid import Grid

ID, DS, Y = "unique_id", "ds", "y"
_SEP = "|"
HOLIDAY = "holiday"
HOLIDAY_NEAR = "holiday_near"


def past_only_lags(horizon: int, season_length: int) -> list[int]:
    """The lags a past-only covariate enters with: the horizon, and the first full season
    after it, so every lag is observed at the forecast origin."""
    first_season = math.ceil(horizon / season_length) * season_length
    return sorted({horizon, max(first_season, horizon) + season_length})


@dataclass(frozen=True)
class Recipe:
    """Every choice behind a model's features; JSON in the bundle, rebuilt at prediction."""

    family: str
    freq: str
    horizon: int
    season_length: int
    seasonalities: list[int]
    level: int
    lags: list[int]
    rolling: list[tuple[int, int]]
    expanding: bool
    calendar: list[str]
    holidays: str | None
    future_known: list[str]
    past_only: dict[str, list[int]]
    differences: list[int] = field(default_factory=list)
    local_input_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["rolling"] = [list(r) for r in self.rolling]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Recipe:
        doc = dict(doc)
        doc["rolling"] = [tuple(r) for r in doc["rolling"]]
        return cls(**doc)

    @property
    def max_lookback(self) -> int:
        """Periods of target history the target features need, at most."""
        back = max(self.lags, default=0)
        for lag, window in self.rolling:
            back = max(back, lag + window - 1)
        return back

    def exogenous(self) -> list[str]:
        """The model's covariate inputs (past-only ones as their lag columns)."""
        lagged = [f"{c}_lag{k}" for c, ks in self.past_only.items() for k in ks]
        return [*self.future_known, *lagged]

    def with_covariates(self, future_known: list[str], past_only: list[str]) -> Recipe:
        lags = past_only_lags(self.horizon, self.season_length)
        return Recipe(
            **{
                **asdict(self),
                "rolling": list(self.rolling),
                "future_known": list(future_known),
                "past_only": {c: lags for c in past_only},
            }
        )


def model_frame(frame: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """``unique_id``, ``ds``, ``y`` and the recipe's covariate inputs; past-only covariates
    replaced by their lags (the same-time value is dropped before any model sees it)."""
    out = frame[[ID, DS, "y", *recipe.future_known]].copy()
    if recipe.past_only:
        by_series = frame.groupby(ID, sort=False)
        for column, ks in recipe.past_only.items():
            for k in ks:
                out[f"{column}_lag{k}"] = by_series[column].shift(k).to_numpy()
    return out


def series_ids(frame: pd.DataFrame, keys: list[str], fallback: str) -> pd.Series:
    """The series id: the entity values joined by ``|``; with several entity columns, ``\\``
    and ``|`` inside a value are escaped so that no two entities share an id."""
    if not keys:
        return pd.Series(fallback, index=frame.index, dtype="object")
    if len(keys) == 1:
        return frame[keys[0]].astype("object")
    parts = [
        frame[k]
        .astype("string")
        .str.replace("\\", "\\\\", regex=False)
        .str.replace(_SEP, "\\" + _SEP, regex=False)
        .astype("object")
        for k in keys
    ]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + _SEP + part
    return joined


def combine_repeated(frame: pd.DataFrame, keys: list[str], rule: str) -> pd.DataFrame:
    """One row per ``keys``, repeated rows combined by ``rule`` (``join.duplicates`` other
    than ``refuse``): the join and the prediction runtime's feeds combine alike. A sum of
    nothing but nulls is a gap, never a zero."""
    grouped = frame.groupby(keys, sort=True, dropna=False)
    if rule == "last":
        combined = grouped.last()
    elif rule == "sum":
        combined = grouped.sum(min_count=1)
    else:
        combined = grouped.agg(rule)
    return combined.reset_index()


class HolidayFeature:
    """A calendar feature from a public holiday calendar (the ``holidays`` package).

    For daily or finer grids: 1 on a holiday (``holiday``) or the day before or after one
    (``holiday_near``); for coarser grids: the number of holidays in the period.
    """

    def __init__(self, code: str, grid: Grid, near: bool = False) -> None:
        country, _, subdiv = code.partition("-")
        self._country = country
        self._subdiv = subdiv or None
        self._grid = grid
        self._near = near
        self.__name__ = HOLIDAY_NEAR if near else HOLIDAY

    def _days(self, lo: int, hi: int) -> set[np.datetime64]:
        cal = holiday_data.country_holidays(
            self._country, subdiv=self._subdiv, years=range(lo, hi + 1)
        )
        return {np.datetime64(d, "D") for d in cal}

    def __call__(self, dates: pd.DatetimeIndex) -> np.ndarray:
        dates = pd.DatetimeIndex(dates)
        if len(dates) == 0:
            return np.zeros(0, dtype="float64")
        days = dates.values.astype("datetime64[D]")
        found = self._days(int(dates.year.min()) - 1, int(dates.year.max()) + 1)
        table = np.array(sorted(found), dtype="datetime64[D]")
        if self._grid.unit in {"s", "min", "h", "D"}:
            hit = np.isin(days, table)
            if self._near:
                one = np.timedelta64(1, "D")
                hit = (np.isin(days - one, table) | np.isin(days + one, table)) & ~hit
            return hit.astype("float64")
        starts, ends = self._grid.period_days(dates)
        lo = np.searchsorted(table, starts, side="left")
        hi = np.searchsorted(table, ends, side="left")
        return (hi - lo).astype("float64")


def holiday_features(recipe: Recipe, grid: Grid) -> list[HolidayFeature]:
    if recipe.holidays is None:
        return []
    feats = [HolidayFeature(recipe.holidays, grid)]
    if grid.unit in {"s", "min", "h", "D"}:
        feats.append(HolidayFeature(recipe.holidays, grid, near=True))
    return feats


def with_holidays(frame: pd.DataFrame, recipe: Recipe, grid: Grid) -> pd.DataFrame:
    """Holiday columns as future-known inputs, for models that take covariates as columns."""
    out = frame.copy()
    for feat in holiday_features(recipe, grid):
        out[feat.__name__] = feat(pd.DatetimeIndex(out[DS]))
    return out
