"""Analysis quality and overhead on the bundled Chicago task, vs the same model on plaintext.

Each repeat is one real :class:`~chronoseal.node.DemoConsortium` run of the task through
``trained`` (deploy, propose, approve, attested runtime, three gateways streaming their
desensitized data over mutual RA-TLS, analysis, model commitment, every party fetching its
release), then the direct baseline in the same process:

* **quality, as released**: the joint model's metrics, the best single-party model's,
  statsforecast's AutoETS and SeasonalNaive on the target alone (all on the same folds) and
  each data provider's contribution (Shapley value of the MASE change), as the parties
  received them;
* **chronoseal, joint model**: a ``DemoConsortium`` subclass wraps the analysis agent's
  ``runtime.analyse`` and times, on the runtime's own received tables, each phase the runtime
  runs for the joint model: ``stream`` (from ``stream()`` to ``analyse``: runtime attestation on
  chain, gateway verification and acknowledgement, the RA-TLS streams, both commitments per
  party on chain), ``check_matched`` (the runtime's on-chain check that every commitment
  matched), ``join`` (received batches → tables → ``join_tables``), ``joint_backtest``
  (``choose_differences`` + ``cross_validate`` of ``Candidate("joint", recipe)`` with
  intervals), ``fit``, ``seal`` (+ the SHA-256 commitment) and ``commit`` (the
  ``post_model_commitment`` transaction, timed inside ``runtime.analyse``: a task takes one
  model commitment);
* **chronoseal, full analysis**: the whole ``runtime.analyse()`` that follows (join, joint
  model, own-data, AutoETS and SeasonalNaive baselines, coalition back-tests, fit, seal,
  releases, commitment), broken down by its progress callbacks;
* **direct**: ``join_tables`` on the same received tables (not timed), then only
  ``choose_differences`` + ``cross_validate`` + ``fit``, the same code on the same frame.

``overhead_joint`` = median chronoseal joint total / median direct total;
``overhead_full_analysis`` = median (stream + whole ``runtime.analyse``) / median direct total.
An untimed warm-up (one window of the joint model and of AutoETS on the Parquet files) keeps
one-time library set-up out of every timed phase. Wall time (``time.perf_counter``) and the
process's CPU time (all threads, ``time.process_time``) are both reported.

    python bench/analysis.py --quick    # 4 evaluation windows, 1 repeat, about a minute
    python bench/analysis.py            # the task's 13 windows, 3 repeats

The last line printed is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from chronoseal.analysis import (
    AnalysisRuntime,
    Panel,
    TrainedModel,
    expected_columns,
    join_tables,
    score,
)
from chronoseal.analysis._analyse import ETS, JOINT, NAIVE, _first_cutoffs, base_recipe
from chronoseal.model import (
    DS,
    ID,
    Candidate,
    Recipe,
    choose_differences,
    commitment,
    cross_validate,
    fit,
    seal,
)
from chronoseal.node import DemoConsortium, Scenario, bundled_scenario, load_scenario
from chronoseal.sources import open_source
from chronoseal.spec import TaskSpec

QUICK_WINDOWS = 4
TARGET_OVERHEAD = 1.3
JOINT_PHASES = ("stream", "check_matched", "join", "joint_backtest", "fit", "seal", "commit")
DIRECT_PHASES = ("direct_backtest", "direct_fit")
BASELINE = (
    "join_tables on the runtime's received tables (not timed), then choose_differences + "
    "cross_validate + fit"
)


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


class Clock:
    """Wall and CPU seconds of named phases."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu


def task_copy(spec: TaskSpec, windows: int) -> TaskSpec:
    raw = spec.model_dump()
    raw["evaluation"]["windows"] = windows
    return TaskSpec.model_validate(raw)


def joint_recipe(spec: TaskSpec, panel: Panel) -> Recipe:
    """The joint model's recipe exactly as ``analyse`` makes it (differences chosen on the
    horizon before the first fold)."""
    recipe = base_recipe(spec, panel, spec.model.family)
    return choose_differences(panel.frame, recipe, panel.grid, _first_cutoffs(spec, panel))


def joint_backtest(spec: TaskSpec, panel: Panel, recipe: Recipe) -> pd.DataFrame:
    step = spec.evaluation.step(spec.model.horizon)
    return cross_validate(
        panel.frame,
        Candidate(JOINT, recipe),
        panel.grid,
        windows=spec.evaluation.windows,
        step=step,
    )


def joint_metrics(spec: TaskSpec, panel: Panel, cv: pd.DataFrame) -> dict[str, float | None]:
    """The joint back-test scored as the runtime scores it (target series only)."""
    targets = panel.target_series()
    train = panel.frame[panel.frame[ID].isin(targets)][[ID, DS, "y"]]
    return score(
        cv[cv[ID].isin(targets)].reset_index(drop=True),
        [JOINT],
        train,
        metrics=list(dict.fromkeys(["mase", *spec.evaluation.metrics])),
        season_length=spec.model.season_length,
        level=spec.evaluation.level,
    )[JOINT]


class BenchConsortium(DemoConsortium):
    """The demo consortium with the runtime's work timed phase by phase."""

    def __init__(self, scenario: Scenario) -> None:
        self.clock = Clock()
        self.breakdown: dict[str, float] = {}
        self.tables: dict[str, pa.Table] = {}
        self.chrono_metrics: dict[str, float | None] = {}
        self.trained: TrainedModel | None = None
        self._stream_started = 0.0
        self._stream_cpu = 0.0
        self._mark: tuple[str, float] | None = None
        self._train_started = (0.0, 0.0)
        super().__init__(scenario, log=lambda _line: None, analysis_progress=self._progress)

    def stream(self, train: bool = True, serve: bool = False) -> Any:
        self._stream_started, self._stream_cpu = time.perf_counter(), time.process_time()
        out = super().stream(train, serve)
        # from the analysis to every party holding its release (the agents' threads joined)
        self.clock.wall["train_and_fetch"] = time.perf_counter() - self._train_started[0]
        self.clock.cpu["train_and_fetch"] = time.process_time() - self._train_started[1]
        return out

    def start_runtime(self, attester: Any = None) -> AnalysisRuntime:
        """The analysis agent's runtime, its ``analyse`` timed phase by phase first."""
        runtime = super().start_runtime(attester)
        analyse = runtime.analyse

        def timed_analyse(progress: Any = None) -> TrainedModel:
            self._joint_phases(runtime)
            self._train_started = (time.perf_counter(), time.process_time())
            with self.clock("full_analysis"):
                self._mark = ("join_and_differences", time.perf_counter())
                self.trained = analyse(progress)
                self._close_mark(None)
            return self.trained

        runtime.analyse = timed_analyse  # type: ignore[method-assign]
        return runtime

    def _joint_phases(self, runtime: AnalysisRuntime) -> None:
        clock, spec = self.clock, self.spec
        clock.wall["stream"] = time.perf_counter() - self._stream_started
        clock.cpu["stream"] = time.process_time() - self._stream_cpu
        # The joint model, phase by phase, with the pieces runtime.analyse uses.
        with clock("check_matched"):
            runtime._await_matched()
        with clock("join"):
            self.tables = {p: intake.table() for p, intake in runtime.state.parties.items()}
            panel = join_tables(spec, self.tables)
        with clock("joint_backtest"):
            recipe = joint_recipe(spec, panel)
            cv = joint_backtest(spec, panel, recipe)
        with clock("fit"):
            fitted = fit(panel.frame, recipe, panel.grid, JOINT)
        with clock("seal"):
            commitment(seal(fitted, task_id=self.task_id, name=JOINT))
        self.chrono_metrics = joint_metrics(spec, panel, cv)
        # Then the whole analysis, as the task runs it; its one model commitment is timed.
        session = runtime.session
        post = session.post_model_commitment

        def timed_post(*args: Any) -> Any:
            with clock("commit"):
                return post(*args)

        session.post_model_commitment = timed_post  # type: ignore[method-assign,assignment]

    def _close_mark(self, next_label: str | None) -> None:
        now = time.perf_counter()
        if self._mark is not None:
            label, since = self._mark
            self.breakdown[label] = self.breakdown.get(label, 0.0) + now - since
        self._mark = (next_label, now) if next_label is not None else None

    def _progress(self, stage: str, done: int, total: int) -> None:
        """The runtime's progress: back-test i of the plan, then the coalitions."""
        if stage == "back-test":
            plan = [JOINT, "own", ETS, NAIVE]
            label = f"backtest_{plan[done]}" if done < total else "coalitions"
            self._close_mark(label)
        elif stage == "coalitions" and done == total:
            self._close_mark("fit_seal_release_commit")


def warm_up(scenario: Scenario, spec: TaskSpec) -> float:
    """One window of the joint model and of AutoETS on the parties' Parquet files (untimed
    in every figure): library imports, OpenMP start-up, numba compilation of AutoETS."""
    start = time.perf_counter()
    tables = {}
    for ds in spec.datasets:
        config = scenario.parties[ds.party]
        source = open_source(config.sources[ds.source], base_dir=scenario.party_dirs[ds.party])
        tables[ds.party] = pa.Table.from_batches(
            list(source.batches(expected_columns(spec, ds.party)))
        )
    panel = join_tables(spec, tables)
    recipe = base_recipe(spec, panel, spec.model.family)
    step = spec.evaluation.step(spec.model.horizon)
    own = recipe.with_covariates([], [])
    ets = Recipe.from_json({**own.to_json(), "family": "statsforecast-autoets"})
    for name, r in ((JOINT, recipe), (ETS, ets)):
        cross_validate(panel.frame, Candidate(name, r), panel.grid, windows=1, step=step)
    return time.perf_counter() - start


def run_direct(spec: TaskSpec, tables: dict[str, pa.Table]) -> tuple[Clock, dict[str, Any]]:
    """The same model code on the plaintext joined frame, in this process: nothing else."""
    panel = join_tables(spec, tables)
    clock = Clock()
    with clock("direct_backtest"):
        recipe = joint_recipe(spec, panel)
        cv = joint_backtest(spec, panel, recipe)
    with clock("direct_fit"):
        fit(panel.frame, recipe, panel.grid, JOINT)
    return clock, joint_metrics(spec, panel, cv)


def released_figures(report: Any) -> dict[str, Any]:
    """The quality figures as the parties received them."""
    model = report.released("model")
    baseline = report.released("baseline")
    baselines = {b["name"]: b["metrics"] for b in report.released("baselines") or []}
    contribution = report.released("contribution")
    if model is None or baseline is None or contribution is None or ETS not in baselines:
        raise SystemExit("a release lacks the model, baseline or contribution figures")
    joint, best, ets = model["metrics"], baseline["metrics"], baselines[ETS]
    return {
        "joint": joint,
        "best_single": {"name": baseline["name"], "family": baseline["family"], **best},
        "autoets": ets,
        "seasonal_naive": baselines.get(NAIVE),
        "joint_mase_vs_best_single": round(joint["mase"] / best["mase"], 4),
        "joint_mase_vs_autoets": round(joint["mase"] / ets["mase"], 4),
        "contribution": contribution["delta_mase"],
        "contribution_method": contribution["method"],
        "contribution_reference": contribution["reference"],
    }


def same_metrics(released: dict[str, float | None], scored: dict[str, float | None]) -> bool:
    for key, value in released.items():
        mine = scored.get(key)
        if value is None or mine is None:
            if value is not mine:
                return False
        elif not np.isclose(value, mine, rtol=1e-6, atol=0.0):
            return False
    return True


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_WINDOWS} windows, 1 repeat: about a minute"
    )
    parser.add_argument("--repeats", type=int, help="default 3 (1 with --quick)")
    args = parser.parse_args()
    began = time.perf_counter()
    with stdout_to_stderr():
        summary = measure(args.quick, args.repeats or (1 if args.quick else 3))
    summary["wall_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary), flush=True)


def measure(quick: bool, repeats: int) -> dict[str, Any]:
    base = load_scenario(bundled_scenario())
    windows = QUICK_WINDOWS if quick else base.spec.evaluation.windows
    spec = task_copy(base.spec, windows)
    scenario = replace(base, spec=spec)
    h = spec.model.horizon
    step = spec.evaluation.step(h)
    _say(f"{spec.model.family}, {windows} windows of {h} (step {step}), {repeats} repeat(s)")
    warmup = warm_up(scenario, spec)
    _say(f"warm-up {warmup:.1f} s")

    wall: list[dict[str, float]] = []
    cpu: list[dict[str, float]] = []
    breakdowns: list[dict[str, float]] = []
    figures: list[dict[str, Any]] = []
    matches: list[bool] = []
    per_repeat: list[float] = []
    load = [round(os.getloadavg()[0], 2)]
    rows: dict[str, int] = {}
    for r in range(repeats):
        world = BenchConsortium(scenario)
        report = world.run(until="trained")
        if report.state != "Trained" or world.trained is None:
            raise SystemExit(f"the task ended {report.state}, not Trained")
        if not all(p.commitment_matched for p in report.parties):
            raise SystemExit("a commitment did not match on chain")
        rows = {p.name: p.rows_sent for p in sorted(report.parties, key=lambda p: p.name)}
        direct, direct_metrics = run_direct(spec, world.tables)
        released = released_figures(report)
        figures.append(released)
        matches.append(
            same_metrics(released["joint"], world.chrono_metrics)
            and same_metrics(released["joint"], direct_metrics)
        )
        w = {**world.clock.wall, **direct.wall}
        c = {**world.clock.cpu, **direct.cpu}
        w["release_fetch"] = w.pop("train_and_fetch") - w["full_analysis"]
        c["release_fetch"] = c.pop("train_and_fetch") - c["full_analysis"]
        for d in (w, c):
            d["chronoseal_joint"] = sum(d[k] for k in JOINT_PHASES)
            d["chronoseal_full_analysis"] = d["stream"] + d["full_analysis"]
            d["direct_joint"] = sum(d[k] for k in DIRECT_PHASES)
        wall.append(w)
        cpu.append(c)
        breakdowns.append(world.breakdown)
        per_repeat.append(round(w["chronoseal_joint"] / w["direct_joint"], 3))
        load.append(round(os.getloadavg()[0], 2))
        _say(
            f"repeat {r + 1}/{repeats} (s): chronoseal "
            + ", ".join(f"{k} {w[k]:.2f}" for k in JOINT_PHASES)
            + f"; full analysis {w['full_analysis']:.2f}; direct "
            + ", ".join(f"{k} {w[k]:.2f}" for k in DIRECT_PHASES)
            + f"; overhead_joint {per_repeat[-1]}"
        )

    keys = list(wall[0])
    seconds = {k: round(median(wall, k), 3) for k in keys}
    cpu_seconds = {k: round(median(cpu, k), 3) for k in keys}
    breakdown = {k: round(median(breakdowns, k), 3) for k in breakdowns[0]}
    first = figures[0]
    return {
        "bench": "analysis",
        "quick": quick,
        "windows": windows,
        "horizon": h,
        "step_size": step,
        "level": spec.evaluation.level,
        "family": spec.model.family,
        "repeats": repeats,
        "rows": rows,
        **first,
        "metrics_match_direct": all(matches),
        "releases_identical_across_repeats": all(f == first for f in figures),
        "overhead_joint": round(median(wall, "chronoseal_joint") / median(wall, "direct_joint"), 3),
        "overhead_full_analysis": round(
            median(wall, "chronoseal_full_analysis") / median(wall, "direct_joint"), 3
        ),
        "target_overhead_joint": TARGET_OVERHEAD,
        "overhead_joint_per_repeat": per_repeat,
        "overhead_joint_cpu": round(
            median(cpu, "chronoseal_joint") / median(cpu, "direct_joint"), 3
        ),
        "overhead_full_analysis_cpu": round(
            median(cpu, "chronoseal_full_analysis") / median(cpu, "direct_joint"), 3
        ),
        "baseline": BASELINE,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "full_analysis_breakdown": breakdown,
        "warmup_seconds": round(warmup, 3),
        "load_average_1min": load,
    }


if __name__ == "__main__":
    main()
