"""``chronoseal audit`` against a separate chain node: exit 0 verified, 1 a check failed,
2 the audit could not start — each with the check or refusal id in its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_world import PROVIDERS, build_world, digest
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.ledger import JsonRpcChain


@pytest.mark.integration
@pytest.mark.anvil
def test_audit_command_verifies_and_fails_tasks_on_a_node(anvil_url: str) -> None:
    chain = JsonRpcChain(anvil_url)
    world = build_world(chain)
    common = ["--rpc", anvil_url, "--contract", world.consortium.address]
    served = "0x" + world.ready["serving"].hex()

    ok = CliRunner().invoke(app, ["audit", served, *common, "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["verified"] is True and doc["state"] == "Serving"
    assert len(doc["checks"]) >= 10 and doc["failures"] == []

    text = CliRunner().invoke(app, ["audit", served, *common])
    assert text.exit_code == 0, text.output
    assert "audit from the chain alone: verified" in text.output
    assert "Trained → Serving" in text.output

    disputed = world.running_task()
    world.commit_data(disputed, PROVIDERS[0])
    world.commit_data(disputed, PROVIDERS[1], runtime_label="not what was sent")
    bad = CliRunner().invoke(app, ["audit", "0x" + disputed.hex(), *common, "--json"])
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.output)["failures"] == ["audit.commitments"]

    unknown = CliRunner().invoke(app, ["audit", "0x" + digest("nothing").hex(), *common])
    assert unknown.exit_code == 2
    assert "audit.task.unknown" in unknown.output
    chain.close()


def test_audit_command_names_an_unreachable_node() -> None:
    result = CliRunner().invoke(
        app,
        ["audit", "0x" + "11" * 32, "--rpc", "http://127.0.0.1:9", "--contract", "0x" + "22" * 20],
    )
    assert result.exit_code == 2
    assert "ledger.chain.unavailable" in result.output


def test_audit_command_refuses_a_malformed_receipt_file(tmp_path: Path) -> None:
    bad = tmp_path / "receipt.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(
        app,
        [
            "audit", "0x" + "11" * 32, "--rpc", "http://127.0.0.1:9",
            "--contract", "0x" + "22" * 20, "--receipt", str(bad),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "prediction.receipt.malformed" in result.output  # refused before the node is asked


def test_audit_command_refuses_a_task_id_that_is_not_hex(tmp_path: Path) -> None:
    for task in ("0xzz", "0x" + "1" * 63, "0x" + "11" * 31):
        result = CliRunner().invoke(
            app, ["audit", task, "--rpc", "http://127.0.0.1:9", "--contract", "0x" + "22" * 20]
        )
        assert result.exit_code == 2
        assert "audit.task.bad_id" in result.output  # refused before the node is asked
