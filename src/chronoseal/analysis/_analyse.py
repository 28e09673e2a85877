"""Inside the runtime: back-test the task's model, its single-party baselines and every
coalition of data providers on the same folds, and fit the model to release.

What a party learns from a task is what its data was worth. So besides the joint model,
the same folds score (a) the best model that uses only the target party's own data (the
same family without the others' covariates, statsforecast's AutoETS and SeasonalNaive) and
(b) every coalition of the other providers, from which each provider's exact Shapley value
of the MASE improvement follows (leave-one-out beyond :data:`SHAPLEY_MAX_PLAYERS`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from utilsforecast import losses

from chronoseal.errors import AnalysisError
from chronoseal.model import (
    DS,
    ID,
    Candidate,
    Fitted,
    Recipe,
    choose_differences,
    cross_validate,
    fit,
    is_global,
    min_train,
    past_only_lags,
    uses_covariates,
)
from chronoseal.spec import TaskKind, TaskSpec

from ._join import Panel

log = logging.getLogger("chronoseal.analysis")

#: Exact Shapley over at most this many providers besides the target (2^5 = 32 coalitions).
SHAPLEY_MAX_PLAYERS = 5
JOINT, OWN, ETS, NAIVE = "joint", "own", "AutoETS", "SeasonalNaive"

Progress = Callable[[str, int, int], None]
"""(stage, done, total): ``back-test`` over the models, ``coalitions`` over the value fits."""


@dataclass(frozen=True)
class Score:
    """One model's back-test: what it is, whose data it used, and its metrics."""

    name: str
    family: str
    parties: list[str]
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class Contribution:
    """Each data provider's value: the MASE change its data brings (negative = better).

    The target party's entry is its own model's change over the seasonal-naive reference;
    every other provider's is its Shapley value over the coalitions of the other providers
    (the target always in), or its leave-one-out change beyond the exact limit. The entries
    add up to the joint model's MASE minus the reference's.
    """

    method: Literal["shapley", "leave-one-out", "not-applicable"]
    reference: str
    delta_mase: dict[str, float]
    coalitions: int
    note: str = ""


@dataclass
class AnalysisResult:
    family: str
    recipe: Recipe
    joint: Score
    baselines: list[Score]
    best_single: Score
    contribution: Contribution | None
    backtest: pd.DataFrame
    anomalies: pd.DataFrame | None
    cutoffs: list[str]
    series: int
    rows: int
    dropped_series: int
    fitted: Fitted
    fits: int = 0
    warnings: list[str] = field(default_factory=list)


def base_recipe(spec: TaskSpec, panel: Panel, family: str) -> Recipe:
    """The recipe of ``family`` for this task, with every covariate the panel holds."""
    s = spec.model.season_length
    if s > 1:
        lags = sorted({1, 2, s, 2 * s})
        rolling = sorted({(1, s), (s, s), (s, 4 * s)})
    else:
        lags = [1, 2, 3]
        rolling = [(1, 4)]
    return Recipe(
        family=family,
        freq=panel.grid.alias,
        horizon=spec.model.horizon,
        season_length=s,
        seasonalities=list(spec.model.seasonalities),
        level=spec.evaluation.level,
        lags=lags,
        rolling=rolling,
        expanding=True,
        calendar=panel.grid.calendar_features(),
        holidays=spec.model.holidays,
        future_known=[c.name for c in panel.covariates if c.availability == "future_known"],
        past_only={
            c.name: past_only_lags(spec.model.horizon, s)
            for c in panel.covariates
            if c.availability == "past_only"
        },
        local_input_size=spec.model.local_input_size,
    )


def _refuse(message: str, id: str, **context: object) -> AnalysisError:
    return AnalysisError(message, id=id, context=context)


def _check_history(spec: TaskSpec, panel: Panel, need: int) -> int:
    """Refuse (or drop, if the spec allows) series too short for the back-test."""
    h = spec.model.horizon
    step = spec.evaluation.step(h)
    windows = spec.evaluation.windows
    tested = h + step * (windows - 1)
    lengths = panel.frame.groupby(ID, sort=True).size()
    short = lengths[lengths < tested + need]
    if short.empty:
        return 0
    longest = int(lengths.max())
    if longest <= h:
        raise _refuse(
            f"the horizon ({h} periods) is not shorter than the longest series ({longest} periods)",
            "analysis.history.horizon_too_long",
            rows=longest,
        )
    if spec.evaluation.short_series == "drop" and len(short) < len(lengths):
        keep = set(panel.target_series()) - set(short.index)
        if keep:
            panel.frame = panel.frame[~panel.frame[ID].isin(short.index)].reset_index(drop=True)
            for uid in short.index:
                panel.series_party.pop(str(uid), None)
            log.info("dropped %d series too short for the back-test", len(short))
            return len(short)
    raise _refuse(
        f"{len(short)} of {len(lengths)} series are shorter than the {tested + need} periods "
        f"the back-test needs ({windows} windows of {h}, step {step}, plus {need} periods to "
        f"fit on; the shortest has {int(short.min())})",
        "analysis.history.too_short",
        rows=int(short.min()),
        series=len(short),
    )


def _first_cutoffs(spec: TaskSpec, panel: Panel) -> pd.Series:
    h = spec.model.horizon
    back = h + spec.evaluation.step(h) * (spec.evaluation.windows - 1)
    last = panel.frame.groupby(ID, sort=True)[DS].max()
    offset = to_offset(panel.grid.pandas)
    return last.map(lambda t: t - back * offset)


def score(
    cv: pd.DataFrame,
    models: list[str],
    train: pd.DataFrame,
    *,
    metrics: list[str],
    season_length: int,
    level: int,
) -> dict[str, dict[str, float | None]]:
    """Metrics per model from ``utilsforecast.losses``, per (series, window), then averaged."""
    out: dict[str, dict[str, float | None]] = {m: {} for m in models}
    for metric in metrics:
        if metric == "anomaly_rate":
            for m in models:
                lo, hi = cv[f"{m}-lo-{level}"], cv[f"{m}-hi-{level}"]
                out[m][metric] = float(((cv["y"] < lo) | (cv["y"] > hi)).mean())
            continue
        if metric == "mase":
            table = losses.mase(cv, models, seasonality=season_length, train_df=train)
        elif metric == "coverage":
            present = [m for m in models if f"{m}-lo-{level}" in cv.columns]
            table = losses.coverage(cv, present, level=level) if present else None
        else:
            table = getattr(losses, metric)(cv, models)
        for m in models:
            if table is None or m not in table.columns:
                out[m][metric] = None
                continue
            values = table[m].to_numpy(dtype="float64")
            finite = values[np.isfinite(values)]
            out[m][metric] = float(finite.mean()) if finite.size else None
    return out


def shapley(players: list[str], value: Callable[[frozenset[str]], float]) -> dict[str, float]:
    """Exact Shapley values of a cooperative game (every coalition's value is evaluated)."""
    n = len(players)
    phi = dict.fromkeys(players, 0.0)
    for i in players:
        rest = [p for p in players if p != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in combinations(rest, size):
                s = frozenset(coalition)
                phi[i] += weight * (value(s | {i}) - value(s))
    return phi


class _Runner:
    """Back-tests candidates once each (identical ones share a result) on the same folds."""

    def __init__(self, spec: TaskSpec, panel: Panel, progress: Progress | None) -> None:
        self.spec = spec
        self.panel = panel
        self.progress = progress
        self.windows = spec.evaluation.windows
        self.step = spec.evaluation.step(spec.model.horizon)
        self.target_series = panel.target_series()
        self._cache: dict[str, tuple[str, pd.DataFrame]] = {}
        self.fits = 0

    def run(self, candidate: Candidate) -> pd.DataFrame:
        key = repr((candidate.recipe.to_json(), candidate.series, candidate.intervals))
        if key not in self._cache:
            cv = cross_validate(
                self.panel.frame,
                candidate,
                self.panel.grid,
                windows=self.windows,
                step=self.step,
            )
            self.fits += self.windows
            cv = cv[cv[ID].isin(self.target_series)]
            cv = cv.sort_values([ID, "cutoff", DS], kind="stable").reset_index(drop=True)
            self._cache[key] = (candidate.name, cv)
        name, cv = self._cache[key]
        if name == candidate.name:
            return cv
        renamed = {c: candidate.name + c[len(name) :] for c in cv.columns if c == name}
        renamed.update(
            {c: candidate.name + c[len(name) :] for c in cv.columns if c.startswith(name + "-")}
        )
        return cv.rename(columns=renamed)


def _merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    keys = [ID, DS, "cutoff", "y"]
    base = frames[0]
    for other in frames[1:]:
        if len(other) != len(base) or not base[keys[:3]].equals(other[keys[:3]]):
            raise _refuse(
                "two models were not scored on the same folds",
                "analysis.backtest.fold_mismatch",
            )
        base = base.merge(other.drop(columns=["y"]), on=keys[:3], how="inner")
    return base


def analyse(spec: TaskSpec, panel: Panel, progress: Progress | None = None) -> AnalysisResult:
    """The whole analysis of one task; refuses with an :class:`AnalysisError` before fitting
    anything if the history cannot support the back-test."""
    family = spec.model.family
    target = panel.target_party
    recipe = base_recipe(spec, panel, family)
    own_recipe = recipe.with_covariates(
        [
            c.name
            for c in panel.covariates
            if c.party in (target, "*") and c.availability == "future_known"
        ],
        [
            c.name
            for c in panel.covariates
            if c.party in (target, "*") and c.availability == "past_only"
        ],
    )
    ets = Recipe.from_json({**own_recipe.to_json(), "family": "statsforecast-autoets"})
    naive = Recipe.from_json({**own_recipe.to_json(), "family": "seasonal-naive"})
    need = max(min_train(r, True) for r in (recipe, ets, naive))
    if family == "mlforecast-lightgbm":
        need += spec.model.horizon
    dropped = _check_history(spec, panel, need)
    recipe = choose_differences(panel.frame, recipe, panel.grid, _first_cutoffs(spec, panel))
    own_recipe = Recipe.from_json({**own_recipe.to_json(), "differences": recipe.differences})
    runner = _Runner(spec, panel, progress)
    target_only = tuple(panel.target_series()) if spec.join.kind == "horizontal" else None
    plan = [
        Candidate(JOINT, recipe),
        Candidate(OWN, own_recipe, series=target_only),
        Candidate(ETS, ets, series=target_only),
        Candidate(NAIVE, naive, series=target_only),
    ]
    frames = []
    for i, candidate in enumerate(plan):
        if progress is not None:
            progress("back-test", i, len(plan))
        frames.append(runner.run(candidate))
    if progress is not None:
        progress("back-test", len(plan), len(plan))
    backtest = _merge(frames)
    metrics = list(dict.fromkeys(["mase", *spec.evaluation.metrics]))
    train = panel.frame[panel.frame[ID].isin(panel.target_series())][[ID, DS, "y"]]
    level = spec.evaluation.level
    scored = score(
        backtest,
        [c.name for c in plan],
        train,
        metrics=metrics,
        season_length=spec.model.season_length,
        level=level,
    )
    providers = [p for p in spec.data_providers() if p != target]
    scores = {
        JOINT: Score(JOINT, family, sorted([target, *providers]), scored[JOINT]),
        OWN: Score(OWN, family, [target], scored[OWN]),
        ETS: Score(ETS, "statsforecast-autoets", [target], scored[ETS]),
        NAIVE: Score(NAIVE, "seasonal-naive", [target], scored[NAIVE]),
    }
    baselines = [scores[OWN], scores[ETS], scores[NAIVE]]
    best = min(baselines, key=lambda s: _mase(s))
    contribution = None
    if spec.release.contribution is not None:
        contribution = _contribution(
            spec, panel, runner, recipe, providers, scores, train, progress
        )
    anomalies = _anomalies(backtest, level) if spec.task.kind is TaskKind.ANOMALY else None
    fitted = fit(panel.frame, recipe, panel.grid, JOINT)
    cutoffs = sorted({str(pd.Timestamp(c).isoformat()) for c in backtest["cutoff"].unique()})
    return AnalysisResult(
        family=family,
        recipe=recipe,
        joint=scores[JOINT],
        baselines=baselines,
        best_single=best,
        contribution=contribution,
        backtest=backtest,
        anomalies=anomalies,
        cutoffs=cutoffs,
        series=int(panel.frame[ID].nunique()),
        rows=len(panel.frame),
        dropped_series=dropped,
        fitted=fitted,
        fits=runner.fits + 1,
    )


def _held_by(panel: Panel, parties: frozenset[str]) -> tuple[list[str], list[str]]:
    """The (future-known, past-only) covariates the given parties hold."""
    held = [c for c in panel.covariates if c.party in parties]
    return (
        [c.name for c in held if c.availability == "future_known"],
        [c.name for c in held if c.availability == "past_only"],
    )


def _mase(s: Score) -> float:
    value = s.metrics.get("mase")
    return math.inf if value is None else value


def _contribution(
    spec: TaskSpec,
    panel: Panel,
    runner: _Runner,
    recipe: Recipe,
    providers: list[str],
    scores: dict[str, Score],
    train: pd.DataFrame,
    progress: Progress | None,
) -> Contribution:
    target = panel.target_party
    reference = _mase(scores[NAIVE])
    own = _mase(scores[OWN])
    values = {target: own - reference}
    vertical = spec.join.kind == "vertical"
    if not providers:
        return Contribution("shapley", NAIVE, values, 0, "the target party is the only provider")
    if (vertical and not uses_covariates(recipe.family)) or (
        not vertical and not is_global(recipe.family)
    ):
        values.update(dict.fromkeys(providers, 0.0))
        what = "covariates" if vertical else "other parties' series"
        return Contribution(
            "not-applicable",
            NAIVE,
            values,
            0,
            f"{recipe.family} does not use {what}: the other providers' data cannot change "
            "its forecasts",
        )
    mase_of: dict[frozenset[str], float] = {
        frozenset(): own,
        frozenset(providers): _mase(scores[JOINT]),
    }
    exact = len(providers) <= SHAPLEY_MAX_PLAYERS
    wanted = (
        [frozenset(c) for n in range(len(providers) + 1) for c in combinations(providers, n)]
        if exact
        else [frozenset(providers) - {p} for p in providers]
    )
    todo = [c for c in wanted if c not in mase_of]
    for i, coalition in enumerate(todo):
        if progress is not None:
            progress("coalitions", i, len(todo))
        members = frozenset({target, "*"}) | coalition
        trial = recipe.with_covariates(
            [
                c.name
                for c in panel.covariates
                if c.party in members and c.availability == "future_known"
            ],
            [
                c.name
                for c in panel.covariates
                if c.party in members and c.availability == "past_only"
            ],
        )
        trial = Recipe.from_json({**trial.to_json(), "differences": recipe.differences})
        series = (
            None if vertical else tuple(u for u, p in panel.series_party.items() if p in members)
        )
        cv = runner.run(Candidate("coalition", trial, series=series, intervals=False))
        mase_of[coalition] = _mase(
            Score(
                "coalition",
                recipe.family,
                sorted(members - {"*"}),
                score(
                    cv,
                    ["coalition"],
                    train,
                    metrics=["mase"],
                    season_length=spec.model.season_length,
                    level=spec.evaluation.level,
                )["coalition"],
            )
        )
    if progress is not None:
        progress("coalitions", len(todo), len(todo))
    if exact:
        phi = shapley(providers, lambda s: -mase_of[s])
        values.update({p: -phi[p] for p in providers})
        return Contribution("shapley", NAIVE, values, len(wanted))
    everyone = mase_of[frozenset(providers)]
    values.update({p: everyone - mase_of[frozenset(providers) - {p}] for p in providers})
    return Contribution(
        "leave-one-out",
        NAIVE,
        values,
        len(wanted),
        f"{len(providers)} providers besides the target: exact Shapley would need "
        f"2^{len(providers)} fits, so each value is the change when that provider leaves",
    )


def _anomalies(backtest: pd.DataFrame, level: int) -> pd.DataFrame:
    """Back-tested points outside the joint model's interval, scored by how far outside
    (in interval widths)."""
    lo, hi = backtest[f"{JOINT}-lo-{level}"], backtest[f"{JOINT}-hi-{level}"]
    width = (hi - lo).where(hi > lo, np.nan)
    below = (lo - backtest["y"]) / width
    above = (backtest["y"] - hi) / width
    out = backtest.assign(score=np.fmax(below, above).fillna(0.0))
    flagged = out[(out["y"] < lo) | (out["y"] > hi)]
    return flagged[
        [ID, DS, "cutoff", "y", JOINT, f"{JOINT}-lo-{level}", f"{JOINT}-hi-{level}", "score"]
    ].reset_index(drop=True)
