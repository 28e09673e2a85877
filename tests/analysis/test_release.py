"""Only what ``[release]`` allows leaves the runtime, each party can check what it got against
the chain's digest alone, and a document altered, swapped or meant for another party fails."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chronoseal.analysis import AnalysisResult, Contribution, Score, build_releases
from chronoseal.errors import AnalysisError
from chronoseal.model import verify_release
from chronoseal.spec import TaskSpec, load_spec, parse_spec

TASK = hashlib.sha256(b"task").digest()
MODEL = hashlib.sha256(b"model").digest()


def _result() -> AnalysisResult:
    metrics = {"mase": 0.55, "smape": 0.03, "rmse": 0.9, "coverage": 0.7}
    ds = pd.date_range("2016-07-01", periods=6, freq="D")
    backtest = pd.DataFrame(
        {
            "unique_id": "s",
            "ds": ds,
            "cutoff": [ds[0] - pd.Timedelta(days=1)] * 6,
            "y": 10.0,
            "joint": 10.5,
            "joint-lo-80": 9.0,
            "joint-hi-80": 11.0,
            "own": 10.2,
            "AutoETS": 9.9,
            "SeasonalNaive": 9.0,
        }
    )
    own = Score("own", "mlforecast-lightgbm", ["transit"], {**metrics, "mase": 0.58})
    return AnalysisResult(
        family="mlforecast-lightgbm",
        recipe=None,  # type: ignore[arg-type]
        joint=Score("joint", "mlforecast-lightgbm", ["events", "transit", "weather"], metrics),
        baselines=[own],
        best_single=own,
        contribution=Contribution(
            "shapley", "SeasonalNaive", {"transit": -0.5, "weather": -0.02, "events": -0.01}, 4
        ),
        backtest=backtest,
        anomalies=None,
        cutoffs=["2016-06-30T00:00:00"],
        series=1,
        rows=5698,
        dropped_series=0,
        fitted=None,  # type: ignore[arg-type]
    )


def _spec(example_task: Path, edit: Any = None) -> TaskSpec:
    spec = load_spec(example_task)
    if edit is None:
        return spec
    raw = tomllib.loads(example_task.read_text())  # the document as its parties wrote it
    edit(raw)
    return parse_spec(raw)


def test_each_party_gets_exactly_what_the_rules_name(example_task: Path) -> None:
    releases = build_releases(_spec(example_task), _result(), task_id=TASK, model_commitment=MODEL)
    docs = releases.documents
    assert set(docs) == {"transit", "weather", "events"}
    assert "backtest" in docs["transit"]  # the target's own actuals, to the target only
    assert "backtest" not in docs["events"] and "backtest" not in docs["weather"]
    assert docs["weather"]["model"]["metrics"] == {
        "mase": 0.55,
        "smape": 0.03,
        "rmse": 0.9,
        "coverage": 0.7,
    }
    assert docs["events"]["contribution"]["delta_mase"]["weather"] == -0.02
    assert len({d["nonce"] for d in docs.values()}) == 3


def test_metrics_not_named_are_not_released_nor_is_an_unnamed_party_served(
    example_task: Path,
) -> None:
    def narrow(raw: dict[str, Any]) -> None:
        raw["release"]["metrics"] = {"to": ["transit"], "which": ["mase"]}
        raw["release"]["contribution"] = None

    releases = build_releases(
        _spec(example_task, narrow), _result(), task_id=TASK, model_commitment=MODEL
    )
    assert releases.documents["transit"]["model"]["metrics"] == {"mase": 0.55}
    assert "contribution" not in releases.documents["transit"]
    assert "weather" not in releases.documents  # nothing for it: no document at all
    with pytest.raises(AnalysisError) as info:
        releases.for_party("weather")
    assert info.value.id == "analysis.release.nothing"


def _verify(payload: bytes, party: str, digest: bytes) -> dict[str, Any]:
    return verify_release(
        payload, party=party, task_id=TASK, metrics_digest=digest, model_commitment=MODEL
    )


def test_a_party_checks_its_release_against_the_chain_digest(example_task: Path) -> None:
    releases = build_releases(_spec(example_task), _result(), task_id=TASK, model_commitment=MODEL)
    for party in releases.documents:
        doc = _verify(releases.for_party(party), party, releases.digest)
        assert doc == releases.documents[party]


def test_altered_swapped_or_foreign_releases_fail(example_task: Path) -> None:
    releases = build_releases(_spec(example_task), _result(), task_id=TASK, model_commitment=MODEL)
    body = json.loads(releases.for_party("weather"))
    body["document"]["model"]["metrics"]["mase"] = 0.1
    with pytest.raises(AnalysisError) as info:
        _verify(json.dumps(body).encode(), "weather", releases.digest)
    assert info.value.id == "analysis.release.digest_mismatch"

    body = json.loads(releases.for_party("weather"))
    body["manifest"]["parties"]["weather"] = "00" * 32
    with pytest.raises(AnalysisError) as info:
        _verify(json.dumps(body).encode(), "weather", releases.digest)
    assert info.value.id == "analysis.release.digest_mismatch"

    with pytest.raises(AnalysisError) as info:
        _verify(releases.for_party("transit"), "weather", releases.digest)
    assert info.value.id == "analysis.release.wrong_subject"

    with pytest.raises(AnalysisError) as info:
        _verify(b"not json", "weather", releases.digest)
    assert info.value.id == "analysis.release.malformed"
