"""Training at size: the back-test split into window jobs gives the libraries' own answer on
any number of worker processes, the fits run are the fits the spec announces, local
baselines fit on a bounded window (MSTL where ETS cannot model the season), the value of
many providers is a sampled Shapley estimate within its stated error, and thread counts
follow the container's CPU quota."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from panels import synthetic_panel, synthetic_task

from chronoseal.analysis import analyse, build_releases, sampled_shapley, shapley
from chronoseal.analysis._analyse import base_recipe
from chronoseal.analysis._pool import WindowPool, backtest_jobs
from chronoseal.errors import ConfigError, SpecError
from chronoseal.model import Candidate, Recipe, available_cores, cgroup_cpu_limit, cross_validate
from chronoseal.spec import parse_spec, permutations, planned_fits, value_coalitions


def _sorted(cv: pd.DataFrame) -> pd.DataFrame:
    return cv.sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True)


@pytest.mark.parametrize("family", ["mlforecast-lightgbm", "statsforecast-autoets"])
def test_window_jobs_on_two_workers_give_the_librarys_cross_validation(family: str) -> None:
    spec, panel = synthetic_panel(series=2, periods=300, windows=3)
    recipe = Recipe.from_json({**base_recipe(spec, panel, family).to_json(), "family": family})
    candidate = Candidate("m", recipe)
    whole = cross_validate(panel.frame, candidate, panel.grid, windows=3, step=7)
    jobs = backtest_jobs("k", "g", candidate, 3, 7)
    with WindowPool(panel.frame, panel.grid, workers=2, cores=2) as pool:
        parts = pool.run(jobs)
    split = pd.concat([parts["k", i] for i in range(3)], ignore_index=True)
    pd.testing.assert_frame_equal(_sorted(split), _sorted(whole), check_exact=True)


def test_the_analysis_runs_the_fits_the_spec_announces() -> None:
    spec, panel = synthetic_panel(providers=2, windows=2)
    result = analyse(spec, panel, workers=2)
    assert result.cost is not None
    assert result.cost.fits == planned_fits(spec)
    assert result.fits == sum(planned_fits(spec).values())
    assert result.cost.workers == 2
    assert set(result.cost.phases) >= {"differences", "back-test", "score", "fit"}
    assert all(seconds >= 0 for seconds in result.cost.phases.values())
    doc = build_releases(spec, result, task_id=b"\x01" * 32, model_commitment=b"\x02" * 32)
    released = doc.documents["owner"]
    assert released["cost"]["fits"] == planned_fits(spec)
    assert [b["input_size"] for b in released["baselines"]] == [None, 140, 140]


def test_progress_counts_every_window_job_then_the_final_fit() -> None:
    spec, panel = synthetic_panel(providers=1, windows=2)
    seen: list[tuple[str, int, int]] = []
    analyse(spec, panel, lambda *step: seen.append(step), workers=1)
    jobs = planned_fits(spec)
    total = sum(v for k, v in jobs.items() if k not in ("differences", "final"))
    back = [s for s in seen if s[0] == "back-test"]
    assert back[0] == ("back-test", 0, total) and back[-1] == ("back-test", total, total)
    assert [d for _, d, _ in back] == list(range(total + 1))
    assert seen[-1] == ("fit", 1, 1)


def test_local_models_fit_on_a_window_derived_from_season_and_horizon() -> None:
    daily, _ = synthetic_task(season=7, horizon=14)
    assert daily.model.input_size() == 140  # 20 weekly seasons
    assert daily.model.statistical_baseline() == "statsforecast-autoets"
    half_hourly, _ = synthetic_task(freq="30min", season=48, horizon=48, periods=2000)
    assert half_hourly.model.input_size() == 960  # 20 days of 48 half-hours
    assert half_hourly.model.statistical_baseline() == "statsforecast-mstl"
    given, _ = synthetic_task(local_input_size=500)
    assert given.model.input_size() == 500


def test_a_long_season_task_is_scored_against_mstl_on_its_window() -> None:
    spec, panel = synthetic_panel(
        providers=1, freq="30min", season=48, horizon=48, periods=48 * 40, windows=2
    )
    result = analyse(spec, panel, workers=1)
    names = {s.name: s for s in result.baselines}
    assert set(names) == {"own", "MSTL", "SeasonalNaive"}
    assert names["MSTL"].family == "statsforecast-mstl"
    assert names["MSTL"].input_size == 960
    assert names["own"].input_size is None  # LightGBM is global: all of the history
    assert math.isfinite(names["MSTL"].metrics["mase"] or math.nan)


def test_autoets_with_a_season_it_cannot_model_is_refused_by_the_spec() -> None:
    spec, _ = synthetic_task(freq="30min", season=48, horizon=48)
    raw = spec.model_dump(mode="json")
    raw["model"]["family"] = "statsforecast-autoets"
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert any(p.location == "model.family" for p in caught.value.problems)
    assert "statsforecast-mstl" in str(caught.value)


def _game(players: list[str], seed: int) -> dict[frozenset[str], float]:
    """A game with pairwise interactions, so no estimate is exact by accident."""
    rng = np.random.default_rng(seed)
    weight = dict(zip(players, rng.normal(size=len(players)), strict=True))
    pair = {(a, b): rng.normal(scale=0.3) for a in players for b in players if a < b}
    out = {}
    for mask in range(1 << len(players)):
        s = frozenset(p for i, p in enumerate(players) if mask >> i & 1)
        out[s] = sum(weight[p] for p in s) + sum(v for (a, b), v in pair.items() if {a, b} <= s)
    return out


@pytest.mark.parametrize("n", [3, 5, 6])
def test_sampled_shapley_is_within_its_stated_error_of_the_exact_values(n: int) -> None:
    players = [f"p{i}" for i in range(n)]
    for seed in range(5):
        game = _game(players, seed)
        exact = shapley(players, game.__getitem__)
        orders = permutations(players, 8, seed=seed)
        mean, error = sampled_shapley(orders, game.__getitem__)
        assert math.isclose(sum(mean.values()), game[frozenset(players)], abs_tol=1e-9)
        for p in players:
            assert abs(mean[p] - exact[p]) <= 4 * error[p] + 1e-9


def test_the_sample_reuses_its_coalitions_and_is_the_same_every_run() -> None:
    players = [f"p{i}" for i in range(7)]
    assert value_coalitions(players) == value_coalitions(players)
    coalitions = value_coalitions(players)
    assert len(coalitions) <= 8 * 6 and frozenset() not in coalitions
    assert frozenset(players) not in coalitions
    assert len(value_coalitions(players[:5])) == 2**5 - 2


def test_beyond_five_other_providers_the_value_is_sampled_with_its_error() -> None:
    spec, panel = synthetic_panel(providers=6, windows=1, periods=250)
    result = analyse(spec, panel, workers=2)
    c = result.contribution
    assert c is not None and c.method == "shapley-sampled"
    assert c.standard_error is not None and set(c.standard_error) == {f"p{i}" for i in range(6)}
    joint, naive = result.joint.metrics["mase"], result.baselines[2].metrics["mase"]
    assert joint is not None and naive is not None
    assert math.isclose(sum(c.delta_mase.values()), joint - naive, abs_tol=1e-6)
    released = build_releases(spec, result, task_id=b"\x01" * 32, model_commitment=b"\x02" * 32)
    assert set(released.documents["owner"]["contribution"]["standard_error"]) == set(
        c.standard_error
    )


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    tmp_path.mkdir()
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


def test_threads_follow_the_containers_cpu_quota(tmp_path: Path) -> None:
    assert available_cores(_cgroup(tmp_path / "a", v2="150000 100000"), affinity=8, environ={}) == 2
    assert available_cores(_cgroup(tmp_path / "b", v2="max 100000"), affinity=8, environ={}) == 8
    assert (
        available_cores(_cgroup(tmp_path / "c", v1=(100000, 100000)), affinity=8, environ={}) == 1
    )
    assert available_cores(_cgroup(tmp_path / "d", v1=(-1, 100000)), affinity=3, environ={}) == 3
    assert cgroup_cpu_limit(_cgroup(tmp_path / "e", v2="50000 100000")) == 0.5
    # an operator's cap below the quota wins; the affinity mask bounds everything
    assert available_cores(tmp_path / "none", affinity=4, environ={"CHRONOSEAL_CORES": "3"}) == 3
    assert available_cores(tmp_path / "none", affinity=2, environ={"CHRONOSEAL_CORES": "16"}) == 2


@pytest.mark.parametrize("cap", ["0", "-2", "two"])
def test_a_nonsense_core_cap_is_refused(cap: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        available_cores(tmp_path, affinity=2, environ={"CHRONOSEAL_CORES": cap})
    assert caught.value.id == "analysis.cores.invalid"


def test_each_worker_gets_its_share_of_the_cores() -> None:
    _, panel = synthetic_panel(providers=0, windows=1, contribution=False)
    assert WindowPool(panel.frame, panel.grid, workers=2, cores=2).threads_per_job == 1
    assert WindowPool(panel.frame, panel.grid, workers=2, cores=8).threads_per_job == 4
    assert WindowPool(panel.frame, panel.grid, workers=4, cores=2).threads_per_job == 1
