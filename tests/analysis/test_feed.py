"""The plan as it is handed to the workers: the differencing trials (the gate) first, then
the longest ready job, and the jobs that use the chosen differences only once every trial
is in; the choice and the released metrics are those of one process."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from panels import synthetic_panel

from chronoseal.analysis import analyse
from chronoseal.analysis._analyse import base_recipe
from chronoseal.analysis._pool import Feed, WindowJob, WindowPool, backtest_jobs
from chronoseal.model import Candidate, Recipe


def _job(key: str, family: str, series: int, group: str = "g", **kw: object) -> WindowJob:
    spec, panel = synthetic_panel(series=1)
    recipe = Recipe.from_json({**base_recipe(spec, panel, family).to_json(), "family": family})
    ids = tuple(f"s{i}" for i in range(series))
    return WindowJob(key, group, Candidate(key, recipe, series=ids, **kw), 0, 0)  # type: ignore[arg-type]


def test_the_gate_goes_first_then_the_longest_and_the_decided_jobs_after_the_gate() -> None:
    naive = _job("naive", "seasonal-naive", 500)
    ets = _job("ets", "statsforecast-autoets", 250)
    small_ets = _job("small-ets", "statsforecast-autoets", 10)
    trials = [_job(f"trial-{i}", "mlforecast-lightgbm", 10, intervals=False) for i in range(2)]
    joint = _job("joint", "mlforecast-lightgbm", 1000)
    seen: list[dict[tuple[str, int], pd.DataFrame]] = []

    def then(frames: dict[tuple[str, int], pd.DataFrame]) -> list[WindowJob]:
        seen.append(frames)
        return [joint]

    feed = Feed([naive, small_ets, ets], series=1000, rows_per_series=700.0, gate=trials, then=then)
    order: list[str] = []
    while not feed.finished:
        job = feed.next()
        assert job is not None
        order.append(job.key)
        feed.done(job, pd.DataFrame({"job": [job.key]}))
    # the trials, though the shortest, first; the decided joint once both are in; the
    # rest longest first; every frame returned
    assert order[:2] == ["trial-0", "trial-1"]
    assert [sorted(k for k, _ in f) for f in seen] == [["trial-0", "trial-1"]]
    assert order[2:] == ["ets", "joint", "small-ets", "naive"]
    assert sorted(k for k, _ in feed.frames()) == sorted(order)
    assert feed.total == 6


def test_a_feed_holds_back_nothing_once_its_gate_is_done() -> None:
    jobs = [_job("ets", "statsforecast-autoets", 20), _job("naive", "seasonal-naive", 20)]
    gate = [_job("trial-0", "mlforecast-lightgbm", 20, intervals=False)]
    feed = Feed(jobs, series=20, rows_per_series=300.0, gate=gate, then=lambda _: [])
    first = feed.next()
    assert first is not None and first.key == "trial-0"
    second = feed.next()  # the gate's job is out: the others go out beside it
    assert second is not None and second.key == "ets"
    feed.done(first, pd.DataFrame())
    feed.done(second, pd.DataFrame())
    assert not feed.finished
    last = feed.next()
    assert last is not None and last.key == "naive" and feed.next() is None
    feed.done(last, pd.DataFrame())
    assert feed.finished


@pytest.mark.parametrize("family", ["mlforecast-lightgbm", "statsforecast-autoets"])
def test_two_workers_choose_the_differences_and_release_the_metrics_of_one_process(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, panel = synthetic_panel(providers=2, series=3, periods=300, windows=2, family=family)
    alone = analyse(spec, panel, workers=1)
    sent: list[WindowJob] = []
    real = WindowPool.run

    def recording(self: WindowPool, jobs: list[WindowJob], *a: object, **kw: object) -> object:
        sent.extend(jobs)
        sent.extend(kw.get("gate", ()))  # type: ignore[call-overload]
        return real(self, jobs, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(WindowPool, "run", recording)
    spread = analyse(spec, panel, workers=2, cores=2)
    assert spread.recipe.differences == alone.recipe.differences
    assert spread.joint.metrics == alone.joint.metrics
    assert [b.metrics for b in spread.baselines] == [b.metrics for b in alone.baselines]
    assert spread.contribution == alone.contribution
    assert spread.cost is not None and alone.cost is not None
    assert spread.cost.fits == alone.cost.fits
    # a job names its series and recipe, never the panel: it is a small fraction of it
    panel_bytes = len(pickle.dumps(panel.frame))
    assert sent and max(len(pickle.dumps(j)) for j in sent) < panel_bytes / 20


def test_the_trials_are_jobs_of_the_gate_and_not_of_the_progress() -> None:
    spec, panel = synthetic_panel(providers=1, windows=2)
    seen: list[tuple[str, int, int]] = []
    result = analyse(spec, panel, lambda *step: seen.append(step), workers=2, cores=2)
    assert result.cost is not None
    assert result.cost.fits["differences"] == 3  # season 7: none, lag 1, lag 7
    back = [s for s in seen if s[0] == "back-test"]
    total = back[0][2]
    assert total == sum(v for k, v in result.cost.fits.items() if k not in ("differences", "final"))
    assert [d for _, d, _ in back] == list(range(total + 1))
    assert {"panel", "differences", "back-test"} <= set(result.cost.phases)


def test_backtest_jobs_are_unchanged_by_the_feed() -> None:
    spec, panel = synthetic_panel(series=2, periods=300, windows=3)
    candidate = Candidate("m", base_recipe(spec, panel, "mlforecast-lightgbm"))
    jobs = backtest_jobs("k", "g", candidate, 3, 7)
    with WindowPool(panel.frame, panel.grid, workers=1, cores=1) as pool:
        frames = pool.run(jobs)
    assert sorted(frames) == [("k", 0), ("k", 1), ("k", 2)]
