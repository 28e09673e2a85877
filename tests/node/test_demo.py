"""The demo's promise: on a real chain three parties approve, stream, and train a joint model
that beats the best single-party model; every value shown is one the parties received."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

import chronoseal
from chronoseal.audit import audit_task
from chronoseal.cli import app
from chronoseal.errors import ReviewRefused
from chronoseal.ledger import Consortium, EmbeddedChain, TaskState, chain_stats, read_events
from chronoseal.node import (
    DemoConsortium,
    DemoReport,
    RunResult,
    bundled_scenario,
    load_scenario,
)
from chronoseal.node._report import write_report
from chronoseal.spec import load_party_config


def test_demo_until_approved_stops_with_every_approval(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["demo", "--until", "approved", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["task"]["state"] == "Approved"
    assert doc["task"]["approvals"] == 3
    assert doc["parties"] == []


def test_demo_until_running_streams_and_matches_every_commitment(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["demo", "--until", "running", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["task"]["state"] == "Running"
    assert doc["task"]["participants"] == ["transit", "weather", "events"]
    assert doc["task"]["approvals"] == 3
    assert doc["chain"]["kind"] == "embedded"
    assert doc["chain"]["transactions"] > 0 and doc["chain"]["gas_used"] > 0
    approvals = [e for e in doc["events"] if e["event"] == "TaskApproved"]
    assert [e["fields"]["org"] for e in approvals] == ["transit", "weather", "events"]
    assert [e["fields"]["relayed"] for e in approvals] == [False, True, False]
    assert doc["tee"] == "simulated"
    assert "tee: simulated" in result.output
    assert [p["name"] for p in doc["parties"]] == ["transit", "weather", "events"]
    for party in doc["parties"]:
        assert party["rows_sent"] == 5684 and party["bytes_sent"] > 0
        assert party["commitment_matched"] is True
        assert len(party["commitment"]) == 66
    matched = {e["fields"]["org"] for e in doc["events"] if e["event"] == "CommitmentMatched"}
    assert matched == {"transit", "weather", "events"}
    assert "model" not in doc


class _Keeping(DemoConsortium):
    """The demo, keeping the runtime's sealed bundle so a test can hash it."""

    bundle: bytes = b""

    def train(self, runtime, gateways):  # type: ignore[no-untyped-def]
        releases = super().train(runtime, gateways)
        assert runtime.trained is not None
        self.bundle = runtime.trained.bundle
        return releases


@dataclass
class Trained:
    world: _Keeping
    chain: EmbeddedChain
    report: DemoReport
    doc: dict[str, Any]


@pytest.fixture(scope="module")
def trained() -> Trained:
    """One full demo run (about a minute): every test below reads it."""
    chain = EmbeddedChain()
    world = _Keeping(load_scenario(bundled_scenario()), lambda _: None, chain)
    report = world.run()
    return Trained(world, chain, report, report.to_json())


def test_the_demo_ends_serving_with_the_bundle_committed_on_chain(trained: Trained) -> None:
    assert trained.report.state == "Serving"
    view = Consortium.at(trained.chain, trained.report.contract).task(trained.report.task_id)
    assert view.state is TaskState.SERVING
    assert view.model_commitment == hashlib.sha256(trained.world.bundle).digest()
    assert trained.doc["model"]["commitment"] == "0x" + view.model_commitment.hex()
    assert trained.doc["model"]["family"] == "mlforecast-lightgbm"
    assert set(trained.doc["model"]["metrics"]) == {"mase", "smape", "rmse", "coverage"}


def test_the_joint_model_beats_the_best_single_party_model(trained: Trained) -> None:
    joint = trained.doc["model"]["metrics"]["mase"]
    best = trained.doc["baseline"]
    assert best["party"] == "transit"
    assert joint < best["metrics"]["mase"]
    baselines = {b["name"]: b["metrics"]["mase"] for b in trained.report.released("baselines")}
    assert best["metrics"]["mase"] == min(baselines.values())
    assert set(baselines) == {"own", "AutoETS", "SeasonalNaive"}


def test_every_data_provider_has_a_contribution_that_adds_up(trained: Trained) -> None:
    contribution = trained.doc["contribution"]
    assert set(contribution) == {"transit", "weather", "events"}
    assert trained.doc["contribution_method"]["method"] == "shapley"
    naive = next(b for b in trained.report.released("baselines") if b["name"] == "SeasonalNaive")
    total = trained.doc["model"]["metrics"]["mase"] - naive["metrics"]["mase"]
    assert sum(contribution.values()) == pytest.approx(total, abs=1e-6)


def test_the_summary_holds_what_the_parties_received_and_checked(trained: Trained) -> None:
    releases = trained.doc["releases"]
    assert "backtest" in releases["transit"]
    assert "backtest" not in releases["weather"] and "backtest" not in releases["events"]
    for party in ("transit", "weather", "events"):
        assert {"model", "baseline", "contribution"} <= set(releases[party])
        assert (
            trained.report.releases[party]["model"] == trained.report.releases["transit"]["model"]
        )


def test_the_report_shows_the_released_figures(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(path, trained.report, task_name="chicago-ridership-14d")
    html = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 3  # back-test forecast, contributions, served forecast
    for data in images:
        picture = imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert picture.shape[0] > 0 and picture.shape[1] > 0
    assert "http://" not in html and "https://" not in html
    mase = trained.doc["model"]["metrics"]["mase"]
    assert f"{mase:.4g}" in html
    for delta in trained.doc["contribution"].values():
        assert f"{abs(delta):.4g}" in html
    assert "Served forecast" in html and "served forecast of 1 series, 14 rows" in html
    assert "prediction.request.replayed" in html


def strings(doc: Any) -> list[str]:
    """Every key and string value of a JSON document."""
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in [str(k), *strings(v)]]
    if isinstance(doc, list):
        return [s for v in doc for s in strings(v)]
    return [doc] if isinstance(doc, str) else []


def test_every_hex_value_in_the_json_summary_is_full_length(trained: Trained) -> None:
    # Round-tripped as ``--json`` prints it: addresses 20 bytes, hashes and ids 32 bytes.
    text = strings(json.loads(json.dumps(trained.doc)))
    values = [m for s in text for m in re.findall(r"0x[0-9a-fA-F]+", s)]
    assert values and {len(v) for v in values} <= {42, 66}
    assert not [s for s in text if re.search(r"[0-9a-fA-F]…", s)]
    view = Consortium.at(trained.chain, trained.report.contract).task(trained.report.task_id)
    assert view.model_commitment is not None
    committed = [e["fields"] for e in trained.doc["events"] if e["event"] == "ModelCommitted"]
    assert [f["commitment"] for f in committed] == ["0x" + view.model_commitment.hex()] * 2


def test_the_report_shows_the_analysis_runtimes_metrics_digest(
    trained: Trained, tmp_path: Path
) -> None:
    view = Consortium.at(trained.chain, trained.report.contract).task(trained.report.task_id)
    assert view.metrics_digest is not None and any(view.metrics_digest)
    digest = "0x" + view.metrics_digest.hex()
    analysis = next(
        e
        for e in trained.report.events
        if e.event == "ModelCommitted" and e.fields["kind"] == "analysis"
    )
    assert analysis.fields["metrics_digest"] == digest
    path = tmp_path / "report.html"
    write_report(path, trained.report, task_name="chicago-ridership-14d")
    html = " ".join(re.sub(r"<[^>]+>", " ", path.read_text()).split())
    assert (
        f"metrics digest (on chain) {digest} (the analysis runtime's ModelCommitted, "
        f"block {analysis.block})"
    ) in html
    assert "matches the committed model" in html


def test_report_matches_an_independent_read_of_the_chain(trained: Trained) -> None:
    report, chain = trained.report, trained.chain
    assert report.chain == chain_stats(chain)
    assert report.approved_by == ["transit", "weather", "events"]
    for party in report.parties:
        gateway_side, runtime_side = world_commitments(chain, report, party.name)
        assert party.commitment == "0x" + gateway_side.hex() and gateway_side == runtime_side


def world_commitments(chain: EmbeddedChain, report: DemoReport, party: str) -> tuple[bytes, bytes]:
    consortium = Consortium.at(chain, report.contract)
    gateway_side, runtime_side = consortium.commitments(report.task_id, party)
    assert gateway_side is not None and runtime_side is not None
    return gateway_side, runtime_side


def test_a_party_that_does_not_consent_refuses_and_aborts(tmp_path: Path) -> None:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root, ignore=shutil.ignore_patterns("*.parquet"))
    weather = root / "parties" / "weather.toml"
    weather.write_text(weather.read_text().replace('gust = ["drop"]', 'gust = ["keep"]'))
    weather_spec = root / "task.toml"
    weather_spec.write_text(
        weather_spec.read_text().replace('gust = { action = "drop" }', 'gust = { action = "keep" }')
    )
    world = DemoConsortium(load_scenario(root / "scenario.toml"), lambda _: None)
    weather.write_text(weather.read_text().replace('gust = ["keep"]', 'gust = ["drop"]'))
    world.scenario.parties["weather"] = load_party_config(weather)
    with pytest.raises(ReviewRefused) as info:
        world.run()
    assert info.value.id == "review.policy.not_consented"
    assert info.value.party == "weather"
    task = world.consortium.task(_only_task(world))
    assert task.state == TaskState.ABORTED
    assert task.approved_by == ["transit"]


def _only_task(world: DemoConsortium) -> bytes:
    proposed = [e for e in read_events(world.consortium) if e.name == "TaskProposed"]
    assert len(proposed) == 1
    return bytes.fromhex(proposed[0].args["task_id"].removeprefix("0x"))


def test_recipients_are_served_others_refused_and_every_receipt_checks_on_chain(
    trained: Trained,
) -> None:
    predictions = trained.doc["predictions"]
    # transit and events; weather is no recipient; transit once more with its own newest
    # observations (and refused as stale for the whole horizon after them)
    assert predictions["served"] == 3
    assert predictions["with_input"] == 1
    assert predictions["refusals"] == {
        "prediction.feed.stale": 1,
        "prediction.request.not_recipient": 2,
        "prediction.request.replayed": 2,
    }
    asked = predictions["served"] + predictions["refused"]
    assert predictions["audit_verified"] == asked
    assert predictions["audit_lost"] == 0
    view = Consortium.at(trained.chain, trained.report.contract).task(trained.report.task_id)
    assert view.audit_batches == predictions["audit_batches"] >= 1
    # every request and refusal, the input key transit asked for, one leaf per feed epoch
    assert view.audited_predictions == predictions["audited"] == asked + 1 + 2


def test_a_serving_run_gives_python_its_forecasts_and_receipts(trained: Trained) -> None:
    result = RunResult(load_scenario(bundled_scenario()), trained.report, trained.chain)
    asked = trained.doc["predictions"]["served"] + trained.doc["predictions"]["refused"]
    assert len(result.receipts) == asked
    for receipt in result.receipts:
        chronoseal.verify_receipt(receipt, result.consortium)
    assert set(result.forecasts) == {"transit", "events"}
    tables = result.forecasts_arrow()
    assert tables["transit"].num_rows == len(result.forecasts["transit"]) == 14
    assert result.summary["predictions"] == trained.doc["predictions"]


def test_the_served_forecast_covers_the_horizon_after_the_training_window(
    trained: Trained,
) -> None:
    assert set(trained.report.forecasts) == {"transit", "events"}
    frame = trained.report.forecasts["transit"]
    assert {"unique_id", "ds", "joint-lo-80", "joint-hi-80"} <= set(frame.columns)
    assert len(frame) == 14
    assert str(frame["ds"].min().date()) == "2016-08-15"
    assert str(frame["ds"].max().date()) == "2016-08-28"
    assert (frame["joint-lo-80"] <= frame["joint"]).all()
    assert (frame["joint"] <= frame["joint-hi-80"]).all()
    observed, after = trained.report.with_input["transit"]
    assert len(observed) == 7 and str(observed["ds"].max()) == "2016-08-21"
    assert str(after["ds"].min().date()) == "2016-08-22" and len(after) == 7


def test_the_demo_ends_with_the_task_re_verified_from_the_chain(
    trained: Trained, tmp_path: Path
) -> None:
    audit = trained.doc["audit"]
    assert audit["verified"] is True and audit["failures"] == []
    assert audit["checks"] >= 10 and audit["passed"] == audit["checks"]
    assert audit["receipts_checked"] == trained.doc["predictions"]["audit_verified"]
    path = tmp_path / "report.html"
    write_report(path, trained.report, task_name="chicago-ridership-14d")
    html = path.read_text()
    assert "Audit from the chain alone" in html and "audit.commitments" in html
    assert "weather approved (relayed by transit" in html


def test_a_receipt_that_does_not_match_the_chain_fails_the_audit(trained: Trained) -> None:
    consortium = Consortium.at(trained.chain, trained.report.contract)
    receipts = trained.world.served.receipts if trained.world.served else []
    assert receipts
    forged = dataclasses.replace(receipts[0], root=hashlib.sha256(b"forged").digest())
    audit = audit_task(consortium, trained.report.task_id, receipts=[forged])
    assert [c.id for c in audit.failures] == ["audit.receipts"]
    assert "prediction.receipt.not_on_chain" in audit.failures[0].detail


def test_demo_keeps_the_explorer_open_on_its_chain_until_interrupted(
    loopback_port: int,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chronoseal", "demo", "--until", "approved", "--explorer",
         "--explorer-listen", f"127.0.0.1:{loopback_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{loopback_port}/api/tasks"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    tasks = json.loads(response.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "the explorer never answered"
                time.sleep(0.5)
        assert json.dumps(tasks).count("Approved") >= 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"explorer: http://127.0.0.1:{loopback_port}" in out
