"""Inside the runtime: back-test the task's model, its single-party baselines and every
coalition of data providers on the same folds, and fit the model to release.

What a party learns from a task is what its data was worth. So besides the joint model,
the same folds score (a) the best model that uses only the target party's own data (the
same family without the others' covariates, statsforecast's AutoETS — MSTL for seasons
longer than ETS can fit — and SeasonalNaive) and (b) coalitions of the other providers, from
which each provider's Shapley value of the MASE improvement follows: exact up to
:data:`SHAPLEY_MAX_PLAYERS` other providers, a permutation sample with its standard error
beyond.

Cost is bounded and known: local models fit on a window of each series' history derived
from the season and horizon (:meth:`~chronoseal.spec.Model.input_size`), and every window of
every candidate is one job of a plan run on the runtime's cores (:mod:`._pool`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

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
    available_cores,
    family_of,
    fit,
    holdout_error,
    is_global,
    min_train,
    past_only_lags,
    uses_covariates,
)
from chronoseal.spec import (
    SAMPLED_PERMUTATIONS,
    SAMPLING_SEED,
    SHAPLEY_MAX_PLAYERS,
    TaskKind,
    TaskSpec,
    permutations,
    value_coalitions,
)

from ._join import Panel
from ._pool import Frames, PoolFactory, WindowJob, WindowPool, backtest_jobs

log = logging.getLogger("chronoseal.analysis")

JOINT, OWN, ETS, NAIVE = "joint", "own", "AutoETS", "SeasonalNaive"
#: The statistical baseline's name in the back-test, by family.
STAT_NAMES = {"statsforecast-autoets": ETS, "statsforecast-mstl": "MSTL"}

Progress = Callable[[str, int, int], None]
"""(stage, done, total): ``back-test`` over every window job of the plan (models and
coalitions), then ``fit`` for the released model."""


@dataclass(frozen=True)
class Score:
    """One model's back-test: what it is, whose data it used, and its metrics."""

    name: str
    family: str
    parties: list[str]
    metrics: dict[str, float | None]
    #: Periods of each series' history the model fits on (None: all of it).
    input_size: int | None = None


@dataclass(frozen=True)
class Contribution:
    """Each data provider's value: the MASE change its data brings (negative = better).

    The target party's entry is its own model's change over the seasonal-naive reference;
    every other provider's is its Shapley value over the coalitions of the other providers
    (the target always in), exact or sampled (then with ``standard_error``). The entries
    add up to the joint model's MASE minus the reference's.
    """

    method: Literal["shapley", "shapley-sampled", "not-applicable"]
    reference: str
    delta_mase: dict[str, float]
    coalitions: int
    note: str = ""
    standard_error: dict[str, float] | None = None


@dataclass(frozen=True)
class Cost:
    """What the analysis cost: wall seconds per sequential phase, worker seconds and fits
    per group of back-test jobs, and the processes and threads it ran on."""

    phases: dict[str, float]
    work: dict[str, float]
    fits: dict[str, int]
    workers: int
    threads: int
    cores: int
    #: CPU seconds: of the runtime's process per phase, of the workers per group.
    phases_cpu: dict[str, float] = field(default_factory=dict)
    work_cpu: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": {k: round(v, 3) for k, v in self.phases.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in self.phases_cpu.items()},
            "worker_seconds": {k: round(v, 3) for k, v in self.work.items()},
            "worker_cpu_seconds": {k: round(v, 3) for k, v in self.work_cpu.items()},
            "fits": dict(self.fits),
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "cores": self.cores,
        }


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
    cost: Cost | None = None
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
        local_input_size=spec.model.input_size(),
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


def sampled_shapley(
    orders: list[tuple[str, ...]], value: Callable[[frozenset[str]], float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Shapley values estimated over sampled orders: each player's mean marginal change when
    it joins the players before it, and the standard error of that mean (antithetic pairs
    averaged first, as they are not independent)."""
    marginal: dict[str, list[float]] = {p: [] for p in orders[0]}
    for order in orders:
        before: frozenset[str] = frozenset()
        for player in order:
            marginal[player].append(value(before | {player}) - value(before))
            before = before | {player}
    mean, error = {}, {}
    for player, changes in marginal.items():
        pairs = np.asarray(changes, dtype="float64").reshape(-1, 2).mean(axis=1)
        mean[player] = float(pairs.mean())
        error[player] = (
            float(pairs.std(ddof=1) / math.sqrt(len(pairs))) if len(pairs) > 1 else math.inf
        )
    return mean, error


def _cache_key(candidate: Candidate) -> str:
    return repr((candidate.recipe.to_json(), candidate.series, candidate.intervals))


@dataclass(frozen=True)
class _Planned:
    """A candidate of the plan, the group its fits are timed under, and its shared key."""

    candidate: Candidate
    group: str
    key: str


class _Clock:
    """Wall seconds per sequential phase, and worker seconds per group of back-test jobs."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.work: dict[str, float] = {}
        self.phases_cpu: dict[str, float] = {}
        self.work_cpu: dict[str, float] = {}
        self.fits: dict[str, int] = {}

    def start(self) -> tuple[float, float]:
        """A phase's start: wall clock and this process's CPU time (every thread)."""
        return time.perf_counter(), time.process_time()

    def timed(self, phase: str, start: tuple[float, float]) -> None:
        wall, cpu = start
        self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - wall
        self.phases_cpu[phase] = self.phases_cpu.get(phase, 0.0) + time.process_time() - cpu

    def job(self, job: WindowJob, seconds: float, cpu: float) -> None:
        """A finished job's seconds; a fit is one (candidate, window), however many shards."""
        group = job.group
        self.work[group] = self.work.get(group, 0.0) + seconds
        self.work_cpu[group] = self.work_cpu.get(group, 0.0) + cpu
        if job.counts_fit:
            self.fits[group] = self.fits.get(group, 0) + 1


class _Backtest:
    """Every candidate's back-test windows as one plan of jobs, run on the pool at once;
    identical candidates (same recipe, series and intervals) share their jobs."""

    def __init__(self, spec: TaskSpec, panel: Panel, pool: WindowPool, clock: _Clock) -> None:
        self.windows = spec.evaluation.windows
        self.step = spec.evaluation.step(spec.model.horizon)
        self.target_series = panel.target_series()
        self.pool = pool
        self.clock = clock
        self.planned: list[_Planned] = []
        self.results: dict[str, tuple[str, pd.DataFrame]] = {}
        self._issued = 0
        self._keys: set[str] = set()

    def add(self, candidate: Candidate, group: str) -> None:
        self.planned.append(_Planned(candidate, group, _cache_key(candidate)))

    def jobs(self, planned: list[_Planned] | None = None) -> list[WindowJob]:
        """The jobs of the candidates added since the last call (or of ``planned``: what
        adding them would plan), each shared key once."""
        fresh = planned is None
        todo = self.planned[self._issued :] if planned is None else planned
        seen = set(self._keys)
        out: list[WindowJob] = []
        for item in todo:
            if item.key in seen or item.key in self.results:
                continue
            seen.add(item.key)
            candidate = item.candidate
            series = self.pool.series if candidate.series is None else list(candidate.series)
            out.extend(
                backtest_jobs(
                    item.key,
                    item.group,
                    candidate,
                    self.windows,
                    self.step,
                    series,
                    self.pool.shards(candidate),
                )
            )
        if fresh:
            self._issued = len(self.planned)
            self._keys = seen
        return out

    def run(
        self,
        progress: Progress | None,
        gate: list[WindowJob],
        then: Callable[[Frames], list[_Planned]],
        expected: int,
    ) -> None:
        """Every job of the plan on the pool at once: the ``gate`` (the differencing
        trials) first, what is planned already beside it, and the candidates ``then``
        plans from the gate's frames once they are in. ``expected``: the back-test jobs
        in all, for the progress (the trials are not counted)."""
        jobs = self.jobs()
        done = 0
        gated = {(j.key, j.window, j.shard) for j in gate}

        def on_done(job: WindowJob, seconds: float, cpu: float) -> None:
            nonlocal done
            self.clock.job(job, seconds, cpu)
            if (job.key, job.window, job.shard) in gated:
                return
            done += 1
            if progress is not None:
                progress("back-test", done, expected)

        def decided(frames: Frames) -> list[WindowJob]:
            self.planned.extend(then(frames))
            return self.jobs()

        if progress is not None:
            progress("back-test", 0, expected)
        frames = self.pool.run(jobs, on_done, gate=gate, then=decided)
        names: dict[str, str] = {}
        for planned in self.planned:
            names.setdefault(planned.key, planned.candidate.name)
        for key in dict.fromkeys(p.key for p in self.planned):
            if key in self.results:
                continue
            cv = pd.concat([frames[key, i] for i in range(self.windows)], ignore_index=True)
            cv = cv[cv[ID].isin(self.target_series)]
            cv = cv.sort_values([ID, "cutoff", DS], kind="stable").reset_index(drop=True)
            self.results[key] = (names[key], cv)

    def frame(self, candidate: Candidate) -> pd.DataFrame:
        """The candidate's back-test, its columns named after it."""
        name, cv = self.results[_cache_key(candidate)]
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


def _own_recipe(panel: Panel, recipe: Recipe) -> Recipe:
    target = panel.target_party
    held = [c for c in panel.covariates if c.party in (target, "*")]
    return recipe.with_covariates(
        [c.name for c in held if c.availability == "future_known"],
        [c.name for c in held if c.availability == "past_only"],
    )


def analyse(
    spec: TaskSpec,
    panel: Panel,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
    cores: int | None = None,
    executor: PoolFactory | None = None,
    final_threads: int | None = None,
) -> AnalysisResult:
    """The whole analysis of one task; refuses with an :class:`AnalysisError` before fitting
    anything if the history cannot support the back-test.

    The back-test runs on ``workers`` processes (default: one per core this process may use,
    see :func:`~chronoseal.model.available_cores`), LightGBM on ``cores // workers`` threads
    in each, and the final fit on every core (``final_threads``: on that many LightGBM
    threads); or on the pool ``executor`` makes (the attested Dask workers of :mod:`._dask`)."""
    clock = _Clock()
    cores = cores or available_cores()
    workers = cores if workers is None else max(1, workers)
    family = spec.model.family
    target = panel.target_party
    recipe = base_recipe(spec, panel, family)
    own_recipe = _own_recipe(panel, recipe)
    stat_family = spec.model.statistical_baseline()
    stat_name = STAT_NAMES[stat_family]
    stat = Recipe.from_json({**own_recipe.to_json(), "family": stat_family})
    naive = Recipe.from_json({**own_recipe.to_json(), "family": "seasonal-naive"})
    need = max(min_train(r, True) for r in (recipe, stat, naive))
    if is_global(family):
        need += spec.model.horizon
    dropped = _check_history(spec, panel, need)
    providers = [p for p in spec.data_providers() if p != target]
    target_only = tuple(panel.target_series()) if spec.join.kind == "horizontal" else None
    statistical = [
        (Candidate(stat_name, stat, series=target_only), "baselines"),
        (Candidate(NAIVE, naive, series=target_only), "baselines"),
    ]
    trials = family_of(family).trials(recipe)
    value: _ValuePlan | None = None
    plan: list[tuple[Candidate, str]] = []

    def decided(chosen: Recipe) -> list[tuple[Candidate, str]]:
        """The candidates that use the chosen differences: joint, own, coalitions."""
        nonlocal value
        own = Recipe.from_json({**own_recipe.to_json(), "differences": chosen.differences})
        out = [
            (Candidate(JOINT, chosen), "joint"),
            (Candidate(OWN, own, series=target_only), "own"),
        ]
        value = None
        if spec.release.contribution is not None:
            value = _ValuePlan(spec, panel, chosen, providers)
            out.extend((c, "coalitions") for c in value.candidates())
        return out

    made = (
        WindowPool(panel.frame, panel.grid, workers=workers, cores=cores)
        if executor is None
        else executor(panel.frame, panel.grid, cores)
    )
    with made as pool:
        started = clock.start()
        pool.start()  # the workers boot (Dask's: receive the panel) before the first job
        clock.timed("panel", started)
        started = clock.start()
        backtest = _Backtest(spec, panel, pool, clock)
        for candidate, group in statistical:
            backtest.add(candidate, group)
        expected = len(backtest.jobs([*backtest.planned, *_planned(decided(recipe))]))
        gate = _trial_jobs(spec, trials)
        choice_made = started

        def then(frames: Frames) -> list[_Planned]:
            nonlocal recipe, plan, choice_made
            recipe = _chosen(family, recipe, trials, gate, frames)
            clock.timed("differences", started)
            choice_made = clock.start()
            later = decided(recipe)
            plan = [*later[:2], *statistical]
            return _planned(later)

        backtest.run(progress, gate, then, expected)
        clock.timed("back-test", choice_made)
    started = clock.start()
    frames = [backtest.frame(c) for c, _ in plan]
    merged = _merge(frames)
    metrics = list(dict.fromkeys(["mase", *spec.evaluation.metrics]))
    train = panel.frame[panel.frame[ID].isin(panel.target_series())][[ID, DS, "y"]]
    level = spec.evaluation.level
    scored = score(
        merged,
        [c.name for c, _ in plan],
        train,
        metrics=metrics,
        season_length=spec.model.season_length,
        level=level,
    )
    local = spec.model.input_size()
    scores = {
        JOINT: Score(
            JOINT, family, sorted([target, *providers]), scored[JOINT], _window(family, local)
        ),
        OWN: Score(OWN, family, [target], scored[OWN], _window(family, local)),
        stat_name: Score(stat_name, stat_family, [target], scored[stat_name], local),
        NAIVE: Score(NAIVE, "seasonal-naive", [target], scored[NAIVE], local),
    }
    baselines = [scores[OWN], scores[stat_name], scores[NAIVE]]
    best = min(baselines, key=lambda s: _mase(s))
    contribution = None
    if value is not None:
        contribution = value.contribution(scores, backtest, train)
    anomalies = _anomalies(merged, level) if spec.task.kind is TaskKind.ANOMALY else None
    clock.timed("score", started)
    if progress is not None:
        progress("fit", 0, 1)
    started = clock.start()
    fitted = fit(panel.frame, recipe, panel.grid, JOINT, threads=final_threads or cores)
    clock.timed("fit", started)
    clock.fits["final"] = 1
    if progress is not None:
        progress("fit", 1, 1)
    cutoffs = sorted({str(pd.Timestamp(c).isoformat()) for c in merged["cutoff"].unique()})
    return AnalysisResult(
        family=family,
        recipe=recipe,
        joint=scores[JOINT],
        baselines=baselines,
        best_single=best,
        contribution=contribution,
        backtest=merged,
        anomalies=anomalies,
        cutoffs=cutoffs,
        series=int(panel.frame[ID].nunique()),
        rows=len(panel.frame),
        dropped_series=dropped,
        fitted=fitted,
        fits=sum(clock.fits.values()),
        cost=Cost(
            phases=dict(clock.phases),
            work=dict(clock.work),
            fits=dict(clock.fits),
            phases_cpu=dict(clock.phases_cpu),
            work_cpu=dict(clock.work_cpu),
            workers=pool.workers,
            threads=pool.threads_per_job,
            cores=cores,
        ),
    )


def _window(family: str, local: int) -> int | None:
    """The history a model of ``family`` fits on: all of it for a global model."""
    return None if is_global(family) else local


def _planned(candidates: list[tuple[Candidate, str]]) -> list[_Planned]:
    return [_Planned(c, g, _cache_key(c)) for c, g in candidates]


def _trial_jobs(spec: TaskSpec, trials: list[Recipe]) -> list[WindowJob]:
    """The family's trials (LightGBM: differencing the target or not), each one window
    ending at the first back-test cutoff, so no choice sees a scored period."""
    h = spec.model.horizon
    back = h + spec.evaluation.step(h) * (spec.evaluation.windows - 1)
    return [
        WindowJob(f"trial-{i}", "differences", Candidate("trial", t, intervals=False), 0, back)
        for i, t in enumerate(trials)
    ]


def _chosen(
    family: str, recipe: Recipe, trials: list[Recipe], gate: list[WindowJob], frames: Frames
) -> Recipe:
    """The family's choice from its trials' holdout errors (the recipe as it is, if none)."""
    if not trials:
        return recipe
    errors = [holdout_error(frames[job.key, 0], "trial") for job in gate]
    return family_of(family).choose(recipe, trials, errors)


def _mase(s: Score) -> float:
    value = s.metrics.get("mase")
    return math.inf if value is None else value


class _ValuePlan:
    """Which coalitions of the other providers the value of each party needs, and the
    value from their back-tests: exact Shapley up to :data:`SHAPLEY_MAX_PLAYERS` providers
    besides the target, a permutation sample beyond it (with its standard error)."""

    def __init__(self, spec: TaskSpec, panel: Panel, recipe: Recipe, providers: list[str]) -> None:
        self.spec = spec
        self.panel = panel
        self.recipe = recipe
        self.providers = providers
        self.vertical = spec.join.kind == "vertical"
        self.applicable = bool(providers) and (
            uses_covariates(recipe.family) if self.vertical else is_global(recipe.family)
        )
        self.exact = len(providers) <= SHAPLEY_MAX_PLAYERS
        self.orders = (
            []
            if self.exact or not self.applicable
            else permutations(providers, SAMPLED_PERMUTATIONS, seed=SAMPLING_SEED)
        )

    def coalitions(self) -> list[frozenset[str]]:
        """Every coalition to back-test, besides nobody (own) and everyone (joint)."""
        return value_coalitions(self.providers) if self.applicable else []

    def _candidate(self, coalition: frozenset[str]) -> Candidate:
        members = frozenset({self.panel.target_party, "*"}) | coalition
        future, past = _held_by(self.panel, members)
        trial = self.recipe.with_covariates(future, past)
        trial = Recipe.from_json({**trial.to_json(), "differences": self.recipe.differences})
        series = (
            None
            if self.vertical
            else tuple(u for u, p in self.panel.series_party.items() if p in members)
        )
        return Candidate("coalition", trial, series=series, intervals=False)

    def candidates(self) -> list[Candidate]:
        return [self._candidate(c) for c in self.coalitions()]

    def contribution(
        self, scores: dict[str, Score], backtest: _Backtest, train: pd.DataFrame
    ) -> Contribution:
        target = self.panel.target_party
        reference = _mase(scores[NAIVE])
        own = _mase(scores[OWN])
        values = {target: own - reference}
        if not self.providers:
            return Contribution(
                "shapley", NAIVE, values, 0, "the target party is the only provider"
            )
        if not self.applicable:
            values.update(dict.fromkeys(self.providers, 0.0))
            what = "covariates" if self.vertical else "other parties' series"
            return Contribution(
                "not-applicable",
                NAIVE,
                values,
                0,
                f"{self.recipe.family} does not use {what}: the other providers' data cannot "
                "change its forecasts",
            )
        mase_of: dict[frozenset[str], float] = {
            frozenset(): own,
            frozenset(self.providers): _mase(scores[JOINT]),
        }
        for coalition in self.coalitions():
            cv = backtest.frame(self._candidate(coalition))
            mase_of[coalition] = _mase(
                Score(
                    "coalition",
                    self.recipe.family,
                    sorted(coalition | {target}),
                    score(
                        cv,
                        ["coalition"],
                        train,
                        metrics=["mase"],
                        season_length=self.spec.model.season_length,
                        level=self.spec.evaluation.level,
                    )["coalition"],
                )
            )
        fitted = len(mase_of)
        if self.exact:
            phi = shapley(self.providers, lambda s: -mase_of[s])
            values.update({p: -phi[p] for p in self.providers})
            return Contribution("shapley", NAIVE, values, fitted)
        mean, error = sampled_shapley(self.orders, lambda s: -mase_of[s])
        values.update({p: -mean[p] for p in self.providers})
        return Contribution(
            "shapley-sampled",
            NAIVE,
            values,
            fitted,
            f"{len(self.providers)} providers besides the target: exact Shapley would need "
            f"2^{len(self.providers)} coalitions, so each value is the mean of its marginal "
            f"change over {len(self.orders)} sampled orders (antithetic pairs, seed "
            f"{SAMPLING_SEED}), with its standard error",
            standard_error={p: error[p] for p in self.providers},
        )


def _held_by(panel: Panel, parties: frozenset[str]) -> tuple[list[str], list[str]]:
    """The (future-known, past-only) covariates the given parties hold."""
    held = [c for c in panel.covariates if c.party in parties]
    return (
        [c.name for c in held if c.availability == "future_known"],
        [c.name for c in held if c.availability == "past_only"],
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
