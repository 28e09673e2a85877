"""Training cost at a real member's size: how the analysis runtime's wall time grows with the
number of series, their length and the number of data providers, vs the same model on the
plaintext frame.

Data (numpy, seeded, generated here): a utility's load per meter with a multiplicative trend,
a weekly profile (and a daily one, hourly), US public holidays (a fifth less load), a
response to the temperature at the meter (heating and cooling: load rises with the distance
from 16 °C, a different sensitivity per meter) and to event days. The temperature is the
region's annual cycle (plus a diurnal one, hourly) plus an AR(1) anomaly no calendar
predicts, plus a local offset per meter, so the weather party's signal is real: the joint
model must beat the target-only one. Noise parties hold random walks unrelated to the load.
Providers, in the order they join a task: utility (target), weather (``future_known``
temperature), noise (``past_only``), events (``future_known`` flags), then noise2..noise5
(``future_known`` and ``past_only`` in turn). Every covariate dataset carries the meter
column: the spec validator wants every ``join.on`` column in every dataset, and a vertical
join of per-meter and time-only covariates on different keys is not expressible.

Each case builds the parties' Arrow tables as the analysis runtime receives them (released
columns in stream order, UTC timestamps) and a :class:`~chronoseal.spec.TaskSpec` built
with ``parse_spec`` (vertical join on time and meter, ``mlforecast-lightgbm``, US holidays,
contribution released to every party, every other field at its default), then times
``join_tables`` and ``analyse`` (with ``workers=`` when ``analyse`` takes it). Three
ladders, each in the same run:

* **series**: 1 → 10 → 100 → 1,000 meters, daily, 2 years, h = 14, season 7, 3 providers;
* **length**: 1k → 10k → 50k rows, hourly, one meter, h = 24, season 24, 3 providers (the
  data has a weekly cycle too, but ``seasonalities = [168]`` is refused for LightGBM: the
  validator keeps extra seasonalities to ``statsforecast-mstl``);
* **providers**: 1 → 3 → 6 → 8, daily, 10 meters, 2 years (6 is the exact-Shapley limit).

``exponent_<dimension>`` is the least-squares slope of log wall time (join + analyse) on log
size over the ladder (1 = linear); ``exponent_<dimension>_cpu`` the same on CPU seconds.
``phases`` per case are the wall seconds between the runtime's progress callbacks
(``start`` = checks and the choice of differences, then each back-test, each coalition,
``after coalitions`` = Shapley and the final fit), ``phases_cpu`` the CPU seconds (this
process's threads and its reaped children: a worker pool that outlives the call is not in
them, its ``worker_seconds`` are in ``result_cost``). ``result_phases`` and ``result_cost``
are the runtime's own account, when its result gives ``phases`` or a ``cost``.
``parallel_speedup`` = wall time on one core (``workers=1, cores=1``: one process,
LightGBM on one thread) / on two (``workers=2``) on the 100-meter case (the largest series
case up to 100 with ``--quick``). The plain baseline, on the largest series case: the same
code on the joined plaintext frame and nothing else (``choose_differences`` +
``cross_validate`` of the joint recipe with intervals + ``fit``, as ``bench/analysis.py``
does); ``overhead_joint`` = chronoseal's CPU seconds for the joint model in the real run
(its differencing trials and back-test windows on the workers, its final fit: the runtime's
own ``cost``) / the plain CPU seconds — the joint model's windows run beside the baselines'
and coalitions' on the workers, so its wall seconds are not separable;
``overhead_joint_wall`` keeps the wall-clock ratio of the joint's summed job seconds. An
untimed warm-up run keeps library set-up (imports, numba compilation, OpenMP start) out of
every figure.

    python bench/scale.py --quick   # series 1-16, length 1k-4k, providers 1-3, 1 window
    python bench/scale.py           # the full ladders, 4 windows

The last line printed is one JSON object with the figures, the ratios and the targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import holidays
import numpy as np
import pandas as pd
import pyarrow as pa

from chronoseal.analysis import join_tables
from chronoseal.analysis._analyse import JOINT, OWN, _first_cutoffs, analyse, base_recipe
from chronoseal.model import Candidate, choose_differences, cross_validate, fit
from chronoseal.spec import TaskSpec, parse_spec

SEED = 18
START = "2023-01-01"
MEASUREMENT = "ab" * 32
LEVEL = 80
TARGET, WEATHER, NOISE, EVENTS = "utility", "weather", "noise", "events"
#: Providers in the order they join a task: the target party first.
PARTY_ORDER = (TARGET, WEATHER, NOISE, EVENTS, "noise2", "noise3", "noise4", "noise5")

FULL = {"series": [1, 10, 100, 1000], "length": [1000, 10_000, 50_000], "providers": [1, 3, 6, 8]}
#: About a minute on a quiet 2-core machine: small sizes, where fixed costs (worker start,
#: the choice of differences) weigh more, so the quick exponents understate nothing.
QUICK = {"series": [1, 4, 16], "length": [1000, 2000, 4000], "providers": [1, 2, 3]}
DAILY = {"freq": "D", "days": 730, "horizon": 14, "season": 7, "seasonalities": []}
HOURLY = {"freq": "h", "horizon": 24, "season": 24, "seasonalities": []}
PROVIDERS_SERIES = 10
SPEEDUP_SERIES = 100
TARGETS = {
    "exponent_series": ("<=", 1.1),
    "exponent_length": ("<=", 1.1),
    "exponent_providers": ("<=", 1.3),
    "parallel_speedup": (">=", 1.6),
    "overhead_joint": ("<=", 1.3),
}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Whatever a library writes to stdout (fd 1) goes to stderr while the bench runs, so
    the JSON object is the only line on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cpu_time() -> float:
    """CPU seconds of this process (all threads) and of its reaped children: steadier than
    wall time on a shared machine."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def report(measure: Callable[[], dict[str, Any]]) -> None:
    """Run ``measure`` with its chatter on stderr and print its figures as the last line,
    with the load average before and after and the wall time: the machine is shared."""
    began = time.perf_counter()
    load = [load_average()]
    with stdout_to_stderr():
        summary = measure()
    load.append(load_average())
    summary["load_average_1min"] = load
    summary["wall_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary), flush=True)


# --- data -------------------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) path with marginal standard deviation ``sd``."""
    shocks = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def synthetic(freq: str, periods: int, series: int, providers: int) -> dict[str, pa.Table]:
    """Every provider's table, keyed by party, as the runtime receives it.

    The drivers and the load are drawn the same way whatever ``providers`` is (the same seed
    gives the same load), so adding a party only adds its table.
    """
    if freq not in ("D", "h"):
        raise ValueError(f"frequency {freq!r}: daily ('D') or hourly ('h')")
    if not 1 <= providers <= len(PARTY_ORDER):
        raise ValueError(f"providers must be 1 to {len(PARTY_ORDER)}")
    rng = np.random.default_rng(SEED)
    per_day = 24 if freq == "h" else 1
    times = pd.date_range(START, periods=periods, freq=freq, tz="UTC")
    day = np.arange(periods) / per_day
    hour = times.hour.to_numpy()
    # The weather: an annual and a diurnal cycle, and an anomaly no calendar predicts.
    anomaly = _ar1(rng, periods, 0.8 ** (1 / per_day), 3.0)
    temperature = 12.0 - 10.0 * np.cos(2 * np.pi * (day - 20) / 365.25) + anomaly
    if freq == "h":
        temperature += 4.0 * np.sin(2 * np.pi * (hour - 9) / 24)
    event_days = rng.random(int(day[-1]) + 1) < 0.05
    event = event_days[day.astype(int)].astype(np.float64)
    years = sorted(set(times.year))
    holiday_dates = np.array(sorted(holidays.country_holidays("US", years=years)), "datetime64[D]")
    holiday = np.isin(times.tz_convert(None).to_numpy().astype("datetime64[D]"), holiday_dates)
    weekday = times.dayofweek.to_numpy()
    week = np.array([1.0, 1.02, 1.03, 1.02, 0.98, 0.82, 0.74])[weekday]
    daily = 1 + 0.25 * np.sin(2 * np.pi * (hour - 6) / 24) ** 2 if freq == "h" else 1.0
    # Each meter: its own level, growth, weekly depth, weather and event sensitivity.
    level = rng.lognormal(np.log(100.0), 0.5, series)
    growth = rng.normal(0.08, 0.04, series) / 365.25
    depth = rng.uniform(0.5, 1.5, series)
    heat = rng.uniform(0.02, 0.05, series)
    lift = rng.uniform(0.05, 0.15, series)
    # The weather at each meter: the region's, a local offset and a little local noise.
    local = (
        temperature[None, :]
        + rng.normal(0.0, 1.0, series)[:, None]
        + rng.normal(0.0, 0.3, (series, periods))
    )
    load = (
        level[:, None]
        * np.exp(growth[:, None] * day[None, :])
        * (1 + depth[:, None] * (week[None, :] - 1))
        * daily
        * np.where(holiday, 0.8, 1.0)[None, :]
        * (1 + heat[:, None] * np.abs(local - 16.0))
        * (1 + lift[:, None] * event[None, :])
        * np.exp(rng.normal(0.0, 0.03, (series, periods)))
    )
    meters = np.array([f"m{i:04d}" for i in range(series)])
    stamps = pa.array(np.tile(times.to_numpy(dtype="datetime64[us]"), series))
    keys = {
        "time": stamps.cast(pa.timestamp("us", tz="UTC")),
        "meter": pa.array(np.repeat(meters, periods)),
    }
    tables = {TARGET: pa.table({**keys, "load": np.round(load, 3).ravel()})}
    for party in PARTY_ORDER[1:providers]:
        if party == WEATHER:
            values = np.round(local, 1)
        elif party == EVENTS:
            values = np.broadcast_to(event, (series, periods))
        else:
            values = np.cumsum(rng.normal(0.0, 1.0, (series, periods)), axis=1)
        tables[party] = pa.table({**keys, _value_column(party): values.ravel()})
    return tables


def _value_column(party: str) -> str:
    return {TARGET: "load", WEATHER: "temperature", EVENTS: "event"}.get(party, "reading")


def _availability(party: str) -> str | None:
    """Weather (a forecast) and event days are known ahead; noise parties alternate."""
    if party == TARGET:
        return None
    if party in (WEATHER, EVENTS) or party in ("noise2", "noise4"):
        return "future_known"
    return "past_only"


def _dataset(party: str, freq: str) -> dict[str, Any]:
    names = {TARGET: "load", WEATHER: "temperature", EVENTS: "event_days"}
    name = names.get(party, f"{party}_readings")
    values = [_value_column(party)]
    availability = _availability(party)
    entities = ["meter"]
    columns = ["time", *entities, *values]
    raw: dict[str, Any] = {
        "party": party,
        "name": name,
        "source": name,
        "time_column": "time",
        "entity_columns": entities,
        "value_columns": values,
        "frequency": freq,
        "policy": {"columns": {c: {"action": "keep"} for c in columns}},
    }
    if availability is not None:
        raw["availability"] = availability
    return raw


def task_spec(
    freq: str,
    providers: int,
    *,
    horizon: int,
    season: int,
    seasonalities: Sequence[int],
    windows: int,
) -> TaskSpec:
    """The task every party would review for this case: defaults wherever a field has one."""
    parties = list(PARTY_ORDER[:providers])
    raw = {
        "spec_version": 1,
        "task": {
            "name": "scale-bench",
            "kind": "forecast",
            "deadline": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        },
        "participants": [
            {
                "org": p,
                "roles": ["data_provider", "result_recipient"]
                if p == TARGET
                else ["data_provider"],
            }
            for p in parties
        ],
        "datasets": [_dataset(p, freq) for p in parties],
        "join": {"kind": "vertical", "on": ["time", "meter"]},
        "model": {
            "family": "mlforecast-lightgbm",
            "target": {"dataset": "load", "column": "load"},
            "horizon": horizon,
            "season_length": season,
            "seasonalities": list(seasonalities),
            "holidays": "US",
        },
        "evaluation": {
            "windows": windows,
            "metrics": ["mase", "smape", "rmse", "coverage"],
            "level": LEVEL,
        },
        "release": {
            "metrics": {"to": parties, "which": ["mase", "smape", "rmse", "coverage"]},
            "forecasts": {"to": [TARGET]},
            "contribution": {"to": parties},
        },
        "measurements": {
            c: {"tee": "simulated", "value": MEASUREMENT}
            for c in ("gateway", "analysis", "prediction")
        },
    }
    return parse_spec(raw)


@dataclass(frozen=True)
class Case:
    dimension: str
    size: int
    spec: TaskSpec
    tables: Mapping[str, pa.Table]


def series_case(series: int, windows: int, providers: int = 3) -> Case:
    d = DAILY
    spec = task_spec(
        "D",
        providers,
        horizon=d["horizon"],
        season=d["season"],
        seasonalities=d["seasonalities"],
        windows=windows,
    )
    return Case("series", series, spec, synthetic("D", d["days"], series, providers))


def length_case(rows: int, windows: int) -> Case:
    h = HOURLY
    spec = task_spec(
        "h",
        3,
        horizon=h["horizon"],
        season=h["season"],
        seasonalities=h["seasonalities"],
        windows=windows,
    )
    return Case("length", rows, spec, synthetic("h", rows, 1, 3))


def providers_case(providers: int, windows: int) -> Case:
    case = series_case(PROVIDERS_SERIES, windows, providers)
    return Case("providers", providers, case.spec, case.tables)


# --- timing -----------------------------------------------------------------------------------


def accepts_workers() -> bool:
    return "workers" in inspect.signature(analyse).parameters


class Marks:
    """Wall (and CPU) seconds between the runtime's progress callbacks, labelled by what
    follows each: ``start`` until the first callback, ``<stage> i/n`` while item i of n
    runs, ``after <stage>`` once a stage reports done."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._label = "start"
        self._since = time.perf_counter()
        self._cpu = cpu_time()

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._close()
        self._label = f"{stage} {done + 1}/{total}" if done < total else f"after {stage}"

    def _close(self) -> None:
        now, cpu = time.perf_counter(), cpu_time()
        self.seconds[self._label] = self.seconds.get(self._label, 0.0) + now - self._since
        self.cpu[self._label] = self.cpu.get(self._label, 0.0) + cpu - self._cpu
        self._since, self._cpu = now, cpu

    def finish(self) -> tuple[dict[str, float], dict[str, float]]:
        self._close()
        return (
            {k: round(v, 3) for k, v in self.seconds.items()},
            {k: round(v, 3) for k, v in self.cpu.items()},
        )


def _joint_from_marks(phases: Mapping[str, float]) -> float | None:
    """The joint model's seconds as today's ``analyse`` orders its work: checks and the
    choice of differences (``start``), the joint back-test (``back-test 1/n``, the plan's
    first), the final fit (``after coalitions``, or ``after back-test`` with no coalitions)."""
    first = next((k for k in phases if k.startswith("back-test 1/")), None)
    last = "after coalitions" if "after coalitions" in phases else "after back-test"
    if first is None or "start" not in phases or last not in phases:
        return None
    return phases["start"] + phases[first] + phases[last]


def _runtime_phases(result: Any) -> tuple[dict[str, float] | None, dict[str, Any] | None]:
    """The runtime's own account of its time, if its result gives one: ``phases`` (phase ->
    seconds), or a ``cost`` with ``phases`` and ``to_json()`` (worker seconds per group)."""
    cost = getattr(result, "cost", None)
    if cost is not None and hasattr(cost, "to_json"):
        return dict(cost.phases), cost.to_json()
    phases = getattr(result, "phases", None)
    return (dict(phases), None) if phases else (None, None)


def _joint_from_result(phases: Mapping[str, float], cost: Mapping[str, Any] | None) -> float | None:
    """The joint model's seconds from the runtime's own figures: the choice of differences,
    the joint model's back-test (its worker seconds, when back-tests run as a pool of jobs)
    and the final fit; None when the runtime does not name them."""
    work = (cost or {}).get("worker_seconds") or {}
    if "joint" in work:
        return (
            float(phases.get("differences", 0.0))
            + float(work["joint"])
            + float(phases.get("fit", 0.0))
        )
    keys = [k for k in phases if any(w in k for w in ("joint", "differences", "fit", "seal"))]
    if not any("joint" in k for k in keys):
        return None
    return sum(float(phases[k]) for k in keys if "coalition" not in k)


def _joint_cpu(cost: Mapping[str, Any] | None) -> float | None:
    """The joint model's CPU seconds from the runtime's own account: its differencing
    trials and back-test windows (worker CPU) and its final fit (the runtime's CPU)."""
    if not cost or "worker_cpu_seconds" not in cost:
        return None
    work, own = cost["worker_cpu_seconds"], cost.get("cpu_seconds") or {}
    return float(work.get("differences", 0.0) + work.get("joint", 0.0) + own.get("fit", 0.0))


def run_case(case: Case, workers: int | None, cores: int | None = None) -> dict[str, Any]:
    spec = case.spec
    load_before = load_average()
    cpu = cpu_time()
    began = time.perf_counter()
    panel = join_tables(spec, case.tables)
    joined, join_cpu = time.perf_counter(), cpu_time() - cpu
    kwargs: dict[str, Any] = {"workers": workers} if workers is not None else {}
    if cores is not None:
        kwargs["cores"] = cores
    marks = Marks()
    result = analyse(spec, panel, marks, **kwargs)
    done = time.perf_counter()
    cpu = cpu_time() - cpu
    phases, phases_cpu = marks.finish()
    join_seconds, analyse_seconds = joined - began, done - joined
    result_phases, result_cost = _runtime_phases(result)
    joint = _joint_from_result(result_phases, result_cost) if result_phases else None
    method = "the result's own phases" if joint is not None else "progress callbacks"
    if joint is None:
        joint = _joint_from_marks(phases)
    joint_cpu = _joint_from_marks(phases_cpu)
    joint_mase = result.joint.metrics.get("mase")
    own = next(s for s in result.baselines if s.name == OWN)
    own_mase = own.metrics.get("mase")
    contribution = result.contribution
    out: dict[str, Any] = {
        "size": case.size,
        "rows": result.rows,
        "series": result.series,
        "providers": len(spec.data_providers()),
        "windows": spec.evaluation.windows,
        "workers": workers,
        "seconds": round(join_seconds + analyse_seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "join_seconds": round(join_seconds, 3),
        "analyse_seconds": round(analyse_seconds, 3),
        "fits": result.fits,
        "joint_mase": _rounded(joint_mase),
        "own_mase": _rounded(own_mase),
        "joint_vs_own_mase": (
            round(joint_mase / own_mase, 4) if joint_mase is not None and own_mase else None
        ),
        "contribution_method": contribution.method if contribution else None,
        "contribution": (
            {k: round(v, 4) for k, v in contribution.delta_mase.items()} if contribution else None
        ),
        "phases": phases,
        "phases_cpu": phases_cpu,
        "joint_seconds": round(join_seconds + joint, 3) if joint is not None else None,
        "joint_seconds_from": method,
        "joint_cpu_seconds": round(join_cpu + joint_cpu, 3) if joint_cpu is not None else None,
        "load_average_1min": [load_before, load_average()],
    }
    if result_phases:
        out["result_phases"] = {k: round(float(v), 3) for k, v in result_phases.items()}
    if result_cost:
        out["result_cost"] = result_cost
    _say(
        f"{case.dimension} {case.size}: {out['rows']} rows, {out['providers']} providers, "
        f"{out['seconds']:.1f} s ({out['fits']} fits), joint MASE {out['joint_mase']} vs own "
        f"{out['own_mase']}; load {out['load_average_1min']}; phases {phases}"
    )
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def plain(case: Case) -> dict[str, float]:
    """The joint model on the joined plaintext frame (the join itself not timed): the same
    recipe, ``choose_differences``, the back-test with intervals and the fit, nothing else."""
    spec = case.spec
    panel = join_tables(spec, case.tables)
    h = spec.model.horizon
    seconds: dict[str, float] = {}
    cpu = cpu_time()
    t = time.perf_counter()
    recipe = base_recipe(spec, panel, spec.model.family)
    recipe = choose_differences(panel.frame, recipe, panel.grid, _first_cutoffs(spec, panel))
    seconds["differences"] = time.perf_counter() - t
    t = time.perf_counter()
    cross_validate(
        panel.frame,
        Candidate(JOINT, recipe),
        panel.grid,
        windows=spec.evaluation.windows,
        step=spec.evaluation.step(h),
    )
    seconds["backtest"] = time.perf_counter() - t
    t = time.perf_counter()
    fit(panel.frame, recipe, panel.grid, JOINT)
    seconds["fit"] = time.perf_counter() - t
    seconds["total"] = sum(seconds.values())
    seconds["cpu_total"] = cpu_time() - cpu
    return {k: round(v, 3) for k, v in seconds.items()}


def exponent(runs: Sequence[Mapping[str, Any]], key: str = "seconds") -> float | None:
    """Least-squares slope of log time on log size (1 = linear growth)."""
    if len(runs) < 2:
        return None
    x = np.log([r["size"] for r in runs])
    y = np.log([r[key] for r in runs])
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def _meets(name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, bound = TARGETS[name]
    return value <= bound if op == "<=" else value >= bound


def warm_up() -> float:
    """One small untimed analysis: imports, numba compilation of AutoETS, OpenMP start-up."""
    began = time.perf_counter()
    case = series_case(2, 1)
    analyse(case.spec, join_tables(case.spec, case.tables))
    return time.perf_counter() - began


def measure(quick: bool, workers: int | None) -> dict[str, Any]:
    ladders = QUICK if quick else FULL
    windows = 1 if quick else 4
    speedup_series = max(n for n in ladders["series"] if n <= SPEEDUP_SERIES)
    can_split = accepts_workers()
    used = workers if can_split else None
    _say(
        f"windows {windows}, level {LEVEL}; analyse takes workers: {can_split}"
        + (f" (workers={used})" if used is not None else "")
    )
    _say(f"warm-up {warm_up():.1f} s")
    cases: dict[str, list[dict[str, Any]]] = {"series": [], "length": [], "providers": []}
    largest: Case | None = None
    for n in ladders["series"]:
        case = series_case(n, windows)
        cases["series"].append(run_case(case, used))
        largest = case
    for rows in ladders["length"]:
        cases["length"].append(run_case(length_case(rows, windows), used))
    for k in ladders["providers"]:
        cases["providers"].append(run_case(providers_case(k, windows), used))
    assert largest is not None

    speedup: float | None = None
    speedup_note = "analyse takes no workers argument: nothing to compare"
    if can_split:
        # one core: one process, LightGBM on one thread (the runtime's cores=1)
        one = run_case(series_case(speedup_series, windows), 1, cores=1)
        # the ladder's own run, when it already ran this case on two workers
        two = next(
            (r for r in cases["series"] if r["size"] == speedup_series and r["workers"] == 2),
            None,
        ) or run_case(series_case(speedup_series, windows), 2)
        speedup = round(one["seconds"] / two["seconds"], 3)
        speedup_note = (
            f"{speedup_series} daily series: {one['seconds']} s on one core, "
            f"{two['seconds']} s with workers=2"
        )

    _say(f"plain baseline on {largest.size} series")
    baseline = plain(largest)
    at_size = cases["series"][-1]
    joint = at_size["joint_seconds"]
    overhead_wall = round(joint / baseline["total"], 3) if joint is not None else None
    joint_cpu = _joint_cpu(at_size.get("result_cost")) or at_size["joint_cpu_seconds"]
    overhead_cpu = round(joint_cpu / baseline["cpu_total"], 3) if joint_cpu is not None else None
    # The joint model's work runs beside the baselines' and coalitions' on worker processes,
    # so its wall seconds are not separable; its CPU seconds are: the overhead is theirs.
    overhead = overhead_cpu if _joint_cpu(at_size.get("result_cost")) else overhead_wall
    figures = {
        "exponent_series": exponent(cases["series"]),
        "exponent_length": exponent(cases["length"]),
        "exponent_providers": exponent(cases["providers"]),
        "parallel_speedup": speedup,
        "overhead_joint": overhead,
    }
    return {
        "bench": "scale",
        "quick": quick,
        "windows": windows,
        "level": LEVEL,
        "family": largest.spec.model.family,
        "analyse_accepts_workers": can_split,
        "workers": used,
        **figures,
        "exponent_series_cpu": exponent(cases["series"], "cpu_seconds"),
        "exponent_length_cpu": exponent(cases["length"], "cpu_seconds"),
        "exponent_providers_cpu": exponent(cases["providers"], "cpu_seconds"),
        "targets": {k: f"{op} {bound}" for k, (op, bound) in TARGETS.items()},
        "meets_target": {k: _meets(k, v) for k, v in figures.items()},
        "parallel_note": speedup_note,
        "overhead_joint_at_series": largest.size,
        "overhead_joint_cpu": overhead_cpu,
        "overhead_joint_wall": overhead_wall,
        "chronoseal_joint_seconds": joint,
        "chronoseal_joint_from": at_size["joint_seconds_from"],
        "plain_seconds": baseline,
        "ladders": ladders,
        "cases": cases,
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small ladders and 1 window: about a minute"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="workers= passed to analyse, when it takes it (default: up to 2)",
    )
    args = parser.parse_args()
    report(lambda: measure(args.quick, args.workers))


if __name__ == "__main__":
    main()
