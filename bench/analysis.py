"""Analysis quality and overhead on the bundled Chicago task, vs the same model on plaintext.

One run measures two things.

* **Quality, as released.** A real :class:`~chronoseal.node.DemoConsortium` run of the task
  through ``trained`` (deploy, propose, approve, attested runtime, three gateways streaming
  over mutual RA-TLS, analysis, commitment, every party fetching its release). The figures
  are what the parties received: the joint model's metrics, the best single-party model's,
  statsforecast's AutoETS on the target alone (all on the same folds) and each data
  provider's contribution (Shapley value of the MASE change). They are checked against the
  runtime's own :class:`~chronoseal.analysis.AnalysisResult`.
* **Overhead of the joint model.** ``chronoseal``: a DemoConsortium run of a copy of the task
  without ``[release] contribution`` whose runtime, once every stream is in and every
  commitment matched on chain, does only the joint model's work with the same public pieces
  :meth:`AnalysisRuntime.analyse` uses, each phase timed: ``join`` (the received tables →
  ``join_tables``), ``recipe`` (``choose_differences``: LightGBM's differencing is chosen
  on a hold-out before the first fold), ``backtest`` (``cross_validate`` of the joint
  candidate, with conformal intervals), ``fit``, ``seal_commit`` (scoring, ``seal``,
  ``commitment``, ``build_releases``, the on-chain model commitment). ``stream`` is the
  runtime's start (attestation on chain) through every gateway's stream and both sides'
  commitments on chain. ``direct``: the same ``cross_validate(frame, Candidate("joint",
  recipe), grid, windows=..., step=...)`` + ``fit(...)`` in the same process on the same
  ``join_tables`` output frame with the chosen recipe, and nothing else. The two alternate
  run by run (machine load hits them alike); figures are medians.

``overhead_joint`` = chronoseal (stream + join + recipe + backtest + fit + seal_commit) /
direct (backtest + fit). ``overhead_full_analysis`` = (stream + the whole
``runtime.analyse()`` of the task as written: joint model, the three single-party baselines,
the coalition back-tests for the contributions, fit, seal, commit) / direct: what the task
costs compared with fitting only the joint model by hand. Consortium set-up (deploy, propose,
approve) is timed (``setup``) but in neither ratio.

    python bench/analysis.py --quick    # 4 evaluation windows, 2 repeats, 1 full analysis
    python bench/analysis.py            # the task's 13 windows, 3 repeats of each

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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from chronoseal.analysis import (
    AnalysisResult,
    AnalysisRuntime,
    Panel,
    Score,
    TrainedModel,
    build_releases,
    join_tables,
    score,
)
from chronoseal.analysis._analyse import ETS, JOINT, base_recipe
from chronoseal.gateway import Gateway
from chronoseal.ledger import TaskState
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
from chronoseal.spec import TaskSpec

QUICK_WINDOWS = 4
TARGET_OVERHEAD = 1.3
JOINT_PHASES = ("stream", "join", "recipe", "backtest", "fit", "seal_commit")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Anything a library writes to stdout (fd 1) goes to stderr while the bench runs, so
    the JSON line is the only thing on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def task_copy(spec: TaskSpec, *, windows: int | None, contribution: bool) -> TaskSpec:
    raw = spec.model_dump()
    if windows is not None:
        raw["evaluation"]["windows"] = windows
    if not contribution:
        raw["release"]["contribution"] = None
    return TaskSpec.model_validate(raw)


def first_cutoffs(spec: TaskSpec, panel: Panel) -> pd.Series:
    """Each series' first forecast origin (as the runtime computes it for the recipe)."""
    h = spec.model.horizon
    back = h + spec.evaluation.step(h) * (spec.evaluation.windows - 1)
    last = panel.frame.groupby(ID, sort=True)[DS].max()
    offset = to_offset(panel.grid.pandas)
    return last.map(lambda t: t - back * offset)


@dataclass
class JointRun:
    """What the joint-only runtime produced, for the direct run and the checks."""

    seconds: dict[str, float] = field(default_factory=dict)
    panel: Panel | None = None
    recipe: Recipe | None = None
    cv: pd.DataFrame | None = None


class TimedConsortium(DemoConsortium):
    """The demo consortium, with the stream phase timed and, for ``joint_only``, a runtime
    that does only the joint model's work (each phase timed) instead of ``analyse()``."""

    def __init__(self, scenario: Scenario, *, joint_only: bool) -> None:
        self.started = time.perf_counter()
        super().__init__(scenario, log=lambda _line: None)
        self.joint_only = joint_only
        self.run_data = JointRun()
        self.trained: TrainedModel | None = None
        self._stream_start = 0.0

    def stream(self, train: bool = True) -> Any:
        self._stream_start = time.perf_counter()
        self.run_data.seconds["setup"] = self._stream_start - self.started
        return super().stream(train)

    def train(self, runtime: AnalysisRuntime, gateways: list[Gateway]) -> dict[str, dict[str, Any]]:
        seconds = self.run_data.seconds
        seconds["stream"] = time.perf_counter() - self._stream_start
        if self.joint_only:
            self._joint(runtime)
            return {}
        analyse = runtime.analyse

        def timed(progress: Any = None) -> TrainedModel:
            start = time.perf_counter()
            self.trained = analyse(progress)
            seconds["analyse"] = time.perf_counter() - start
            return self.trained

        runtime.analyse = timed  # type: ignore[method-assign]
        return super().train(runtime, gateways)

    def _joint(self, runtime: AnalysisRuntime) -> None:
        spec, seconds, out = self.spec, self.run_data.seconds, self.run_data
        phase = _Phases(seconds)
        with phase("join"):
            _await_matched(self, runtime)
            tables = {party: intake.table() for party, intake in runtime.state.parties.items()}
            panel = join_tables(spec, tables)
        with phase("recipe"):
            recipe = base_recipe(spec, panel, spec.model.family)
            recipe = choose_differences(panel.frame, recipe, panel.grid, first_cutoffs(spec, panel))
        windows, step = spec.evaluation.windows, spec.evaluation.step(spec.model.horizon)
        with phase("backtest"):
            cv = cross_validate(
                panel.frame, Candidate(JOINT, recipe), panel.grid, windows=windows, step=step
            )
        with phase("fit"):
            fitted = fit(panel.frame, recipe, panel.grid, JOINT)
        with phase("seal_commit"):
            targets = panel.target_series()
            cv_target = cv[cv[ID].isin(targets)].reset_index(drop=True)
            train = panel.frame[panel.frame[ID].isin(targets)][[ID, DS, "y"]]
            metrics = list(dict.fromkeys(["mase", *spec.evaluation.metrics]))
            joint = Score(
                JOINT,
                spec.model.family,
                sorted(spec.data_providers()),
                score(
                    cv_target,
                    [JOINT],
                    train,
                    metrics=metrics,
                    season_length=spec.model.season_length,
                    level=spec.evaluation.level,
                )[JOINT],
            )
            result = AnalysisResult(
                family=spec.model.family,
                recipe=recipe,
                joint=joint,
                baselines=[],
                best_single=joint,
                contribution=None,
                backtest=cv_target,
                anomalies=None,
                cutoffs=sorted({pd.Timestamp(c).isoformat() for c in cv_target["cutoff"]}),
                series=int(panel.frame[ID].nunique()),
                rows=len(panel.frame),
                dropped_series=0,
                fitted=fitted,
                fits=windows + 1,
            )
            bundle = seal(fitted, task_id=self.task_id, name=JOINT)
            digest = commitment(bundle)
            releases = build_releases(spec, result, task_id=self.task_id, model_commitment=digest)
            runtime.session.post_model_commitment(self.task_id, digest, releases.digest)
        if self.consortium.task(self.task_id).state is not TaskState.TRAINED:
            raise SystemExit("the joint-only run did not reach Trained on chain")
        out.panel, out.recipe, out.cv = panel, recipe, cv


class _Phases:
    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start


def _await_matched(world: DemoConsortium, runtime: AnalysisRuntime, timeout: float = 60) -> None:
    """As the runtime does before it trains: every commitment matched on chain."""
    deadline = time.monotonic() + timeout
    while True:
        view = world.consortium.task(runtime.task_id)
        if view.state is TaskState.RUNNING and view.matched_commitments == view.providers:
            return
        if view.state is not TaskState.RUNNING or time.monotonic() > deadline:
            raise SystemExit(
                f"task {view.state.name}: {view.matched_commitments} of {view.providers} "
                "commitments matched"
            )
        time.sleep(0.05)


# ---------------------------------------------------------------- the three kinds of run


def run_full(scenario: Scenario) -> tuple[dict[str, float], Any, AnalysisResult]:
    world = TimedConsortium(scenario, joint_only=False)
    report = world.run(until="trained")
    if report.state != "Trained" or world.trained is None:
        raise SystemExit(f"the full run ended {report.state}, not Trained")
    if not all(p.commitment_matched for p in report.parties):
        raise SystemExit("a commitment did not match on chain")
    return world.run_data.seconds, report, world.trained.result


def run_joint(scenario: Scenario) -> JointRun:
    world = TimedConsortium(scenario, joint_only=True)
    report = world.run(until="trained")
    if report.state != "Trained" or world.run_data.cv is None:
        raise SystemExit(f"the joint-only run ended {report.state}, not Trained")
    return world.run_data


def run_direct(spec: TaskSpec, joint: JointRun) -> tuple[dict[str, float], pd.DataFrame]:
    """The same model code on the plaintext joined frame, in this process: nothing else."""
    assert joint.panel is not None and joint.recipe is not None
    frame, grid, recipe = joint.panel.frame, joint.panel.grid, joint.recipe
    windows, step = spec.evaluation.windows, spec.evaluation.step(spec.model.horizon)
    start = time.perf_counter()
    cv = cross_validate(frame, Candidate(JOINT, recipe), grid, windows=windows, step=step)
    mid = time.perf_counter()
    fit(frame, recipe, grid, JOINT)
    end = time.perf_counter()
    return {"backtest": mid - start, "fit": end - mid}, cv


# ---------------------------------------------------------------- figures


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def quality(report: Any, result: AnalysisResult) -> dict[str, Any]:
    """The figures as the parties received them, checked against the runtime's result."""
    model = report.released("model")
    baseline = report.released("baseline")
    baselines = report.released("baselines")
    contribution = report.released("contribution")
    if model is None or baseline is None or baselines is None or contribution is None:
        raise SystemExit("a release lacks the model, baseline or contribution figures")
    autoets = next(b for b in baselines if b["name"] == ETS)
    released_ets = next(s for s in result.baselines if s.name == ETS)
    for released, own in (
        (model["metrics"], result.joint.metrics),
        (baseline["metrics"], result.best_single.metrics),
        (autoets["metrics"], released_ets.metrics),
    ):
        for key, value in released.items():
            mine = own.get(key)
            if (value is None) != (mine is None) or (
                value is not None and not np.isclose(value, mine, rtol=1e-6)
            ):
                raise SystemExit(f"released {key} = {value} but the runtime scored {mine}")
    assert result.contribution is not None
    for party, value in contribution["delta_mase"].items():
        if not np.isclose(value, result.contribution.delta_mase[party], rtol=1e-6):
            raise SystemExit(f"released contribution of {party} differs from the runtime's")

    def metrics(m: dict[str, float | None]) -> dict[str, float | None]:
        return {k: _round(v) for k, v in m.items()}

    joint_mase = model["metrics"]["mase"]
    return {
        "joint": {"family": model["family"], **metrics(model["metrics"])},
        "best_single": {
            "name": baseline["name"],
            "family": baseline["family"],
            **metrics(baseline["metrics"]),
        },
        "autoets": {"family": autoets["family"], **metrics(autoets["metrics"])},
        "baselines": {b["name"]: metrics(b["metrics"]) for b in baselines},
        "mase_ratio_vs_best_single": _round(joint_mase / baseline["metrics"]["mase"]),
        "mase_ratio_vs_autoets": _round(joint_mase / autoets["metrics"]["mase"]),
        "contribution": {p: _round(v) for p, v in contribution["delta_mase"].items()},
        "contribution_method": {
            "method": contribution["method"],
            "reference": contribution["reference"],
            "coalitions": contribution["coalitions"],
        },
        "folds": {
            "cutoffs": len(result.cutoffs),
            "first": result.cutoffs[0],
            "last": result.cutoffs[-1],
            "rows": result.rows,
            "fits": result.fits,
        },
    }


def same_forecasts(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest absolute difference between two back-tests' joint forecasts (0 = identical)."""
    keys = [ID, DS, "cutoff"]
    cols = [c for c in a.columns if c == JOINT or c.startswith(JOINT + "-")]
    left = a.sort_values(keys).reset_index(drop=True)
    right = b.sort_values(keys).reset_index(drop=True)
    if len(left) != len(right) or not left[keys].equals(right[keys]):
        return float("inf")
    return float(np.max(np.abs(left[cols].to_numpy() - right[cols].to_numpy())))


def med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_WINDOWS} windows, 2 repeats, 1 full"
    )
    parser.add_argument("--repeats", type=int, help="joint/direct pairs (default 3; quick 2)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    full_runs = 1 if args.quick else repeats
    began = time.perf_counter()
    with stdout_to_stderr():
        summary = measure(args.quick, repeats, full_runs)
    summary["wall_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary), flush=True)


def measure(quick: bool, repeats: int, full_runs: int) -> dict[str, Any]:
    base = load_scenario(bundled_scenario())
    windows = QUICK_WINDOWS if quick else base.spec.evaluation.windows
    full_spec = task_copy(base.spec, windows=windows, contribution=True)
    joint_spec = task_copy(base.spec, windows=windows, contribution=False)
    full_scenario = replace(base, spec=full_spec)
    joint_scenario = replace(base, spec=joint_spec)
    _say(
        f"analysis bench: {windows} windows of {base.spec.model.horizon} days, "
        f"{repeats} joint/direct pairs, {full_runs} full analysis run(s)"
    )

    full: list[dict[str, float]] = []
    chrono: list[dict[str, float]] = []
    direct: list[dict[str, float]] = []
    figures: dict[str, Any] | None = None
    chosen: dict[str, Any] | None = None
    max_diff = 0.0
    for r in range(repeats):
        if r < full_runs:
            seconds, report, result = run_full(full_scenario)
            full.append(seconds)
            _say(
                f"[{r + 1}/{repeats}] full analysis: stream {seconds['stream']:.2f} s, "
                f"analyse {seconds['analyse']:.2f} s ({result.fits} back-test fits)"
            )
            if figures is None:
                figures = quality(report, result)
                chosen = result.recipe.to_json()
        joint = run_joint(joint_scenario)
        chrono.append(joint.seconds)
        _say(
            f"[{r + 1}/{repeats}] chronoseal joint: "
            + ", ".join(f"{k} {joint.seconds[k]:.2f} s" for k in JOINT_PHASES)
        )
        seconds, cv = run_direct(joint_spec, joint)
        direct.append(seconds)
        assert joint.cv is not None and joint.recipe is not None
        max_diff = max(max_diff, same_forecasts(joint.cv, cv))
        if chosen is not None and joint.recipe.to_json() != chosen:
            raise SystemExit("the joint-only run chose another recipe than the full analysis")
        _say(
            f"[{r + 1}/{repeats}] direct: backtest {seconds['backtest']:.2f} s, "
            f"fit {seconds['fit']:.2f} s"
        )
    assert figures is not None

    for runs, keys in ((chrono, JOINT_PHASES), (direct, ("backtest", "fit"))):
        for s in runs:
            s["total"] = sum(s[k] for k in keys)
    for s in full:
        s["total"] = s["stream"] + s["analyse"]
    direct_total = med(direct, "total")
    chrono_total = med(chrono, "total")
    full_total = med(full, "total")
    pieces = med(chrono, "backtest") + med(chrono, "fit")
    seconds = {
        "chronoseal_joint": {k: round(med(chrono, k), 3) for k in ("setup", *JOINT_PHASES)},
        "direct": {k: round(med(direct, k), 3) for k in ("backtest", "fit")},
        "full_analysis": {k: round(med(full, k), 3) for k in ("setup", "stream", "analyse")},
    }
    seconds["chronoseal_joint"]["total"] = round(chrono_total, 3)
    seconds["direct"]["total"] = round(direct_total, 3)
    seconds["full_analysis"]["total"] = round(full_total, 3)
    share = {k: round(med(chrono, k) / chrono_total, 3) for k in JOINT_PHASES}
    return {
        "bench": "analysis",
        "quick": quick,
        "windows": windows,
        "horizon": base.spec.model.horizon,
        "family": base.spec.model.family,
        "repeats": repeats,
        "full_analysis_runs": full_runs,
        **figures,
        "overhead_joint": round(chrono_total / direct_total, 3),
        "overhead_full_analysis": round(full_total / direct_total, 3),
        "overhead_backtest_fit": round(pieces / direct_total, 3),
        "target_overhead_joint": TARGET_OVERHEAD,
        "same_forecasts_max_abs_diff": max_diff,
        "seconds": seconds,
        "share_of_chronoseal_joint": share,
        "runs": {
            "chronoseal_joint": [round(s["total"], 3) for s in chrono],
            "direct": [round(s["total"], 3) for s in direct],
            "full_analysis": [round(s["total"], 3) for s in full],
        },
    }


if __name__ == "__main__":
    main()
