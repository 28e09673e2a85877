"""The Python API (docs/api.md): its documented example runs, and a notebook gets the same
figures as ``chronoseal demo --json`` for the same scenario."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import chronoseal
from chronoseal.cli import app
from chronoseal.errors import ChronosealError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
SCENARIO = ROOT / "examples" / "chicago" / "scenario.toml"


def _first_python_block(markdown: str) -> str:
    found = re.search(r"^```python\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)
    assert found is not None, "docs/api.md has no python block"
    return found.group(1)


@pytest.fixture(scope="module")
def documented() -> Iterator[dict[str, Any]]:
    """docs/api.md's example, run as written from the repository root (about a minute)."""
    namespace: dict[str, Any] = {}
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        exec(compile(_first_python_block(DOC.read_text()), str(DOC), "exec"), namespace)
    finally:
        os.chdir(here)
    yield namespace


def test_the_documented_example_runs_and_trains(documented: dict[str, Any]) -> None:
    result = documented["result"]
    assert isinstance(result, chronoseal.RunResult)
    assert result.state == "Trained"
    assert isinstance(result.model.metrics["mase"], float)
    assert result.model.family == "mlforecast-lightgbm"
    assert result.audit.verified and documented["again"].verified
    baselines = result.baselines
    assert list(baselines["name"]) == ["own", "AutoETS", "SeasonalNaive"]
    assert result.model.metrics["mase"] < baselines["mase"].min()
    contributions = result.contributions.set_index("party")
    assert set(contributions.index) == {"transit", "weather", "events"}
    assert contributions.loc["transit", "delta_mase"] < 0
    assert result.forecasts == {} and result.receipts == []


def test_the_api_gives_the_mase_the_cli_json_summary_gives(
    documented: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    args = ["demo", "--scenario", str(SCENARIO), "--until", "trained", "--json", str(out)]
    ran = CliRunner().invoke(app, args)
    assert ran.exit_code == 0, ran.output
    cli = json.loads(out.read_text())
    result = documented["result"]
    assert result.model.metrics["mase"] == cli["model"]["metrics"]["mase"]
    # The whole table and the baselines too (the commitment differs: each bundle is sealed
    # with fresh randomness).
    assert result.summary["model"]["metrics"] == cli["model"]["metrics"]
    assert result.summary["baseline"] == cli["baseline"]


def test_a_result_refuses_what_the_run_did_not_reach() -> None:
    result = chronoseal.Scenario.load(SCENARIO).run(until="approved")
    assert result.state == "Approved" and result.verified
    for name in ("model", "baselines", "contributions"):
        with pytest.raises(ChronosealError) as refused:
            getattr(result, name)
        assert refused.value.id == "run.stage.not_reached"
    assert chronoseal.audit(result.task_id, consortium=result.consortium).verified


def test_separate_processes_run_only_through_serving() -> None:
    with pytest.raises(ChronosealError) as refused:
        chronoseal.Scenario.load(SCENARIO).run(until="trained", rpc="http://127.0.0.1:1")
    assert refused.value.id == "run.until.separate"


def test_an_audit_needs_a_chain() -> None:
    with pytest.raises(ChronosealError) as refused:
        chronoseal.audit("0x" + "11" * 32, rpc="http://127.0.0.1:1")
    assert refused.value.id == "audit.target.missing"


def test_the_audit_package_stays_a_package_when_called() -> None:
    import chronoseal.audit as package

    assert package is chronoseal.audit
    assert callable(chronoseal.audit) and chronoseal.audit.audit_task is not None


def test_a_metric_the_runtime_could_not_compute_is_nan() -> None:
    from chronoseal.node._result import _metrics

    assert math.isnan(_metrics({"coverage": None})["coverage"])


def test_import_chronoseal_loads_nothing_heavy() -> None:
    heavy = ("pandas", "web3", "pyarrow", "lightgbm", "chronoseal.node", "chronoseal.audit")
    probe = f"import sys, chronoseal; print(','.join(k for k in {heavy!r} if k in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
