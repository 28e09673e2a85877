"""The demo's promise: a real chain ends with the task Approved by every participant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.errors import ReviewRefused
from chronoseal.ledger import Consortium, EmbeddedChain, TaskState, chain_stats, read_events
from chronoseal.node import DemoConsortium, DemoReport, bundled_scenario, load_scenario, run_demo
from chronoseal.spec import load_party_config

pytestmark = pytest.mark.integration


def test_demo_until_approved_stops_with_every_approval(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["demo", "--until", "approved", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["task"]["state"] == "Approved"
    assert doc["task"]["approvals"] == 3
    assert doc["parties"] == []


def test_demo_json_is_read_back_from_the_chain(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["demo", "--json", str(out)])
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
        assert party["rows_sent"] == 5698 and party["bytes_sent"] > 0
        assert party["commitment_matched"] is True
        assert len(party["commitment"]) == 66
    matched = {e["fields"]["org"] for e in doc["events"] if e["event"] == "CommitmentMatched"}
    assert matched == {"transit", "weather", "events"}


def test_report_matches_an_independent_read_of_the_chain() -> None:
    chain = EmbeddedChain()
    report = run_demo(load_scenario(bundled_scenario()), log=lambda _: None, chain=chain)
    stats = chain_stats(chain)
    assert report.chain == stats
    assert report.state == "Running"
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
