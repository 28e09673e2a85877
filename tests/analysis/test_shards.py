"""A local model's back-test cut by series: every shard fits its series alone, so the
concatenated shards are the unsharded window frame to the last bit, the released metrics
are the single-process ones, a fit is still one (candidate, window), and a global model is
never cut."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import rfc8785
from panels import synthetic_panel

from chronoseal.analysis import _pool, analyse, build_releases
from chronoseal.analysis._analyse import base_recipe
from chronoseal.analysis._pool import WindowPool, backtest_jobs, shard_count
from chronoseal.model import Candidate, Recipe
from chronoseal.spec import planned_fits


def _released(spec: object, result: object) -> str:
    """The released documents without their cost section and per-release nonce."""
    releases = build_releases(spec, result, task_id=b"\x01" * 32, model_commitment=b"\x02" * 32)  # type: ignore[arg-type]
    docs = {
        party: {k: v for k, v in doc.items() if k not in {"cost", "nonce"}}
        for party, doc in releases.documents.items()
    }
    return hashlib.sha256(rfc8785.dumps(json.loads(json.dumps(docs, default=str)))).hexdigest()


@pytest.mark.parametrize("shards", [2, 3, 5])
@pytest.mark.parametrize("family", ["statsforecast-autoets", "seasonal-naive"])
@pytest.mark.parametrize("intervals", [True, False])
def test_shards_concatenated_are_the_unsharded_window(
    family: str, shards: int, intervals: bool
) -> None:
    spec, panel = synthetic_panel(series=5, periods=200, windows=2)
    recipe = Recipe.from_json({**base_recipe(spec, panel, family).to_json(), "family": family})
    candidate = Candidate("m", recipe, intervals=intervals)
    series = sorted(panel.frame["unique_id"].unique())
    with WindowPool(panel.frame, panel.grid, workers=1, cores=1) as pool:
        whole = pool.run(backtest_jobs("k", "g", candidate, 2, 7))
        jobs = backtest_jobs("k", "g", candidate, 2, 7, series, shards)
        assert len(jobs) == 2 * shards and sum(j.counts_fit for j in jobs) == 2
        cut = pool.run(jobs)
    assert sorted(cut) == sorted(whole)
    for at, frame in whole.items():
        pd.testing.assert_frame_equal(cut[at], frame, check_exact=True)


def test_a_sharded_analysis_releases_the_single_process_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, panel = synthetic_panel(providers=2, series=4, periods=300, windows=2)
    alone = analyse(spec, panel, workers=1)
    monkeypatch.setattr(_pool, "MIN_SERIES_PER_SHARD", 1)  # 4 series: 4 shards on 2 workers
    planned: list[int] = []
    real = WindowPool.run

    def counting(
        self: WindowPool, jobs: list[_pool.WindowJob], on_done: object = None, **kw: object
    ) -> object:
        planned.extend(j.shards for j in jobs)
        return real(self, jobs, on_done, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(WindowPool, "run", counting)
    spread = analyse(spec, panel, workers=2, cores=2)
    assert max(planned) == 4  # the local baselines were cut; the LightGBM jobs were not
    assert spread.joint.metrics == alone.joint.metrics
    assert [b.metrics for b in spread.baselines] == [b.metrics for b in alone.baselines]
    assert _released(spec, spread) == _released(spec, alone)
    assert spread.cost is not None and spread.cost.fits == planned_fits(spec)


@pytest.mark.parametrize(
    ("family", "series", "workers", "expected"),
    [
        ("statsforecast-autoets", 1000, 1, 1),  # one process: nothing changes
        ("statsforecast-autoets", 1000, 2, 4),
        ("statsforecast-autoets", 120, 2, 2),  # at least 50 series a shard
        ("statsforecast-autoets", 49, 2, 1),
        ("seasonal-naive", 1000, 8, 16),
        ("mlforecast-lightgbm", 1000, 2, 1),  # a global model is never cut
    ],
)
def test_shard_count(family: str, series: int, workers: int, expected: int) -> None:
    spec, panel = synthetic_panel(series=1)
    recipe = Recipe.from_json({**base_recipe(spec, panel, family).to_json(), "family": family})
    assert shard_count(Candidate("m", recipe), series, workers) == expected


def test_a_global_model_is_refused_a_cut() -> None:
    spec, panel = synthetic_panel(series=2)
    candidate = Candidate("m", base_recipe(spec, panel, "mlforecast-lightgbm"))
    with pytest.raises(ValueError, match="not cut by series"):
        backtest_jobs("k", "g", candidate, 1, 7, ["a", "b"], 2)
